#version 450
// Batched variant (Device::decode_batch): workgroup z = the entry, parameters from a table.
#define TCA_BATCH_BINDING 9  // TCA_DECODE_BIND_TABLE
#include "decode.glsl"
