// OpenCL backend, op family colsum: the calibration statistic (cl/colsum.cl).
#include <algorithm>

#include "backends/opencl/cl_device.h"
#include "core/checked.h"

namespace tca::detail::opencl {

void OpenCLDevice::colsum(const ColsumArgs& a) {
    validate(a);
    OpScope op(*this, Op::colsum);
    const int L = a.k.tokens, hq = a.q.heads, hkv = a.k.heads, group = hq / hkv;
    const int bk = key_tile(a.q.dim, 1);
    const cl_mem stats = scratch(kColsumStats, checked_product({hq, L, 2, 4}, "colsum statistics"));
    const auto options = [&](int wg) { return kv_options(a.k) + define("BQ", wg) + define("BK", bk); };
    // Both kernels come from one program, so they share the work-group size.
    const int bq = std::min(fitted("colsum.cl", "colsum_stats", tuning_.prefill_bq, options).second,
                            fitted("colsum.cl", "colsum_cols", tuning_.prefill_bq, options).second);
    const float scale = default_scale(a.scale, a.q.dim);
    const Range tiles(size_t(ceil_div(L, bq)) * bq, hq);
    launch(kernel("colsum.cl", options(bq), "colsum_stats"), tiles, Range(bq, 1), tensor(a.q), tensor(a.k), L,
           group, scale, stats);
    launch(kernel("colsum.cl", options(bq), "colsum_cols"), Range(tiles.n[0], hkv), Range(bq, 1), tensor(a.q),
           tensor(a.k), L, group, scale, stats, view(a.c), a.c_stride);
}

}  // namespace tca::detail::opencl
