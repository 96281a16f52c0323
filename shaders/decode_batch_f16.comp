#version 450
// Batched variant with native 16-bit storage (see decode_f16.comp and decode_batch.comp).
#define TCA_NATIVE_F16 1
#define TCA_BATCH_BINDING 9  // TCA_DECODE_BIND_TABLE
#include "decode.glsl"
