// Token selection: redundancy metric per block, block ranking, per-block top-t selection.
// Everything is ordered by counting (rank = number of items that precede) and integer prefix
// sums, never by atomics, so the output is the same on every run and every device.
#include "selection_common.h"

#ifndef RED_WG
#define RED_WG 64
#endif
#ifndef RANK_WG
#define RANK_WG 64
#endif

// Tree reduction over RED_WG work-items; all call it, the result is in buf[0].
inline void reduce_sum2(__local float* a, __local float* b, int lid) {
    for (int span = RED_WG / 2; span > 0; span >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < span) {
            a[lid] += a[lid + span];
            b[lid] += b[lid + span];
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}

// h[h][j] = (1 - alpha) S1 + alpha (1 - S2 / S1^2) over block j, in MetricArgs' formulation
// (device.h): sums run over s / m, m = max|s| of the block, since S2 / S1^2 is scale-free and
// tiny probabilities (1e-30 is common far from the query) would otherwise underflow when squared.
__kernel __attribute__((reqd_work_group_size(RED_WG, 1, 1)))
void metric(__global const float* s, long s_off, int s_stride, int n_global, int block, float alpha,
            __global float* hout, long h_off) {
    __local float r1[RED_WG], r2[RED_WG];
    const int lid = get_local_id(0), j = get_group_id(0), nb = get_num_groups(0), h = get_group_id(1);
    __global const float* row = s + s_off + (long)h * s_stride;
    const int lo = j * block, hi = min(lo + block, n_global);

    float mx = 0.0f;
    for (int i = lo + lid; i < hi; i += RED_WG) mx = fmax(mx, fabs(row[i]));
    r1[lid] = mx;
    for (int span = RED_WG / 2; span > 0; span >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < span) r1[lid] = fmax(r1[lid], r1[lid + span]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    mx = r1[0];
    barrier(CLK_LOCAL_MEM_FENCE);

    float y1 = 0.0f, y2 = 0.0f;
    if (mx > 0.0f)
        for (int i = lo + lid; i < hi; i += RED_WG) {
            const float y = row[i] / mx;
            y1 += y;
            y2 += y * y;
        }
    r1[lid] = y1;
    r2[lid] = y2;
    reduce_sum2(r1, r2, lid);
    if (lid == 0) {
        // Tested on the scaled sum: m * Y1 may underflow to 0 while Y1 >= 1 (MetricArgs, device.h).
        const float flat = r1[0] > 0.0f ? 1.0f - r2[0] / (r1[0] * r1[0]) : 0.0f;
        hout[h_off + (long)h * nb + j] = (1.0f - alpha) * (r1[0] * mx) + alpha * flat;
    }
}

// order[h][rank(i)] = i, rank(i) = number of blocks ranking before block i. O(n^2) compares
// per head with the values staged through local memory: a few thousand blocks take no time,
// and a rank is a permutation, so the scatter never collides.
__kernel __attribute__((reqd_work_group_size(RANK_WG, 1, 1)))
void rank(__global const float* hv, long h_off, int n, __global int* order, long order_off) {
    __local float tile[RANK_WG];
    const int lid = get_local_id(0), i = get_global_id(0), h = get_group_id(1);
    __global const float* row = hv + h_off + (long)h * n;
    const float mine = i < n ? row[i] : 0.0f;
    int r = 0;
    for (int t0 = 0; t0 < n; t0 += RANK_WG) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (t0 + lid < n) tile[lid] = row[t0 + lid];
        barrier(CLK_LOCAL_MEM_FENCE);
        const int cnt = min(RANK_WG, n - t0);
        for (int k = 0; k < cnt; ++k) r += ranks_before(tile[k], t0 + k, mine, i);
    }
    if (i < n) order[order_off + (long)h * n + r] = i;
}

// One work-group per head: keep[blk] = min(budget of blk's rank, blk's size), then the
// exclusive prefix sum over blocks in position order gives each block's first output slot.
__kernel __attribute__((reqd_work_group_size(RED_WG, 1, 1)))
void select_offsets(__global const int* order, long order_off, __global const int* budget, long budget_off, int nb,
                    int n_global, int block, __global int* keep, __global int* offs, __global int* count,
                    long count_off, int idx_stride) {
    __local int tmp[RED_WG];
    const int lid = get_local_id(0), h = get_group_id(1);
    __global int* kp = keep + (long)h * nb;
    __global int* op = offs + (long)h * nb;
    // Zeroed first so a malformed order (a block missing) cannot leave a stale count behind.
    for (int b = lid; b < nb; b += RED_WG) kp[b] = 0;
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int r = lid; r < nb; r += RED_WG) {
        const int blk = order[order_off + (long)h * nb + r];
        if (blk >= 0 && blk < nb) {
            const int size = min(block, n_global - blk * block);
            kp[blk] = clamp(budget[budget_off + (long)h * nb + r], 0, size);
        }
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    int carry = 0;
    for (int base = 0; base < nb; base += RED_WG) {
        const int b = base + lid;
        int total;
        const int ex = group_exclusive_scan(b < nb ? kp[b] : 0, tmp, lid, RED_WG, &total);
        if (b < nb) op[b] = carry + ex;
        carry += total;
    }
    if (lid == 0) count[count_off + h] = min(carry, idx_stride);
}

// One work-group per (block, head). A token is kept when fewer than t tokens of its block rank
// before it; kept tokens are written in position order at the block's offset plus the number
// of kept tokens before them (a prefix sum over the block, chunk by chunk).
__kernel __attribute__((reqd_work_group_size(RED_WG, 1, 1)))
void select_tokens(__global const float* s, long s_off, int s_stride, int n_global, int block,
                   __global const int* keep, __global const int* offs, __global int* idx, long idx_off,
                   int idx_stride) {
    __local int tmp[RED_WG];
    const int lid = get_local_id(0), j = get_group_id(0), nb = get_num_groups(0), h = get_group_id(1);
    __global const float* row = s + s_off + (long)h * s_stride;
    __global int* out = idx + idx_off + (long)h * idx_stride;
    const int lo = j * block, size = min(block, n_global - lo);
    const int kj = keep[(long)h * nb + j], base = offs[(long)h * nb + j];
    int carry = 0;
    for (int c0 = 0; c0 < size; c0 += RED_WG) {
        const int i = c0 + lid;
        int flag = 0;
        if (i < size) {
            if (kj >= size) {
                flag = 1;
            } else if (kj > 0) {
                const float si = row[lo + i];
                int r = 0;
                for (int k = 0; k < size && r < kj; ++k) r += ranks_before(row[lo + k], k, si, i);
                flag = r < kj;
            }
        }
        int total;
        const int ex = group_exclusive_scan(flag, tmp, lid, RED_WG, &total);
        const int pos = base + carry + ex;
        if (flag && pos < idx_stride) out[pos] = lo + i;
        carry += total;
    }
}
