// Workgroup-wide max / sum. Needs `const uint WG` (a power of two, the workgroup size) and the
// specialization constant USE_SG. With subgroups: subgroup reduction, then one value per subgroup
// through shared memory. Without: a shared-memory tree. Both have a fixed order, so results are
// deterministic; they differ from each other only by float reassociation.
// Must be called from uniform control flow (it contains barriers).
shared float red_[WG];

float wg_reduce(float x, bool is_max) {
    const uint t = gl_LocalInvocationIndex;
    if (USE_SG != 0) {
        x = is_max ? subgroupMax(x) : subgroupAdd(x);
        if (subgroupElect()) red_[gl_SubgroupID] = x;
        barrier();
        float r = red_[0];
        for (uint i = 1; i < gl_NumSubgroups; ++i) r = is_max ? max(r, red_[i]) : r + red_[i];
        barrier();
        return r;
    }
    red_[t] = x;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (t < s) red_[t] = is_max ? max(red_[t], red_[t + s]) : red_[t] + red_[t + s];
        barrier();
    }
    const float r = red_[0];
    barrier();
    return r;
}
float wg_max(float x) { return wg_reduce(x, true); }
float wg_sum(float x) { return wg_reduce(x, false); }
