// Decode attention: one query row per head against segment 1 (rows 0..n1-1 of k1/v1) followed
// by segment 2 (rows 0..n2[h]-1 of k2/v2), as one virtual key sequence.
//
// decode_split: split-K. A work-group owns one KV head and one contiguous range of the virtual
//   sequence and serves all the group's query heads at once, so each K/V row is read once per
//   group. Keys go through in chunks of DEC_WG (one key per work-item for the logits); the
//   (head, dim) pairs of the output are spread over the work-items for the P.V product.
//   Writes the split's running max m, sum l and unnormalised output.
// decode_merge: log-sum-exp merge of the splits; also keeps the merged (m, l) per query head.
// decode_probs: eviction scores for segment-1 rows from the merged (m, l).
#include "attention_common.h"

#ifndef DEC_WG
#define DEC_WG 64
#endif
#define PAIRS ((MAX_GROUP * D4 + DEC_WG - 1) / DEC_WG)

__kernel __attribute__((reqd_work_group_size(DEC_WG, 1, 1)))
void decode_split(TENSOR(const float, q), TENSOR(const kv_t, k1), TENSOR(const kv_t, v1), int n1,
                  TENSOR(const kv_t, k2), TENSOR(const kv_t, v2), int k2_rows, __global const int* n2, long n2_off,
                  int has2, int group, float scale, int split_len, __global float* part_ml, __global float* part_o) {
    __local float4 qs[MAX_GROUP * D4];
    __local float xs[MAX_GROUP * DEC_WG];
    __local float mnew[MAX_GROUP], corr[MAX_GROUP];

    const int lid = get_local_id(0);
    const int split = get_group_id(0), nsplit = get_num_groups(0);
    const int hk = get_group_id(1);
    for (int e = lid; e < group * D4; e += DEC_WG) {
        const int h = e / D4, c = e - h * D4;
        qs[e] = vload4(0, q + ROW(q, hk * group + h, 0) + 4 * c) * scale;
    }
    const int n = n1 + (has2 ? clamp(n2[n2_off + hk], 0, k2_rows) : 0);
    const int a = split * split_len, b = min(a + split_len, n);

    float m = MASK_VALUE, l = 0.0f;  // meaningful in work-items lid < group: one per query head
    float4 acc[PAIRS];
    for (int pi = 0; pi < PAIRS; ++pi) acc[pi] = (float4)(0.0f);

    for (int c0 = a; c0 < b; c0 += DEC_WG) {
        barrier(CLK_LOCAL_MEM_FENCE);  // qs written / previous chunk's xs fully consumed
        const int key = c0 + lid;
        if (key < b) {
            float4 kr[D4];
            const bool first = key < n1;
            __global const kv_t* src = first ? k1 : k2;
            const long r = first ? ROW(k1, hk, key) : ROW(k2, hk, key - n1);
            for (int c = 0; c < D4; ++c) kr[c] = LOAD_KV4(src, r + 4 * c);
            for (int h = 0; h < group; ++h) xs[h * DEC_WG + lid] = dot_local_row(qs + h * D4, kr);
        } else {
            for (int h = 0; h < group; ++h) xs[h * DEC_WG + lid] = MASK_VALUE;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < group) {
            float mx = m;
            for (int t = 0; t < DEC_WG; ++t) mx = fmax(mx, xs[lid * DEC_WG + t]);
            mnew[lid] = mx;
            corr[lid] = exp(m - mx);
            m = mx;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int h = 0; h < group; ++h) {
            const float x = xs[h * DEC_WG + lid];
            xs[h * DEC_WG + lid] = x != MASK_VALUE ? exp(x - mnew[h]) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < group) {
            float sum = 0.0f;
            for (int t = 0; t < DEC_WG; ++t) sum += xs[lid * DEC_WG + t];
            l = l * corr[lid] + sum;
        }
        const int cnt = min(DEC_WG, b - c0);
        for (int pi = 0; pi < PAIRS; ++pi) {
            const int e = lid + pi * DEC_WG;
            if (e < group * D4) {
                const int h = e / D4, c = e - h * D4;
                float4 s = acc[pi] * corr[h];
                for (int t = 0; t < cnt; ++t) {
                    const int kk = c0 + t;
                    const bool first = kk < n1;
                    __global const kv_t* src = first ? v1 : v2;
                    const long r = first ? ROW(v1, hk, kk) : ROW(v2, hk, kk - n1);
                    s += xs[h * DEC_WG + t] * LOAD_KV4(src, r + 4 * c);
                }
                acc[pi] = s;
            }
        }
    }

    if (lid < group) {
        const long at = ((long)(hk * group + lid) * nsplit + split) * 2;
        part_ml[at] = m;
        part_ml[at + 1] = l;
    }
    for (int pi = 0; pi < PAIRS; ++pi) {
        const int e = lid + pi * DEC_WG;
        if (e < group * D4) {
            const int h = e / D4, c = e - h * D4;
            vstore4(acc[pi], 0, part_o + ((long)(hk * group + h) * nsplit + split) * HEAD_DIM + 4 * c);
        }
    }
}

// One work-item per (float4 of the output, query head). Splits that saw no key have l == 0 and
// are left out, so an empty split never influences the result.
__kernel void decode_merge(__global const float* part_ml, __global const float* part_o, int nsplit,
                           TENSOR(float, o), __global float* ml) {
    const int c = get_global_id(0), hq = get_global_id(1);
    if (c >= D4) return;
    __global const float* pm = part_ml + (long)hq * nsplit * 2;
    float mx = MASK_VALUE;
    for (int s = 0; s < nsplit; ++s)
        if (pm[2 * s + 1] > 0.0f) mx = fmax(mx, pm[2 * s]);
    float sum = 0.0f;
    float4 acc = (float4)(0.0f);
    for (int s = 0; s < nsplit; ++s) {
        if (pm[2 * s + 1] > 0.0f) {
            const float w = exp(pm[2 * s] - mx);
            sum += pm[2 * s + 1] * w;
            acc += w * vload4(0, part_o + ((long)hq * nsplit + s) * HEAD_DIM + 4 * c);
        }
    }
    vstore4(sum > 0.0f ? acc / sum : (float4)(0.0f), 0, o + ROW(o, hq, 0) + 4 * c);
    if (c == 0) {
        ml[2 * hq] = mx;
        ml[2 * hq + 1] = sum;
    }
}

// probs[hk][r] = mean over the group's query heads of exp(logit - m) / l, r < probs_n.
__kernel void decode_probs(TENSOR(const float, q), TENSOR(const kv_t, k1), int group, float scale,
                           __global const float* ml, __global float* probs, long probs_off, int probs_n) {
    const int r = get_global_id(0), hk = get_global_id(1);
    if (r >= probs_n) return;
    float4 kr[D4], qr[D4];
    const long kr0 = ROW(k1, hk, r);
    for (int c = 0; c < D4; ++c) kr[c] = LOAD_KV4(k1, kr0 + 4 * c);
    float sum = 0.0f;
    for (int h = 0; h < group; ++h) {
        const int hq = hk * group + h;
        const long q0 = ROW(q, hq, 0);
        for (int c = 0; c < D4; ++c) qr[c] = vload4(0, q + q0 + 4 * c) * scale;
        const float l = ml[2 * hq + 1];
        if (l > 0.0f) sum += exp_below(dot_row(qr, kr), ml[2 * hq]) / l;
    }
    probs[probs_off + (long)hk * probs_n + r] = sum / group;
}
