#version 450
// Native 16-bit storage variant (needs storageBuffer16BitAccess; see common.glsl).
#define TCA_NATIVE_F16 1
#include "decode.glsl"
