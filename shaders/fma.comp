#version 450
// f32 multiply-add peak (see fma.glsl).
#include "fma.glsl"
