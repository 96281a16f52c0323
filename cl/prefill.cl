// Causal prefill attention, dense and sparse, as one flash-attention kernel.
//
// A work-group owns BQ consecutive query rows of one query head, one row per work-item (its
// scaled q and output accumulator live in private memory). Keys are visited in tiles of BK
// staged through local memory, with an online softmax, so nothing L x L is ever formed.
//
// The keys a tile visits form a "virtual" sequence:
//   [ kept global tokens the tile can see ] ++ [ the tile's band of recent keys ]
// Dense: no kept tokens, band = 0 .. last row's position, so key tiles above the diagonal are
// never visited. Sparse: the kept prefix ends at the first index > (last position - window), the
// band starts at (first position - window + 1). Work is proportional to what is kept.
// A per-query mask then applies the exact rule of the contract.
#include "attention_common.h"

#ifndef BQ
#define BQ 64
#endif
#ifndef BK
#define BK 32
#endif

__kernel __attribute__((reqd_work_group_size(BQ, 1, 1)))
void attend(TENSOR(const float, q), TENSOR(const kv_t, k), TENSOR(const kv_t, v), TENSOR(float, o),
            int lq, int lk, int q_pos0, int group, float scale, int sparse, int window,
            __global const int* kept_idx, long kept_off, int kept_stride,
            __global const int* kept_count, long count_off) {
    __local float4 kt[BK * D4];
    __local float4 vt[BK * D4];
    __local int kpos[BK];

    const int lid = get_local_id(0);
    // Later query tiles see more keys: schedule them first so the tail of the launch is short.
    const int tile = get_num_groups(0) - 1 - get_group_id(0);
    const int hq = get_group_id(1), hk = hq / group;
    const int i = tile * BQ + lid;
    const int last = min(tile * BQ + BQ, lq) - 1;
    const int pmin = q_pos0 + tile * BQ, pmax = q_pos0 + last;
    // Rows past the end act as the last row, so they never need keys the real rows don't.
    const int p = q_pos0 + min(i, last);
    // Dense: a window wider than any position makes "pos > p - win" always true.
    const int win = sparse ? window : (1 << 30);

    float4 qr[D4], acc[D4];
    {
        const long r = ROW(q, hq, min(i, last));
        for (int c = 0; c < D4; ++c) {
            qr[c] = vload4(0, q + r + 4 * c) * scale;
            acc[c] = (float4)(0.0f);
        }
    }
    float m = MASK_VALUE, l = 0.0f;

    int nk = 0, b0 = 0;
    __global const int* kept = kept_idx;
    if (sparse) {
        kept += kept_off + (long)hk * kept_stride;
        // Sorted kept list: binary search for how many are visible to the tile's last query.
        int lo = 0, hi = clamp(kept_count[count_off + hk], 0, kept_stride);
        const int lim = pmax - win;
        while (lo < hi) {
            const int mid = (lo + hi) / 2;
            if (kept[mid] <= lim) lo = mid + 1;
            else hi = mid;
        }
        nk = lo;
        b0 = max(0, pmin - win + 1);
    }
    const int nv = nk + (pmax - b0 + 1);

    for (int t0 = 0; t0 < nv; t0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE);  // the previous tile is no longer being read
        for (int r = lid; r < BK; r += BQ) {
            const int vi = t0 + r;
            int pos = vi < nk ? kept[vi] : (vi < nv ? b0 + vi - nk : -1);
            kpos[r] = (pos >= 0 && pos < lk) ? pos : -1;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        load_tile(kt, kpos, BK, k, k_off, k_hs, k_ts, hk, lid, BQ);
        load_tile(vt, kpos, BK, v, v_off, v_hs, v_ts, hk, lid, BQ);
        barrier(CLK_LOCAL_MEM_FENCE);

        // Keys four at a time (BK is a multiple of 4): independent chains for the logits and
        // one pass over the accumulator per four keys for P.V.
        float s[BK];
        float mt = m;
        for (int jj = 0; jj < BK; jj += 4) {
            const float4 x = dot_row_local4(qr, kt + jj * D4);
            const float xs[4] = {x.s0, x.s1, x.s2, x.s3};
            for (int u = 0; u < 4; ++u) {
                const int pos = kpos[jj + u];
                const bool glob = t0 + jj + u < nk;
                const bool ok = pos >= 0 && (glob ? pos <= p - win : (pos > p - win && pos <= p));
                s[jj + u] = ok ? xs[u] : MASK_VALUE;
                mt = fmax(mt, s[jj + u]);
            }
        }
        // While every key so far was masked, m == mt == MASK_VALUE and l, acc are still 0.
        const float corr = exp(m - mt);
        l *= corr;
        for (int c = 0; c < D4; ++c) acc[c] *= corr;
        for (int jj = 0; jj < BK; jj += 4) {
            float pj[4];
            for (int u = 0; u < 4; ++u) {
                pj[u] = s[jj + u] != MASK_VALUE ? exp(s[jj + u] - mt) : 0.0f;
                l += pj[u];
            }
            __local const float4* vr = vt + jj * D4;
            for (int c = 0; c < D4; ++c)
                acc[c] += pj[0] * vr[c] + pj[1] * vr[D4 + c] + pj[2] * vr[2 * D4 + c] + pj[3] * vr[3 * D4 + c];
        }
        m = mt;
    }

    if (i < lq) {
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        const long r = ROW(o, hq, i);
        for (int c = 0; c < D4; ++c) vstore4(acc[c] * inv, 0, o + r + 4 * c);
    }
}
