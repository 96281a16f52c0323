// The flash-attention family: one tiled kernel, three modes chosen by specialization constant.
//
//   MODE 0  prefill, dense or sparse (SPARSE): online softmax over key tiles, output o.
//   MODE 1  colsum pass 1: the same loop without V; writes each query row's softmax (max, sum).
//   MODE 2  colsum pass 2: roles swapped (rows = keys, staged columns = queries); sums each key's
//           normalised probability exp(s - m_i) / l_i over the queries i >= j that see it.
//
// Layout: a workgroup owns BR rows; TPR consecutive threads share a row, each holding D/TPR of it
// (interleaved vec4s) in registers together with the matching slice of the output accumulator.
// GPUs use TPR = 4 (small per-thread state); CPU drivers use TPR = 1, where every SIMD lane reads
// the same shared-memory address (a broadcast instead of a gather).
// Columns are staged BC at a time through shared memory. A score is the sum of the TPR partial dot
// products (subgroup butterfly, or the same tree through shared memory), so every thread of a row
// ends up with identical scores and runs the identical softmax update; nothing L x L is stored.
// Causal: only key tiles up to the workgroup's last query are visited.
// Sparse: the column list is virtual: first the row block's usable kept tokens (gathered by index,
// kept_idx <= last query - window, masked per query), then the local band; work is proportional to
// what is kept.
// Parameters, bindings, specialization constants and modes: src/iface/iface_attn.h.
#include "common.glsl"
#include "iface_attn.h"

layout(local_size_x_id = TCA_ATTN_SPEC_WG) in;                // BR * TPR
layout(constant_id = TCA_ATTN_SPEC_BR) const uint BR = 32;     // rows per workgroup
layout(constant_id = TCA_ATTN_SPEC_BC) const uint BC = 32;     // columns per staged tile (<= 32: one mask word)
layout(constant_id = TCA_ATTN_SPEC_D) const uint D = 128;      // head dim, a multiple of 4
layout(constant_id = TCA_ATTN_SPEC_TPR) const uint TPR = 4;    // threads per row: 1, 2 or 4
layout(constant_id = TCA_ATTN_SPEC_KV_F16) const uint KV_F16 = 0;
layout(constant_id = TCA_ATTN_SPEC_USE_SG) const uint USE_SG = 0;
layout(constant_id = TCA_ATTN_SPEC_MODE) const uint MODE = 0;
layout(constant_id = TCA_ATTN_SPEC_SPARSE) const uint SPARSE = 0;

const uint WG = gl_WorkGroupSize.x;
const uint D4 = D / 4;
const uint NV = (D4 + TPR - 1) / TPR;  // vec4s of a row per thread

layout(binding = TCA_ATTN_BIND_Q, std430) readonly buffer QBuf { float q_x[]; };
KV_BUFFER(TCA_ATTN_BIND_K, k)
KV_BUFFER(TCA_ATTN_BIND_V, v)
layout(binding = TCA_ATTN_BIND_O, std430) writeonly buffer OBuf { float o_x[]; };
layout(binding = TCA_ATTN_BIND_KEPT_IDX, std430) readonly buffer IdxBuf { int kept_idx[]; };
layout(binding = TCA_ATTN_BIND_KEPT_COUNT, std430) readonly buffer CntBuf { int kept_cnt[]; };
layout(binding = TCA_ATTN_BIND_STATS, std430) buffer StatBuf { float stats[]; };
layout(binding = TCA_ATTN_BIND_COLSUM, std430) writeonly buffer ColBuf { float col_x[]; };

shared vec4 tile[BC * D4];
shared int tpos[BC];          // token position of each staged column, -1 past the end
shared float tm[BC], tl[BC];  // MODE 2: the staged queries' softmax max and sum
shared float part[USE_SG != 0 || TPR == 1 ? 1 : BR * TPR * BC];  // partial dots, no subgroups
shared float sp[BR * BC];     // each row's scaled, masked scores of the current tile

// Scaled score, or kMask when row r (query position p; MODE 2: key r) does not attend column c.
float masked_score(float d, uint c, uint u0, uint r, int p, uint n_use, int W) {
    const int j = tpos[c];
    bool valid;
    if (MODE == 2) valid = j >= int(r);
    else valid = j >= 0 && (u0 + c < n_use ? j <= p - W : (j > p - W && j <= p));
    return valid ? d : kMask;  // d is already scaled: the q operand is (see main)
}

vec4 q_load4(uint e) { return vec4(q_x[e], q_x[e + 1], q_x[e + 2], q_x[e + 3]); }

void main() {
    const uint t = gl_LocalInvocationIndex;
    const uint row = t / TPR, lane = t % TPR;
    const uint hy = gl_WorkGroupID.y;  // MODE 0/1: query head; MODE 2: KV head
    const uint hk = MODE == 2 ? hy : hy / pc.group;
    const uint nrows = MODE == 2 ? pc.lk : pc.lq;
    const uint r_first = gl_WorkGroupID.x * BR;
    const uint r = r_first + row;
    const bool row_ok = r < nrows;

    // This thread's slice of its row operand (q row, or k row in MODE 2). A score is (scale q) . k
    // in every mode, as on every backend: q is scaled as it is loaded, never the dot product, so
    // no unscaled q . k is formed (tca.h, "input range", bounds |scale| ||q|| ||k||).
    vec4 x[NV];
    [[unroll]] for (uint i = 0; i < NV; ++i) {
        const uint c4 = lane + i * TPR;
        x[i] = vec4(0.0);
        if (row_ok && c4 < D4)
            x[i] = MODE == 2 ? k_load4(pc.k_off + hk * pc.k_hs + r * pc.k_ts + c4 * 4)
                             : q_load4(pc.q_off + hy * pc.q_hs + r * pc.q_ts + c4 * 4) * pc.scale;
    }

    // The virtual column list (see the header): U columns; the first n_use are kept global tokens.
    const uint r_last = min(r_first + BR, nrows) - 1;
    const int p = int(pc.q_pos0 + r);
    const int p_first = int(pc.q_pos0 + r_first), p_last = int(pc.q_pos0 + r_last);
    const int W = SPARSE != 0 ? pc.window : 0x3fffffff;  // dense: the "window" holds everything
    uint n_use = 0;
    int band0 = 0;
    if (SPARSE != 0) {
        const uint base = pc.idx_off + hk * pc.kept_stride;
        uint lo = 0, hi = min(uint(max(kept_cnt[pc.cnt_off + hk], 0)), pc.kept_stride);
        while (lo < hi) {  // kept rows are sorted: count those usable by the block's last query
            const uint mid = (lo + hi) / 2;
            if (kept_idx[base + mid] <= p_last - W) lo = mid + 1; else hi = mid;
        }
        n_use = lo;
        band0 = max(0, p_first - W + 1);
    }
    const uint U = MODE == 2 ? pc.lq - r_first : n_use + uint(p_last - band0 + 1);

    float m = kMask, l = 0.0, csum = 0.0;
    vec4 acc[NV];
    [[unroll]] for (uint i = 0; i < NV; ++i) acc[i] = vec4(0.0);

    const uint passes = MODE == 2 ? pc.group : 1;  // MODE 2 sums over the group's query heads
    for (uint g = 0; g < passes; ++g) {
        const uint hq = MODE == 2 ? hk * pc.group + g : hy;
        for (uint u0 = 0; u0 < U; u0 += BC) {
            barrier();  // the previous tile (and partial dots) are fully consumed
            if (t < BC) {
                const uint u = u0 + t;
                int pos = -1;
                if (u < U) {
                    if (MODE == 2) pos = int(r_first + u);
                    else if (u < n_use) pos = kept_idx[pc.idx_off + hk * pc.kept_stride + u];
                    else pos = band0 + int(u - n_use);
                }
                tpos[t] = pos;
                if (MODE == 2 && pos >= 0) {
                    tm[t] = stats[pc.stats_off + (hq * pc.lq + uint(pos)) * 2];
                    tl[t] = stats[pc.stats_off + (hq * pc.lq + uint(pos)) * 2 + 1];
                }
            }
            barrier();
            for (uint e = t; e < BC * D4; e += WG) {
                const uint c = e / D4, c4 = e % D4;
                const int pos = tpos[c];
                vec4 val = vec4(0.0);
                if (pos >= 0)
                    val = MODE == 2 ? q_load4(pc.q_off + hq * pc.q_hs + uint(pos) * pc.q_ts + c4 * 4) * pc.scale
                                    : k_load4(pc.k_off + hk * pc.k_hs + uint(pos) * pc.k_ts + c4 * 4);
                tile[e] = val;
            }
            barrier();

            // Scores: partial dot products over this thread's slice, summed across the row's TPR
            // threads (butterfly, or the same pairing through shared memory so both paths agree
            // bitwise), masked and published per row in sp.
            for (uint c = 0; c < BC; ++c) {
                float d = 0.0;
                [[unroll]] for (uint i = 0; i < NV; ++i) {
                    const uint c4 = lane + i * TPR;
                    if (NV * TPR == D4 || c4 < D4) d += dot(x[i], tile[c * D4 + c4]);
                }
                if (USE_SG != 0 || TPR == 1) {
                    if (TPR > 1)
                        for (uint msk = 1; msk < TPR; msk <<= 1) d += subgroupShuffleXor(d, msk);
                    if (lane == 0) sp[row * BC + c] = masked_score(d, c, u0, r, p, n_use, W);
                } else {
                    part[(row * TPR + lane) * BC + c] = d;
                }
            }
            if (USE_SG == 0 && TPR > 1) {
                barrier();
                for (uint c = lane; c < BC; c += TPR) {
                    // The butterfly's pairing (TPR is 1, 2 or 4), written out: no indexed arrays.
                    const uint b = row * TPR * BC + c;
                    float d = part[b];
                    if (TPR == 2) d = part[b] + part[b + BC];
                    if (TPR == 4) d = (part[b] + part[b + BC]) + (part[b + 2 * BC] + part[b + 3 * BC]);
                    sp[row * BC + c] = masked_score(d, c, u0, r, p, n_use, W);
                }
            }
            barrier();

            if (MODE == 2) {
                for (uint c = 0; c < BC; ++c) {
                    const float sc = sp[row * BC + c];
                    if (sc != kMask) csum += exp_below(sc, tm[c]) / tl[c];
                }
                continue;
            }

            // The online-softmax update (identical in every thread of the row).
            float mt = kMask;
            for (uint c = 0; c < BC; ++c) mt = max(mt, sp[row * BC + c]);
            const float mn = max(m, mt);
            const float alpha = exp(m - mn);
            float ls = 0.0;
            if (MODE == 0) {
                barrier();  // K tile consumed by every row: reuse the space for V
                for (uint e = t; e < BC * D4; e += WG) {
                    const uint c = e / D4, c4 = e % D4;
                    const int pos = tpos[c];
                    tile[e] = pos >= 0 ? v_load4(pc.v_off + hk * pc.v_hs + uint(pos) * pc.v_ts + c4 * 4) : vec4(0.0);
                }
                barrier();
                [[unroll]] for (uint i = 0; i < NV; ++i) acc[i] *= alpha;
            }
            for (uint c = 0; c < BC; ++c) {
                const float sc = sp[row * BC + c];
                const float pr = sc != kMask ? exp(sc - mn) : 0.0;
                ls += pr;
                if (MODE == 0)
                    [[unroll]] for (uint i = 0; i < NV; ++i) {
                        const uint c4 = lane + i * TPR;
                        if (NV * TPR == D4 || c4 < D4) acc[i] += pr * tile[c * D4 + c4];
                    }
            }
            l = l * alpha + ls;
            m = mn;
        }
    }

    if (!row_ok) return;
    if (MODE == 0) {
        const float inv = l > 0.0 ? 1.0 / l : 0.0;  // l >= 1 once any key is seen: never 1 / 0
        [[unroll]] for (uint i = 0; i < NV; ++i) {
            const uint c4 = lane + i * TPR;
            if (c4 < D4) {
                const uint e = pc.o_off + hy * pc.o_hs + r * pc.o_ts + c4 * 4;
                const vec4 o = acc[i] * inv;
                o_x[e] = o.x, o_x[e + 1] = o.y, o_x[e + 2] = o.z, o_x[e + 3] = o.w;
            }
        }
    } else if (lane == 0) {
        if (MODE == 1) {
            stats[pc.stats_off + (hy * pc.lq + r) * 2] = m;
            stats[pc.stats_off + (hy * pc.lq + r) * 2 + 1] = l;
        } else {
            col_x[pc.c_off + hk * pc.c_stride + r] = csum / (float(pc.group) * float(pc.lq - r));
        }
    }
}
