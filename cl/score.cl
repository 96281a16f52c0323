// Importance scores: s[h][j] = mean over the group's query heads of softmax_j(q[hq][q_row] . k[h][j]).
//
// score_stats: one work-group per (chunk of keys, KV head). Each work-item keeps an online
//   (max, sum) per query head over its keys; the group folds them in a fixed order and writes
//   one partial (m, l) per query head and chunk. With one query head per KV head the logits
//   are parked in s, so the last pass needs no second read of K.
// score_merge: folds the chunk partials of each query head into its (m, l).
// score_norm: s[j] = mean_h exp(logit_h[j] - m_h) / l_h.
#include "attention_common.h"

#ifndef SC_WG
#define SC_WG 64
#endif

inline void load_scaled_q(__local float4* qs, __global const float* q, long q_off, long q_hs, long q_ts, int q_row,
                          int hq0, int group, float scale, int lid, int nthreads) {
    for (int e = lid; e < group * D4; e += nthreads) {
        const int h = e / D4, c = e - h * D4;
        qs[e] = vload4(0, q + q_off + (long)(hq0 + h) * q_hs + (long)q_row * q_ts + 4 * c) * scale;
    }
}

__kernel __attribute__((reqd_work_group_size(SC_WG, 1, 1)))
void score_stats(TENSOR(const float, q), int q_row, TENSOR(const kv_t, k), int n_keys, int group, float scale,
                 int chunk_len, __global float* s, long s_off, int s_stride, int logits_in_s,
                 __global float* part) {
    __local float4 qs[MAX_GROUP * D4];
    __local float lm[MAX_GROUP * SC_WG], ll[MAX_GROUP * SC_WG];
    const int lid = get_local_id(0), chunk = get_group_id(0), nchunks = get_num_groups(0);
    const int hk = get_group_id(1);
    load_scaled_q(qs, q, q_off, q_hs, q_ts, q_row, hk * group, group, scale, lid, SC_WG);
    barrier(CLK_LOCAL_MEM_FENCE);

    float m[MAX_GROUP], l[MAX_GROUP];
    for (int h = 0; h < MAX_GROUP; ++h) {
        m[h] = MASK_VALUE;
        l[h] = 0.0f;
    }
    const int end = min((chunk + 1) * chunk_len, n_keys);
    for (int j = chunk * chunk_len + lid; j < end; j += SC_WG) {
        float4 kr[D4];
        const long r = ROW(k, hk, j);
        for (int c = 0; c < D4; ++c) kr[c] = LOAD_KV4(k, r + 4 * c);
        for (int h = 0; h < group; ++h) {
            const float x = dot_local_row(qs + h * D4, kr);
            if (logits_in_s) s[s_off + (long)hk * s_stride + j] = x;
            const float mx = fmax(m[h], x);
            l[h] = l[h] * exp(m[h] - mx) + exp(x - mx);
            m[h] = mx;
        }
    }
    for (int h = 0; h < group; ++h) {
        lm[h * SC_WG + lid] = m[h];
        ll[h * SC_WG + lid] = l[h];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < group) {
        float mx = MASK_VALUE, sum = 0.0f;
        for (int t = 0; t < SC_WG; ++t) mx = fmax(mx, lm[lid * SC_WG + t]);
        for (int t = 0; t < SC_WG; ++t)
            if (ll[lid * SC_WG + t] > 0.0f) sum += ll[lid * SC_WG + t] * exp(lm[lid * SC_WG + t] - mx);
        const long at = ((long)(hk * group + lid) * nchunks + chunk) * 2;
        part[at] = mx;
        part[at + 1] = sum;
    }
}

__kernel void score_merge(__global const float* part, int nchunks, __global float* ml) {
    const int hq = get_global_id(0);
    __global const float* p = part + (long)hq * nchunks * 2;
    float mx = MASK_VALUE, sum = 0.0f;
    for (int c = 0; c < nchunks; ++c)
        if (p[2 * c + 1] > 0.0f) mx = fmax(mx, p[2 * c]);
    for (int c = 0; c < nchunks; ++c)
        if (p[2 * c + 1] > 0.0f) sum += p[2 * c + 1] * exp(p[2 * c] - mx);
    ml[2 * hq] = mx;
    ml[2 * hq + 1] = sum;
}

__kernel void score_norm(TENSOR(const float, q), int q_row, TENSOR(const kv_t, k), int n_keys, int group,
                         float scale, __global float* s, long s_off, int s_stride, int logits_in_s,
                         __global const float* ml) {
    const int j = get_global_id(0), hk = get_global_id(1);
    if (j >= n_keys) return;
    __global float* out = s + s_off + (long)hk * s_stride + j;
    if (logits_in_s) {
        *out = exp(*out - ml[2 * hk]) / ml[2 * hk + 1];
        return;
    }
    float4 kr[D4], qr[D4];
    const long r = ROW(k, hk, j);
    for (int c = 0; c < D4; ++c) kr[c] = LOAD_KV4(k, r + 4 * c);
    float sum = 0.0f;
    for (int h = 0; h < group; ++h) {
        const int hq = hk * group + h;
        const long q0 = ROW(q, hq, q_row);
        for (int c = 0; c < D4; ++c) qr[c] = vload4(0, q + q0 + 4 * c) * scale;
        sum += exp_below(dot_row(qr, kr), ml[2 * hq]) / ml[2 * hq + 1];
    }
    *out = sum / group;
}
