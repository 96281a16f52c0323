// Compute probe of the roofline (Device::fma_probe): register-resident multiply-adds. Included by
// fma.comp (f32) and fma_f16.comp (f16 arithmetic: a separate module, since the Float16 capability
// is declared per module). The recurrence, the seeds and the output: src/iface/iface_fma.h.
// fma() of GLSL may be fused or split by the driver; either way one multiply-add per lane per
// chain and round, which is what a peak counts.
#extension GL_EXT_control_flow_attributes : enable
#ifdef TCA_FMA_F16
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define T float16_t
#define T4 f16vec4
#else
#define T float
#define T4 vec4
#endif
#include "iface_fma.h"

layout(local_size_x_id = TCA_FMA_SPEC_WG) in;
layout(binding = TCA_FMA_BIND_OUT, std430) writeonly buffer Out { float o[]; };

T seed(uint i, uint c) { return T(float(TCA_FMA_SEED(i, c)) / 64.0); }

void main() {
    const uint i = (gl_WorkGroupID.y * pc.gx + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= pc.items) return;
    T4 x[TCA_FMA_CHAINS / 4];
    [[unroll]] for (uint v = 0; v < TCA_FMA_CHAINS / 4; ++v)
        x[v] = T4(seed(i, 4 * v), seed(i, 4 * v + 1), seed(i, 4 * v + 2), seed(i, 4 * v + 3));
    const T4 a = T4(T(pc.a)), b = T4(T(pc.b));
    for (uint r = 0; r < pc.iters; ++r) {
        [[unroll]] for (uint v = 0; v < TCA_FMA_CHAINS / 4; ++v) x[v] = fma(x[v], a, b);
    }
    float s = 0.0;
    [[unroll]] for (uint v = 0; v < TCA_FMA_CHAINS / 4; ++v) s += float(x[v].x) + float(x[v].y) + float(x[v].z) + float(x[v].w);
    o[pc.out_off + i] = s;
}
