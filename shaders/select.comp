#version 450
// Token selection, everything after the importance scores (no K/V access):
//   MODE 0  metric: per (block, head) the block's max |s| (m), then Y1 = sum s/m, Y2 = sum (s/m)^2
//           (workgroup trees) and h = (1 - alpha) m Y1 + alpha (1 - Y2 / Y1^2) (second term 0 when
//           Y1 <= 0), the formulation of MetricArgs in device.h.
//   MODE 1  rank: rank-by-counting; block i's rank is the number of blocks before it in the order
//           (h descending, lower index first on ties), a strict total order, so order[] is a permutation.
//   MODE 2  select, step 1: kept count per block, t = min(budget[rank], block size) -> scratch A.
//   MODE 3  select, step 2: exclusive prefix sum of A over blocks -> scratch B (output offset of each
//           block), total -> count[h]. One workgroup per head, chunked scan, carry in a register.
//   MODE 4  select, step 3: per block, each token's rank within its block by counting (s descending,
//           lower index first); keep flag -> scratch C; then each kept token's output slot is its
//           block's offset plus the kept tokens before it in the block. No atomics decide any order.
// Parameters, bindings, specialization constants and modes: src/iface/iface_select.h.
#include "common.glsl"
#include "iface_select.h"

layout(local_size_x_id = TCA_SELECT_SPEC_WG) in;
layout(constant_id = TCA_SELECT_SPEC_USE_SG) const uint USE_SG = 0;
layout(constant_id = TCA_SELECT_SPEC_MODE) const uint MODE = 0;
const uint WG = gl_WorkGroupSize.x;

layout(binding = TCA_SELECT_BIND_IN, std430) readonly buffer FIn { float f_in[]; };   // s (metric, select) or h (rank)
layout(binding = TCA_SELECT_BIND_ORDER, std430) readonly buffer Order { int order[]; };
layout(binding = TCA_SELECT_BIND_BUDGET, std430) readonly buffer Budget { int budget[]; };
layout(binding = TCA_SELECT_BIND_OUT, std430) writeonly buffer IOut { int i_out[]; };  // order (rank) or idx (select)
layout(binding = TCA_SELECT_BIND_COUNT, std430) writeonly buffer Count { int count[]; };
layout(binding = TCA_SELECT_BIND_SCRATCH, std430) coherent buffer Scratch { int scr[]; };
layout(binding = TCA_SELECT_BIND_METRIC, std430) writeonly buffer FOut { float f_out[]; };  // h (metric)

#include "reduce.glsl"

shared int scan_[WG];

// The one ordering for blocks and tokens (as cl/selection_common.h): larger value first, then the
// lower index; NaN sorts as -infinity, so even bad input gives a strict total order and a ranking
// stays a permutation (no two items share a rank, no slot is left unwritten).
float order_key(float x) { return isnan(x) ? uintBitsToFloat(0xff800000u) : x; }
bool ranks_before(float a, uint ia, float b, uint ib) {
    const float ka = order_key(a), kb = order_key(b);
    return ka > kb || (ka == kb && ia < ib);
}

void main() {
    const uint t = gl_LocalInvocationIndex;
    const uint h = gl_WorkGroupID.y;
    if (MODE == 0) {
        const uint blk = gl_WorkGroupID.x;
        const uint lo = blk * pc.block, hi = min(lo + pc.block, pc.n);
        // The sums run over y = s / m, m = max |s| of the block (MetricArgs, device.h): S2 / S1^2 is
        // scale-free, and tiny probabilities would otherwise underflow when squared (S1^2 = 0: NaN).
        float mx = 0.0;
        for (uint i = lo + t; i < hi; i += WG) mx = max(mx, abs(f_in[pc.a_off + h * pc.a_stride + i]));
        const float M = wg_max(mx);
        float y1 = 0.0, y2 = 0.0;
        if (M > 0.0)
            for (uint i = lo + t; i < hi; i += WG) {
                const float y = f_in[pc.a_off + h * pc.a_stride + i] / M;
                y1 += y;
                y2 += y * y;
            }
        const float Y1 = wg_sum(y1), Y2 = wg_sum(y2);
        if (t == 0) {
            const float spread = Y1 > 0.0 ? 1.0 - Y2 / (Y1 * Y1) : 0.0;
            f_out[pc.out_off + h * pc.nb + blk] = (1.0 - pc.alpha) * (Y1 * M) + pc.alpha * spread;
        }
    } else if (MODE == 1) {
        const uint i = gl_WorkGroupID.x * WG + t;
        if (i >= pc.nb) return;
        const uint row = pc.a_off + h * pc.nb;
        const float hv = f_in[row + i];
        uint rank = 0;
        for (uint j = 0; j < pc.nb; ++j) rank += ranks_before(f_in[row + j], j, hv, i) ? 1u : 0u;
        i_out[pc.out_off + h * pc.nb + rank] = int(i);
    } else if (MODE == 2) {
        const uint r = gl_WorkGroupID.x * WG + t;
        if (r >= pc.nb) return;
        const int blk = order[pc.order_off + h * pc.nb + r];
        if (blk < 0 || uint(blk) >= pc.nb) return;  // not a permutation: nothing sensible to do
        const int size = int(min(pc.block, pc.n - uint(blk) * pc.block));
        scr[pc.scr_a + h * pc.nb + uint(blk)] = clamp(budget[pc.budget_off + h * pc.nb + r], 0, size);
    } else if (MODE == 3) {
        int carry = 0;
        for (uint base = 0; base < pc.nb; base += WG) {
            const uint i = base + t;
            const int x = i < pc.nb ? scr[pc.scr_a + h * pc.nb + i] : 0;
            scan_[t] = x;
            barrier();
            for (uint off = 1; off < WG; off <<= 1) {  // Hillis-Steele inclusive scan
                const int y = t >= off ? scan_[t - off] : 0;
                barrier();
                scan_[t] += y;
                barrier();
            }
            if (i < pc.nb) scr[pc.scr_b + h * pc.nb + i] = carry + scan_[t] - x;
            carry += scan_[WG - 1];
            barrier();
        }
        if (t == 0) count[pc.cnt_off + h] = carry;
    } else {
        const uint blk = gl_WorkGroupID.x;
        const uint lo = blk * pc.block, hi = min(lo + pc.block, pc.n);
        const int keep = scr[pc.scr_a + h * pc.nb + blk];
        const int off = scr[pc.scr_b + h * pc.nb + blk];
        const uint srow = pc.a_off + h * pc.a_stride;
        const uint frow = pc.scr_c + h * pc.n;
        for (uint i = lo + t; i < hi; i += WG) {
            const float si = f_in[srow + i];
            int rank = 0;
            for (uint j = lo; j < hi; ++j) rank += ranks_before(f_in[srow + j], j, si, i) ? 1 : 0;
            scr[frow + i] = rank < keep ? 1 : 0;
        }
        memoryBarrierBuffer();
        barrier();
        for (uint i = lo + t; i < hi; i += WG) {
            if (scr[frow + i] == 0) continue;
            int before = 0;
            for (uint j = lo; j < i; ++j) before += scr[frow + j];
            const int slot = off + before;
            if (slot < int(pc.out_stride)) i_out[pc.out_off + h * pc.out_stride + uint(slot)] = int(i);
        }
    }
}
