// Kernel family "fma": the compute probe of the roofline (Device::fma_probe), the device's
// register-resident multiply-add peak. Host: src/backends/{opencl,vulkan}/ops_fma.cpp; kernels:
// cl/fma.cl, shaders/fma.comp (f32) and shaders/fma_f16.comp, both from shaders/fma.glsl.
//
// Every work-item keeps TCA_FMA_CHAINS independent accumulators in registers, x_c = seed(i, c),
// and runs `iters` rounds of x_c = x_c * a + b over all of them (independent chains hide the
// multiply-add latency, so the rate is the throughput), then writes out[i] = sum_c x_c (f32). No
// memory is touched inside the loop. a and b come from the parameters, so no compiler can fold
// the loop; with |a| < 1 the recurrence contracts, so rounding differences (fused or not) stay a
// few ulps and the output is checkable against the reference (tests/test_roofline_ops.cpp).
#ifndef TCA_IFACE_FMA_H
#define TCA_IFACE_FMA_H
#include "iface_common.h"

// Independent accumulators per work-item: 4 vectors of 4 lanes.
#define TCA_FMA_CHAINS 16

TCA_PARAMS_BEGIN(FmaParams)
    TCA_U32 out_off;  // the output's offset, in floats
    TCA_U32 items;    // work-items (one output each)
    TCA_U32 iters;    // rounds over all chains
    TCA_U32 gx;       // work-groups along x of the 2-D grid (Vulkan's group-count limit)
    TCA_F32 a;
    TCA_F32 b;
TCA_PARAMS_END(FmaParams)

// The starting value of chain c of work-item i is TCA_FMA_SEED(i, c) / 64 (exact in f16 as well);
// an integer expression, since C++, GLSL and OpenCL C spell a conversion to float differently.
#define TCA_FMA_SEED(i, c) (((i) * 7u + (c) * 3u) % 64u)

#define TCA_FMA_BIND_OUT 0
#define TCA_FMA_SPEC_WG 0  // work-group size (specialization constant id)

#endif
