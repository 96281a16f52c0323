// Decode attention: one query row per head against segment 1 (rows [0, n1)) followed by segment 2
// (rows [0, n2[h]), per KV head) as one virtual key sequence, split-K. The same algorithm as
// cl/decode.cl (read its header for the layout); parameters, bindings, specialization constants and
// the scratch layout: src/iface/iface_decode.h. decode_batch*.comp: the batched variant (workgroup z =
// the entry, parameters from a table; Device::decode_batch).
//   MODE 0  one workgroup per (split, KV head), serving the KV head's GROUP query heads: its range of
//           the virtual sequence in tiles, TPR lanes per K/V row; writes the partial (m, l, o).
//   MODE 1  one workgroup per query head: log-sum-exp merge of the splits into o and the merged (M, L).
//   MODE 2  eviction scores: for segment-1 rows r < probs_n, the mean over the group's query heads
//           of exp(s - M) / L.
#include "common.glsl"
#include "iface_decode.h"

layout(local_size_x_id = TCA_DECODE_SPEC_WG) in;
layout(constant_id = TCA_DECODE_SPEC_D) const uint D = 128;
layout(constant_id = TCA_DECODE_SPEC_F16) const uint KV_F16 = 0;
layout(constant_id = TCA_DECODE_SPEC_SGW) const uint SGW = 1;
layout(constant_id = TCA_DECODE_SPEC_MODE) const uint MODE = 0;
layout(constant_id = TCA_DECODE_SPEC_GROUP) const uint GROUP = 1;
layout(constant_id = TCA_DECODE_SPEC_TPR) const uint TPR = 32;
layout(constant_id = TCA_DECODE_SPEC_TILE) const uint TILE = 64;

const uint WG = gl_WorkGroupSize.x;
const uint D4 = D / 4;
const uint RP = WG / TPR;   // rows read at once
const uint NC = D4 / TPR;   // float4 columns per lane
const uint PPR = TPR / SGW; // partial dots per row left after the subgroup reduction

layout(binding = TCA_DECODE_BIND_Q, std430) readonly buffer QBuf { float q_x[]; };
KV_BUFFER(TCA_DECODE_BIND_K1, k1)
KV_BUFFER(TCA_DECODE_BIND_V1, v1)
KV_BUFFER(TCA_DECODE_BIND_K2, k2)
KV_BUFFER(TCA_DECODE_BIND_V2, v2)
layout(binding = TCA_DECODE_BIND_O, std430) writeonly buffer OBuf { float o_x[]; };
layout(binding = TCA_DECODE_BIND_N2, std430) readonly buffer N2Buf { int n2[]; };
layout(binding = TCA_DECODE_BIND_PART, std430) buffer PartBuf { float part[]; };
layout(binding = TCA_DECODE_BIND_PROBS, std430) writeonly buffer ProbBuf { float probs[]; };

shared vec4 qs[GROUP * D4];
shared vec4 osum[GROUP * D4];
shared float xs[GROUP * TILE];
shared float red[GROUP * TILE * PPR];
shared float mnew[GROUP], corr[GROUP];

vec4 load_q4(uint hq, uint c4) {
    const uint e = pc.q_off + hq * pc.q_hs + c4 * 4;
    return vec4(q_x[e], q_x[e + 1], q_x[e + 2], q_x[e + 3]) * pc.scale;
}
vec4 k_at(uint seg, uint e) {
    if (seg == 0u) return k1_load4(e);
    return k2_load4(e);
}
vec4 v_at(uint seg, uint e) {
    if (seg == 0u) return v1_load4(e);
    return v2_load4(e);
}

// One lane's part of a logit: its columns c, c + TPR, ... of (scale q) . k. `precise` (no FMA
// contraction) because MODE 2 recomputes every logit in exactly this arithmetic and order: a logit near
// the 1e20 score limit differing by one ulp from the max MODE 0 found would change its probability.
float lane_dot(uint h, uint c, vec4 kr[NC]) {
    precise vec4 s4 = vec4(0.0);
    [[unroll]] for (uint i = 0; i < NC; ++i) s4 += qs[h * D4 + c + TPR * i] * kr[i];
    precise float s = (s4.x + s4.y) + (s4.z + s4.w);
    return s;
}

// Per-invocation state of MODE 0 (m, l meaningful in lanes t < GROUP).
float m_ = kMask, l_ = 0.0;
vec4 acc_[GROUP * NC];

// Tiles of rows [lo, hi) of one segment (row 0 of its buffers at kb / vb); uniform control flow.
void tiles(uint seg, uint lo, uint hi, uint kb, uint kts, uint vb, uint vts) {
    const uint t = gl_LocalInvocationIndex, r = t / TPR, c = t % TPR;
    for (uint t0 = lo; t0 < hi; t0 += TILE) {
        const uint cnt = min(TILE, hi - t0);
        barrier();  // qs written / the previous tile's xs consumed
        for (uint j = r; j < TILE; j += RP) {
            // Slots past the tile's end read its last row and are masked.
            const uint row = kb + (t0 + min(j, cnt - 1)) * kts;
            vec4 kr[NC];
            [[unroll]] for (uint i = 0; i < NC; ++i) kr[i] = k_at(seg, row + 4 * (c + TPR * i));
            [[unroll]] for (uint h = 0; h < GROUP; ++h) {
                precise float s = lane_dot(h, c, kr);
                if (SGW > 1)
                    for (uint o = 1; o < SGW; o <<= 1) s += subgroupShuffleXor(s, o);
                if (PPR > 1) {
                    if (c % SGW == 0) red[(h * TILE + j) * PPR + c / SGW] = s;
                } else if (c == 0) {
                    xs[h * TILE + j] = j < cnt ? s : kMask;
                }
            }
        }
        barrier();
        if (PPR > 1) {
            for (uint e = t; e < GROUP * TILE; e += WG) {
                precise float s = 0.0;
                for (uint p = 0; p < PPR; ++p) s += red[e * PPR + p];
                xs[e] = e % TILE < cnt ? s : kMask;
            }
            barrier();
        }
        if (t < GROUP) {
            float mx = m_;
            for (uint u = 0; u < cnt; ++u) mx = max(mx, xs[t * TILE + u]);
            mnew[t] = mx;
            corr[t] = exp(m_ - mx);
            m_ = mx;
        }
        barrier();
        for (uint e = t; e < GROUP * TILE; e += WG) xs[e] = e % TILE < cnt ? exp(xs[e] - mnew[e / TILE]) : 0.0;
        barrier();
        if (t < GROUP) {
            float sum = 0.0;
            for (uint u = 0; u < cnt; ++u) sum += xs[t * TILE + u];
            l_ = l_ * corr[t] + sum;
        }
        [[unroll]] for (uint h = 0; h < GROUP; ++h)
            [[unroll]] for (uint i = 0; i < NC; ++i) acc_[h * NC + i] *= corr[h];
        for (uint j = r; j < cnt; j += RP) {
            const uint row = vb + (t0 + j) * vts;
            vec4 vr[NC];
            [[unroll]] for (uint i = 0; i < NC; ++i) vr[i] = v_at(seg, row + 4 * (c + TPR * i));
            [[unroll]] for (uint h = 0; h < GROUP; ++h) {
                const float p = xs[h * TILE + j];
                [[unroll]] for (uint i = 0; i < NC; ++i) acc_[h * NC + i] += p * vr[i];
            }
        }
    }
}

void main() {
    const uint t = gl_LocalInvocationIndex;
    if (MODE == 0) {
        const uint split = gl_WorkGroupID.x, hk = gl_WorkGroupID.y;
        // A batched dispatch is as wide as its entry with the most splits (uniform per workgroup).
        if (split >= pc.nsplit) return;
        const uint r = t / TPR, c = t % TPR;
        for (uint e = t; e < GROUP * D4; e += WG) {
            qs[e] = load_q4(hk * GROUP + e / D4, e % D4);
            osum[e] = vec4(0.0);
        }
        [[unroll]] for (uint i = 0; i < GROUP * NC; ++i) acc_[i] = vec4(0.0);
        const uint n1 = pc.n1;
        const uint n = n1 + (pc.has2 != 0 ? min(uint(max(n2[pc.n2_off + hk], 0)), pc.k2_rows) : 0u);
        // Splits are planned from the caller's bound on the rows; the last one takes whatever is left.
        const uint a = min(split * pc.split_len, n);
        const uint b = split == pc.nsplit - 1 ? n : min(a + pc.split_len, n);
        // Tiles never straddle the segments, so a tile's rows are one strided run of memory.
        tiles(0u, a, min(b, n1), pc.k1_off + hk * pc.k1_hs, pc.k1_ts, pc.v1_off + hk * pc.v1_hs, pc.v1_ts);
        const uint lo2 = max(a, n1);
        if (pc.has2 != 0 && lo2 < b)
            tiles(1u, lo2 - n1, b - n1, pc.k2_off + hk * pc.k2_hs, pc.k2_ts, pc.v2_off + hk * pc.v2_hs, pc.v2_ts);
        // Sum the row slots' outputs (in slot order: deterministic).
        barrier();
        for (uint s = 0; s < RP; ++s) {
            if (r == s)
                [[unroll]] for (uint h = 0; h < GROUP; ++h)
                    [[unroll]] for (uint i = 0; i < NC; ++i) osum[h * D4 + c + TPR * i] += acc_[h * NC + i];
            barrier();
        }
        if (t < GROUP) {
            const uint at = pc.part_ml + ((hk * GROUP + t) * pc.nsplit + split) * 2;
            part[at] = m_, part[at + 1] = l_;
        }
        for (uint e = t; e < GROUP * D4; e += WG) {
            const uint at = pc.part_o + ((hk * GROUP + e / D4) * pc.nsplit + split) * D + (e % D4) * 4;
            const vec4 o = osum[e];
            part[at] = o.x, part[at + 1] = o.y, part[at + 2] = o.z, part[at + 3] = o.w;
        }
    } else if (MODE == 1) {
        // Splits that saw no key have l == 0 and are left out.
        const uint hq = gl_WorkGroupID.y, ml = pc.part_ml + hq * pc.nsplit * 2;
        float M = kMask;
        for (uint s = 0; s < pc.nsplit; ++s)
            if (part[ml + 2 * s + 1] > 0.0) M = max(M, part[ml + 2 * s]);
        for (uint c4 = t; c4 < D4; c4 += WG) {
            float L = 0.0;
            vec4 acc = vec4(0.0);
            for (uint s = 0; s < pc.nsplit; ++s) {
                if (part[ml + 2 * s + 1] > 0.0) {
                    const float w = exp(part[ml + 2 * s] - M);
                    L += part[ml + 2 * s + 1] * w;
                    const uint at = pc.part_o + (hq * pc.nsplit + s) * D + c4 * 4;
                    acc += w * vec4(part[at], part[at + 1], part[at + 2], part[at + 3]);
                }
            }
            const vec4 o = L > 0.0 ? acc / L : vec4(0.0);
            const uint e = pc.o_off + hq * pc.o_hs + c4 * 4;
            o_x[e] = o.x, o_x[e + 1] = o.y, o_x[e + 2] = o.z, o_x[e + 3] = o.w;
            if (c4 == 0) part[pc.part_merged + hq * 2] = M, part[pc.part_merged + hq * 2 + 1] = L;
        }
    } else {
        const uint hk = gl_WorkGroupID.y, r = gl_WorkGroupID.x * WG + t;
        for (uint e = t; e < GROUP * D4; e += WG) qs[e] = load_q4(hk * GROUP + e / D4, e % D4);
        barrier();
        if (r < pc.probs_n) {
            const uint base = pc.k1_off + hk * pc.k1_hs + r * pc.k1_ts;
            float sum = 0.0;
            for (uint g = 0; g < GROUP; ++g) {
                // The logit exactly as MODE 0 formed it: per-lane parts, the subgroup butterfly's
                // pairwise tree over SGW lanes, then the PPR partials in order.
                float tp[TPR];
                for (uint c = 0; c < TPR; ++c) {
                    vec4 kr[NC];
                    [[unroll]] for (uint i = 0; i < NC; ++i) kr[i] = k1_load4(base + 4 * (c + TPR * i));
                    tp[c] = lane_dot(g, c, kr);
                }
                for (uint o = 1; o < SGW; o <<= 1)
                    for (uint c = 0; c < TPR; c += 2 * o) {
                        precise float x = tp[c] + tp[c + o];
                        tp[c] = x;
                    }
                precise float x = 0.0;
                for (uint p = 0; p < PPR; ++p) x += tp[p * SGW];
                const uint hq = hk * GROUP + g;
                const float L = part[pc.part_merged + hq * 2 + 1];
                if (L > 0.0) sum += exp_below(x, part[pc.part_merged + hq * 2]) / L;
            }
            probs[pc.probs_off + hk * pc.probs_n + r] = sum / float(GROUP);
        }
    }
}
