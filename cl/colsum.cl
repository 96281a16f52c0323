// Calibration statistic c[h][j]: mean attention key j receives under full causal attention,
// averaged over the group's query heads, without forming the L x L matrix.
//
// colsum_stats: per query row, the softmax max m and sum l over keys j <= i, flash-style (the
//   prefill kernel without V): one work-item per query row, key tiles through local memory.
// colsum_cols: one work-item per key j, its k row in private memory; query tiles (scaled q,
//   m, l) go through local memory and each key accumulates exp(q_i.k_j - m_i) / l_i, i >= j.
// Both passes compute a logit with the same operations in the same order, so the probabilities
// of a row sum to one as the first pass saw them. Rows and keys go four at a time (BK is a
// multiple of 4) for independent accumulation chains.
#include "attention_common.h"

#ifndef BQ
#define BQ 64
#endif
#ifndef BK
#define BK 32
#endif

__kernel __attribute__((reqd_work_group_size(BQ, 1, 1)))
void colsum_stats(TENSOR(const float, q), TENSOR(const kv_t, k), int L, int group, float scale,
                  __global float* stats) {
    __local float4 kt[BK * D4];
    __local int kpos[BK];
    const int lid = get_local_id(0);
    const int tile = get_num_groups(0) - 1 - get_group_id(0);  // heaviest first
    const int hq = get_group_id(1), hk = hq / group;
    const int i = tile * BQ + lid;
    const int last = min(tile * BQ + BQ, L) - 1;
    const int p = min(i, last);

    float4 qr[D4];
    const long r0 = ROW(q, hq, p);
    for (int c = 0; c < D4; ++c) qr[c] = vload4(0, q + r0 + 4 * c) * scale;
    float m = MASK_VALUE, l = 0.0f;

    for (int t0 = 0; t0 <= last; t0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int r = lid; r < BK; r += BQ) kpos[r] = t0 + r <= last ? t0 + r : -1;
        barrier(CLK_LOCAL_MEM_FENCE);
        load_tile(kt, kpos, BK, k, k_off, k_hs, k_ts, hk, lid, BQ);
        barrier(CLK_LOCAL_MEM_FENCE);
        float s[BK];
        float mt = m;
        for (int jj = 0; jj < BK; jj += 4) {
            const float4 x4 = dot_row_local4(qr, kt + jj * D4);
            const float xs[4] = {x4.s0, x4.s1, x4.s2, x4.s3};
            for (int u = 0; u < 4; ++u) {
                const int pos = kpos[jj + u];
                s[jj + u] = (pos >= 0 && pos <= p) ? xs[u] : MASK_VALUE;
                mt = fmax(mt, s[jj + u]);
            }
        }
        l *= exp(m - mt);
        for (int jj = 0; jj < BK; ++jj) l += s[jj] != MASK_VALUE ? exp(s[jj] - mt) : 0.0f;
        m = mt;
    }
    if (i < L) {
        stats[((long)hq * L + i) * 2] = m;
        stats[((long)hq * L + i) * 2 + 1] = l;
    }
}

__kernel __attribute__((reqd_work_group_size(BQ, 1, 1)))
void colsum_cols(TENSOR(const float, q), TENSOR(const kv_t, k), int L, int group, float scale,
                 __global const float* stats, __global float* c, long c_off, int c_stride) {
    __local float4 qt[BK * D4];
    __local float qm[BK], ql[BK];
    const int lid = get_local_id(0), hk = get_group_id(1);
    const int j0 = get_group_id(0) * BQ, j = j0 + lid;

    float4 kr[D4];
    const long r0 = ROW(k, hk, min(j, L - 1));
    for (int cc = 0; cc < D4; ++cc) kr[cc] = LOAD_KV4(k, r0 + 4 * cc);

    float acc = 0.0f;
    for (int h = 0; h < group; ++h) {
        const int hq = hk * group + h;
        for (int i0 = j0; i0 < L; i0 += BK) {
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int e = lid; e < BK * D4; e += BQ) {
                const int r = e / D4, cc = e - r * D4;
                qt[e] = i0 + r < L ? vload4(0, q + ROW(q, hq, i0 + r) + 4 * cc) * scale : (float4)(0.0f);
            }
            for (int r = lid; r < BK; r += BQ) {
                const long at = ((long)hq * L + i0 + r) * 2;
                qm[r] = i0 + r < L ? stats[at] : 0.0f;
                ql[r] = i0 + r < L ? stats[at + 1] : 0.0f;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            // A partial sum per tile keeps the long running sum from swallowing small terms.
            float tsum = 0.0f;
            for (int r = 0; r < BK; r += 4) {
                const float4 x4 = dot_local4_row(qt + r * D4, kr);
                const float xs[4] = {x4.s0, x4.s1, x4.s2, x4.s3};
                for (int u = 0; u < 4; ++u) {
                    const int i = i0 + r + u;
                    if (i >= j && i < L) tsum += exp_below(xs[u], qm[r + u]) / ql[r + u];
                }
            }
            acc += tsum;
        }
    }
    if (j < L) c[c_off + (long)hk * c_stride + j] = acc / ((float)group * (float)(L - j));
}
