#version 450
// Portable variant: f16 K/V read as packed 32-bit words (see common.glsl).
#include "score.glsl"
