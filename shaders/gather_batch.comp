#version 450
// Row gather, batched (Device::gather_batch): workgroup z = the entry, parameters from a table.
#define TCA_BATCH_BINDING 9  // TCA_GATHER_BIND_TABLE
#include "gather.glsl"
