// Compute probe of the roofline (Device::fma_probe): register-resident multiply-adds, f32 (and f16
// with -DTCA_FMA_F16 where cl_khr_fp16 exists). The recurrence, the seeds and the output are
// defined in src/iface/iface_fma.h. mad() lets the compiler use the fastest multiply-add the
// device has (fused or not), which is what a peak is about.
#include "iface_fma.h"

#ifdef TCA_FMA_F16
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
typedef half T;
#define FMA_KERNEL fma_f16
#else
typedef float T;
#define FMA_KERNEL fma_f32
#endif

// Sixteen named scalars: each chain is a value of its own, which no compiler spills as it may an
// array. (PoCL 3.1 still emits 128-bit multiplies and adds for it, no FMA: README, roofline.)
#define TCA_FMA_INIT(c) T x##c = (T)((float)TCA_FMA_SEED(i, c##u) / 64.0f)
#define TCA_FMA_STEP(c) x##c = mad(x##c, a, b)
#define TCA_FMA_ALL(M) M(0); M(1); M(2); M(3); M(4); M(5); M(6); M(7); M(8); M(9); M(10); M(11); M(12); M(13); M(14); M(15)

__kernel void FMA_KERNEL(__global float* out, const FmaParams p) {
    const uint i = (uint)get_global_id(0);
    if (i >= p.items) return;
    TCA_FMA_ALL(TCA_FMA_INIT);
    const T a = (T)p.a, b = (T)p.b;
    for (uint r = 0; r < p.iters; ++r) {
        TCA_FMA_ALL(TCA_FMA_STEP);
    }
    out[p.out_off + i] = (float)x0 + (float)x1 + (float)x2 + (float)x3 + (float)x4 + (float)x5 + (float)x6 + (float)x7 +
                         (float)x8 + (float)x9 + (float)x10 + (float)x11 + (float)x12 + (float)x13 + (float)x14 + (float)x15;
}
