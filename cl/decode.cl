// Decode attention: one query row per head against segment 1 (rows 0..n1-1 of k1/v1) followed
// by segment 2 (rows 0..n2[h]-1 of k2/v2), as one virtual key sequence. The same algorithm as
// shaders/decode.glsl; parameters, bindings and build constants: src/iface/iface_decode.h.
//
// decode_split: split-K. A work-group owns one KV head and one contiguous range of the virtual
//   sequence and serves all DEC_GROUP query heads of that KV head, so each K/V row is read once.
//   Lanes are (row slot r, column c): DEC_TPR lanes span a row, lane c holding the float4 columns
//   c, c + DEC_TPR, ...; consecutive lanes read consecutive 16-byte units and consecutive row slots
//   consecutive rows (CPU drivers vectorise that into plain loads, GPUs coalesce it). Per tile of
//   DEC_TILE rows: partial dots -> logits (summed over a row's lanes through local memory),
//   online-softmax statistics per query head, then P.V with the same lane layout. The row slots'
//   outputs are summed once per split. Writes the split's (m, l) and unnormalised output.
// decode_merge: log-sum-exp merge of the splits; also keeps the merged (M, L) per query head.
// decode_probs: eviction scores for segment-1 rows from the merged (M, L).
#include "attention_common.h"
#include "iface_decode.h"

// No FMA contraction: decode_probs recomputes every logit in exactly decode_split's arithmetic and
// order, since a logit near the 1e20 score limit one ulp off the max decode_split found would change
// its probability.
#pragma OPENCL FP_CONTRACT OFF

// DEC_BATCH: the batched variant (Device::decode_batch). One launch serves many entries, the grid's
// z being the entry, whose parameters are row z of a table; otherwise they are the by-value argument.
#ifdef DEC_BATCH
#define DEC_PARAMS __global const DecodeParams* ptab
#define DEC_LOAD_PARAMS const DecodeParams p = ptab[get_global_id(2)];
#else
#define DEC_PARAMS const DecodeParams p
#define DEC_LOAD_PARAMS
#endif

#ifndef DEC_WG
#define DEC_WG 64
#endif
#ifndef DEC_GROUP
#define DEC_GROUP 1
#endif
#ifndef DEC_TPR
#define DEC_TPR D4
#endif
#ifndef DEC_TILE
#define DEC_TILE 64
#endif
#define DEC_RP (DEC_WG / DEC_TPR)  // rows read at once
#define DEC_NC (D4 / DEC_TPR)      // float4 columns per lane

// One lane's part of a logit: its columns c, c + DEC_TPR, ... of (scale q) . k.
inline float lane_dot(__local const float4* qh, int c, const float4* kr) {
    float4 s4 = (float4)(0.0f);
    for (int i = 0; i < DEC_NC; ++i) s4 += qh[c + DEC_TPR * i] * kr[i];
    return (s4.x + s4.y) + (s4.z + s4.w);
}

__kernel __attribute__((reqd_work_group_size(DEC_WG, 1, 1)))
void decode_split(__global const float* q, __global const kv_t* k1, __global const kv_t* v1,
                  __global const kv_t* k2, __global const kv_t* v2, __global const int* n2,
                  __global float* part, DEC_PARAMS) {
    __local float4 qs[DEC_GROUP * D4];
    __local float4 osum[DEC_GROUP * D4];
    __local float xs[DEC_GROUP * DEC_TILE];
#if DEC_TPR > 1
    __local float red[DEC_GROUP * DEC_TILE * DEC_TPR];
#endif
    __local float mnew[DEC_GROUP], corr[DEC_GROUP];
    DEC_LOAD_PARAMS

    const int lid = get_local_id(0), r = lid / DEC_TPR, c = lid % DEC_TPR;
    const int split = get_group_id(0), hk = get_group_id(1);
    // A batched launch is as wide as its entry with the most splits (uniform per work-group).
    if (split >= (int)p.nsplit) return;
    for (int e = lid; e < DEC_GROUP * D4; e += DEC_WG) {
        const int h = e / D4, cc = e - h * D4;
        qs[e] = vload4(0, q + p.q_off + (long)(hk * DEC_GROUP + h) * p.q_hs + 4 * cc) * p.scale;
        osum[e] = (float4)(0.0f);
    }
    const int n1 = (int)p.n1;
    const int n = n1 + (p.has2 ? clamp(n2[p.n2_off + hk], 0, (int)p.k2_rows) : 0);
    // Splits are planned from the caller's bound on the rows; the last one takes whatever is left.
    const int a = min((long)split * p.split_len, (long)n);
    const int b = split == (int)p.nsplit - 1 ? n : min(a + (int)p.split_len, n);

    float m = MASK_VALUE, l = 0.0f;  // meaningful in lanes lid < DEC_GROUP: one per query head
    float4 acc[DEC_GROUP][DEC_NC];
    for (int h = 0; h < DEC_GROUP; ++h)
        for (int i = 0; i < DEC_NC; ++i) acc[h][i] = (float4)(0.0f);

    for (int seg = 0; seg < 2; ++seg) {
        // Tiles never straddle the two segments, so a tile's rows are one strided run of memory.
        const int lo = seg ? max(a, n1) : a, hi = seg ? b : min(b, n1), row0 = seg ? n1 : 0;
        __global const kv_t* kb = seg ? k2 + p.k2_off + (long)hk * p.k2_hs : k1 + p.k1_off + (long)hk * p.k1_hs;
        __global const kv_t* vb = seg ? v2 + p.v2_off + (long)hk * p.v2_hs : v1 + p.v1_off + (long)hk * p.v1_hs;
        const long kts = seg ? p.k2_ts : p.k1_ts, vts = seg ? p.v2_ts : p.v1_ts;
        for (int t0 = lo; t0 < hi; t0 += DEC_TILE) {
            const int cnt = min(DEC_TILE, hi - t0);
            __global const kv_t* kt = kb + (long)(t0 - row0) * kts;
            __global const kv_t* vt = vb + (long)(t0 - row0) * vts;
            barrier(CLK_LOCAL_MEM_FENCE);  // qs written / the previous tile's xs consumed
            for (int j0 = 0; j0 < DEC_TILE; j0 += DEC_RP) {
                const int j = j0 + r;
                // Slots past the tile's end read its last row (no conditional loads) and are masked.
                const bool ok = j < cnt;
                const long jr = (long)min(j, cnt - 1) * kts;
                float4 kr[DEC_NC];
                for (int i = 0; i < DEC_NC; ++i) kr[i] = LOAD_KV4(kt, jr + 4 * (c + DEC_TPR * i));
                for (int h = 0; h < DEC_GROUP; ++h) {
                    const float s = lane_dot(qs + h * D4, c, kr);
#if DEC_TPR > 1
                    red[(h * DEC_TILE + j) * DEC_TPR + c] = s;
#else
                    xs[h * DEC_TILE + j] = ok ? s : MASK_VALUE;
#endif
                }
            }
            barrier(CLK_LOCAL_MEM_FENCE);
#if DEC_TPR > 1
            for (int e = lid; e < DEC_GROUP * DEC_TILE; e += DEC_WG) {
                float s = 0.0f;
                for (int pp = 0; pp < DEC_TPR; ++pp) s += red[e * DEC_TPR + pp];
                xs[e] = e % DEC_TILE < cnt ? s : MASK_VALUE;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
#endif
            if (lid < DEC_GROUP) {
                float mx = m;
                for (int t = 0; t < cnt; ++t) mx = fmax(mx, xs[lid * DEC_TILE + t]);
                mnew[lid] = mx;
                corr[lid] = exp(m - mx);
                m = mx;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int e = lid; e < DEC_GROUP * DEC_TILE; e += DEC_WG)
                xs[e] = e % DEC_TILE < cnt ? exp(xs[e] - mnew[e / DEC_TILE]) : 0.0f;
            barrier(CLK_LOCAL_MEM_FENCE);
            if (lid < DEC_GROUP) {
                float sum = 0.0f;
                for (int t = 0; t < cnt; ++t) sum += xs[lid * DEC_TILE + t];
                l = l * corr[lid] + sum;
            }
            for (int h = 0; h < DEC_GROUP; ++h)
                for (int i = 0; i < DEC_NC; ++i) acc[h][i] *= corr[h];
            for (int j0 = 0; j0 < cnt; j0 += DEC_RP) {
                // Slots past the tile's end read its last row with probability 0.
                const int j = min(j0 + r, cnt - 1);
                const float live = j0 + r < cnt ? 1.0f : 0.0f;
                float4 vr[DEC_NC];
                for (int i = 0; i < DEC_NC; ++i) vr[i] = LOAD_KV4(vt, (long)j * vts + 4 * (c + DEC_TPR * i));
                for (int h = 0; h < DEC_GROUP; ++h) {
                    const float pr = xs[h * DEC_TILE + j] * live;
                    for (int i = 0; i < DEC_NC; ++i) acc[h][i] += pr * vr[i];
                }
            }
        }
    }

    // Sum the row slots' outputs (in slot order: deterministic).
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = 0; s < DEC_RP; ++s) {
        if (r == s)
            for (int h = 0; h < DEC_GROUP; ++h)
                for (int i = 0; i < DEC_NC; ++i) osum[h * D4 + c + DEC_TPR * i] += acc[h][i];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const int nsplit = (int)p.nsplit;
    if (lid < DEC_GROUP) {
        const long at = p.part_ml + ((long)(hk * DEC_GROUP + lid) * nsplit + split) * 2;
        part[at] = m;
        part[at + 1] = l;
    }
    for (int e = lid; e < DEC_GROUP * D4; e += DEC_WG) {
        const int h = e / D4, cc = e - h * D4;
        vstore4(osum[e], 0, part + p.part_o + ((long)(hk * DEC_GROUP + h) * nsplit + split) * HEAD_DIM + 4 * cc);
    }
}

// One work-item per (float4 of the output, query head). Splits that saw no key have l == 0 and
// are left out, so an empty split never influences the result.
__kernel void decode_merge(__global float* part, __global float* o, DEC_PARAMS) {
    DEC_LOAD_PARAMS
    const int c = get_global_id(0), hq = get_global_id(1);
    if (c >= D4) return;
    const int nsplit = (int)p.nsplit;
    __global const float* pm = part + p.part_ml + (long)hq * nsplit * 2;
    float mx = MASK_VALUE;
    for (int s = 0; s < nsplit; ++s)
        if (pm[2 * s + 1] > 0.0f) mx = fmax(mx, pm[2 * s]);
    float sum = 0.0f;
    float4 acc = (float4)(0.0f);
    for (int s = 0; s < nsplit; ++s) {
        if (pm[2 * s + 1] > 0.0f) {
            const float w = exp(pm[2 * s] - mx);
            sum += pm[2 * s + 1] * w;
            acc += w * vload4(0, part + p.part_o + ((long)hq * nsplit + s) * HEAD_DIM + 4 * c);
        }
    }
    vstore4(sum > 0.0f ? acc / sum : (float4)(0.0f), 0, o + p.o_off + (long)hq * p.o_hs + 4 * c);
    if (c == 0) {
        part[p.part_merged + 2 * hq] = mx;
        part[p.part_merged + 2 * hq + 1] = sum;
    }
}

// probs[hk][r] = mean over the group's query heads of exp(logit - M) / L, r < probs_n.
// Each logit exactly as decode_split formed it: per-lane parts, then summed over the lanes in order.
__kernel __attribute__((reqd_work_group_size(DEC_WG, 1, 1)))
void decode_probs(__global const float* q, __global const kv_t* k1, __global const float* part,
                  __global float* probs, DEC_PARAMS) {
    __local float4 qs[DEC_GROUP * D4];
    DEC_LOAD_PARAMS
    const int lid = get_local_id(0), hk = get_group_id(1), r = get_global_id(0);
    for (int e = lid; e < DEC_GROUP * D4; e += DEC_WG) {
        const int h = e / D4, cc = e - h * D4;
        qs[e] = vload4(0, q + p.q_off + (long)(hk * DEC_GROUP + h) * p.q_hs + 4 * cc) * p.scale;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (r >= (int)p.probs_n) return;
    const long kr0 = p.k1_off + (long)hk * p.k1_hs + (long)r * p.k1_ts;
    float sum = 0.0f;
    for (int h = 0; h < DEC_GROUP; ++h) {
        float x = 0.0f;
        for (int c = 0; c < DEC_TPR; ++c) {
            float4 kr[DEC_NC];
            for (int i = 0; i < DEC_NC; ++i) kr[i] = LOAD_KV4(k1, kr0 + 4 * (c + DEC_TPR * i));
#if DEC_TPR > 1
            x += lane_dot(qs + h * D4, c, kr);
#else
            x = lane_dot(qs + h * D4, c, kr);
#endif
        }
        const int hq = hk * DEC_GROUP + h;
        const float l = part[p.part_merged + 2 * hq + 1];
        if (l > 0.0f) sum += exp_below(x, part[p.part_merged + 2 * hq]) / l;
    }
    probs[p.probs_off + (long)hk * p.probs_n + r] = sum / DEC_GROUP;
}
