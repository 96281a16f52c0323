// OpenCL backend, op family gather: row gather for KV compaction and eviction (cl/gather.cl).
#include <algorithm>

#include "backends/opencl/cl_device.h"
#include "core/checked.h"

namespace tca::detail::opencl {

void OpenCLDevice::gather(const GatherArgs& a) {
    validate(a);
    OpScope op(*this, Op::gather);
    const int heads = a.src_k.heads;
    // Rows are copied as raw units, as wide as every offset and stride allows.
    const size_t es = dtype_size(a.src_k.dtype);
    size_t ub = 8;
    for (const Tensor* t : {&a.src_k, &a.src_v, &a.dst_k, &a.dst_v})
        while (ub > es && (t->data.offset % ub || (t->head_stride * es) % ub || (t->token_stride * es) % ub ||
                           (t->dim * es) % ub))
            ub /= 2;
    const int units = int(a.src_k.dim * es / ub);
    const std::string opts = std::string("-D UNIT_T=") + (ub == 8 ? "ulong" : ub == 4 ? "uint" : "ushort");
    int rows = a.count ? a.dst_k.tokens : a.uniform_count;
    if (a.count && a.idx) rows = std::min(rows, a.idx_stride);
    if (rows > 0)
        launch(kernel("gather.cl", opts, "gather_rows"), Range(units, rows, heads), kAnyLocal, in_units(a.src_k, ub),
               in_units(a.src_v, ub), in_units(a.dst_k, ub), in_units(a.dst_v, ub), units, a.src_k.tokens, a.dst_k.tokens,
               a.src_row0, view(a.idx), a.idx_stride, view(a.count), a.uniform_count, view(a.dst_off),
               view(a.pos_out), a.pos_stride, a.pos_base);
    // A separate launch: every row copy has read dst_off before any length (maybe the same
    // buffer) is written.
    if (a.dst_len)
        launch(kernel("gather.cl", opts, "gather_len"), Range(heads), kAnyLocal, view(a.count), a.uniform_count,
               view(a.dst_off), view(a.dst_len));
}

}  // namespace tca::detail::opencl
