// Shared by the token-selection kernels (metric, rank, select).
// The host inlines this file in place of the #include line; an offline compiler finds it with -I cl.
#ifndef TCA_SELECTION_COMMON_H
#define TCA_SELECTION_COMMON_H

// The one ordering used for blocks and tokens: larger value first, then lower index. NaN sorts
// as -infinity so that even bad input gives a strict total order (no two items share a rank,
// so the scatter writes of a ranking never collide).
inline float order_key(float x) { return isnan(x) ? -INFINITY : x; }
inline bool ranks_before(float a, int ia, float b, int ib) {
    const float ka = order_key(a), kb = order_key(b);
    return ka > kb || (ka == kb && ia < ib);
}

// Exclusive prefix sum over a work-group of n work-items (n a power of two), in local memory.
// Integer adds, so the result does not depend on the schedule. Returns the item's exclusive
// sum and stores the group total in *total. Every work-item must call it.
inline int group_exclusive_scan(int x, __local int* tmp, int lid, int n, int* total) {
    tmp[lid] = x;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int step = 1; step < n; step <<= 1) {
        const int add = lid >= step ? tmp[lid - step] : 0;
        barrier(CLK_LOCAL_MEM_FENCE);
        tmp[lid] += add;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const int incl = tmp[lid];
    *total = tmp[n - 1];
    barrier(CLK_LOCAL_MEM_FENCE);  // tmp may be reused right away
    return incl - x;
}

#endif
