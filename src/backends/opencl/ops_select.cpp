// OpenCL backend, op families metric, rank and select (cl/select.cl).
#include "backends/opencl/cl_device.h"
#include "core/checked.h"

namespace tca::detail::opencl {

void OpenCLDevice::metric(const MetricArgs& a) {
    validate(a);
    OpScope op(*this, Op::metric);
    const int nb = n_blocks_of(a.n_global, a.block), wg = tuning_.reduce_wg;
    launch(kernel("select.cl", define("RED_WG", wg), "metric"), Range(size_t(nb) * wg, a.heads), Range(wg, 1),
           view(a.s), a.s_stride, a.n_global, a.block, a.alpha, view(a.h));
}

void OpenCLDevice::rank(const RankArgs& a) {
    validate(a);
    OpScope op(*this, Op::sort);
    const int wg = tuning_.rank_wg;
    launch(kernel("select.cl", define("RANK_WG", wg), "rank"), Range(size_t(ceil_div(a.n_blocks, wg)) * wg, a.heads),
           Range(wg, 1), view(a.h), a.n_blocks, view(a.order));
}

void OpenCLDevice::select(const SelectArgs& a) {
    validate(a);
    OpScope op(*this, Op::select);
    const int nb = n_blocks_of(a.n_global, a.block), wg = tuning_.reduce_wg;
    const cl_mem keep = scratch(kSelectKeep, checked_product({a.heads, nb, 4}, "select keep counts"));
    const cl_mem offsets = scratch(kSelectOffsets, checked_product({a.heads, nb, 4}, "select offsets"));
    const std::string opts = define("RED_WG", wg);
    launch(kernel("select.cl", opts, "select_offsets"), Range(wg, a.heads), Range(wg, 1), view(a.order),
           view(a.budget), nb, a.n_global, a.block, keep, offsets, view(a.count), a.idx_stride);
    launch(kernel("select.cl", opts, "select_tokens"), Range(size_t(nb) * wg, a.heads), Range(wg, 1), view(a.s),
           a.s_stride, a.n_global, a.block, keep, offsets, view(a.idx), a.idx_stride);
}

}  // namespace tca::detail::opencl
