#version 450
// f16 multiply-add peak (needs shaderFloat16; see fma.glsl).
#define TCA_FMA_F16 1
#include "fma.glsl"
