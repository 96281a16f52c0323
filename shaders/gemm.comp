#version 450
// Compute probe of the roofline (Device::gemm), f32: C[M, N] = A[M, K] * B[K, N], row-major.
//
// Classic two-level tiling. A workgroup owns a BM x BN tile of C and walks K in steps of BK,
// staging the A and B slices in shared memory; each invocation owns a TM x TN register block of
// the tile and does TM * TN multiply-adds per TM + TN shared loads. All five tile sizes are
// specialization constants, so the host picks them per device without recompiling.
// STAGE = 0 skips the shared-memory staging and reads A and B straight from the buffers: CPU
// drivers (lavapipe) implement barrier() with coroutines, which costs far more than their caches
// save, while on GPUs staging is what makes the kernel compute-bound.
//   local size = (BN / TN) x (BM / TM); the host guarantees the divisions are exact.
// Parameters, bindings and specialization constants: src/iface/iface_gemm.h.
#extension GL_EXT_control_flow_attributes : enable
#include "iface_gemm.h"

layout(local_size_x_id = TCA_GEMM_SPEC_WG_X, local_size_y_id = TCA_GEMM_SPEC_WG_Y) in;
layout(constant_id = TCA_GEMM_SPEC_BM) const uint BM = 64;
layout(constant_id = TCA_GEMM_SPEC_BN) const uint BN = 64;
layout(constant_id = TCA_GEMM_SPEC_BK) const uint BK = 16;
layout(constant_id = TCA_GEMM_SPEC_TM) const uint TM = 4;
layout(constant_id = TCA_GEMM_SPEC_TN) const uint TN = 4;
layout(constant_id = TCA_GEMM_SPEC_STAGE) const uint STAGE = 1;

layout(binding = TCA_GEMM_BIND_A, std430) readonly buffer A { float a[]; };
layout(binding = TCA_GEMM_BIND_B, std430) readonly buffer B { float b[]; };
layout(binding = TCA_GEMM_BIND_C, std430) writeonly buffer C { float c[]; };

// A is stored transposed ([BK][BM]) so an invocation's TM rows are contiguous, like B's TN columns.
shared float As[BK * BM];
shared float Bs[BK * BN];

void main() {
    const uint WX = gl_WorkGroupSize.x, WY = gl_WorkGroupSize.y, NT = WX * WY;
    const uint t = gl_LocalInvocationIndex;
    const uint row0 = gl_WorkGroupID.y * BM, col0 = gl_WorkGroupID.x * BN;
    const uint ty = gl_LocalInvocationID.y * TM, tx = gl_LocalInvocationID.x * TN;

    float acc[TM * TN];
    [[unroll]] for (uint i = 0; i < TM * TN; ++i) acc[i] = 0.0;
    float ar[TM], br[TN];

    if (STAGE == 0) {
        // Unstaged: each invocation reads its own TM rows of A and TN columns of B.
        for (uint kk = 0; kk < pc.k; ++kk) {
            [[unroll]] for (uint i = 0; i < TM; ++i) {
                const uint gr = row0 + ty + i;
                ar[i] = gr < pc.m ? a[pc.a_off + gr * pc.k + kk] : 0.0;
            }
            [[unroll]] for (uint j = 0; j < TN; ++j) {
                const uint gc = col0 + tx + j;
                br[j] = gc < pc.n ? b[pc.b_off + kk * pc.n + gc] : 0.0;
            }
            [[unroll]] for (uint i = 0; i < TM; ++i)
                [[unroll]] for (uint j = 0; j < TN; ++j) acc[i * TN + j] = fma(ar[i], br[j], acc[i * TN + j]);
        }
    }
    for (uint k0 = 0; STAGE != 0 && k0 < pc.k; k0 += BK) {
        // Cooperative loads, zero-padded at the matrix edges.
        for (uint e = t; e < BM * BK; e += NT) {
            const uint r = e / BK, kk = e % BK;  // consecutive invocations read consecutive k of a row
            const uint gr = row0 + r, gk = k0 + kk;
            As[kk * BM + r] = (gr < pc.m && gk < pc.k) ? a[pc.a_off + gr * pc.k + gk] : 0.0;
        }
        for (uint e = t; e < BK * BN; e += NT) {
            const uint kk = e / BN, cc = e % BN;
            const uint gk = k0 + kk, gc = col0 + cc;
            Bs[kk * BN + cc] = (gk < pc.k && gc < pc.n) ? b[pc.b_off + gk * pc.n + gc] : 0.0;
        }
        barrier();
        [[unroll]] for (uint kk = 0; kk < BK; ++kk) {
            [[unroll]] for (uint i = 0; i < TM; ++i) ar[i] = As[kk * BM + ty + i];
            [[unroll]] for (uint j = 0; j < TN; ++j) br[j] = Bs[kk * BN + tx + j];
            [[unroll]] for (uint i = 0; i < TM; ++i)
                [[unroll]] for (uint j = 0; j < TN; ++j) acc[i * TN + j] = fma(ar[i], br[j], acc[i * TN + j]);
        }
        barrier();
    }
    [[unroll]] for (uint i = 0; i < TM; ++i) {
        const uint gr = row0 + ty + i;
        if (gr >= pc.m) break;
        [[unroll]] for (uint j = 0; j < TN; ++j) {
            const uint gc = col0 + tx + j;
            if (gc < pc.n) c[pc.c_off + gr * pc.n + gc] = acc[i * TN + j];
        }
    }
}
