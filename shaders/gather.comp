#version 450
// Row gather, one op (parameters as push constants): gather.glsl.
#include "gather.glsl"
