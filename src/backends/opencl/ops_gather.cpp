// OpenCL backend, op family gather: row gather for KV compaction and eviction (cl/gather.cl).
#include <algorithm>

#include "backends/opencl/cl_device.h"
#include "core/checked.h"
#include "device/op_params.h"

namespace tca::detail::opencl {

namespace {

// Rows are copied as raw units, as wide as every offset and stride allows.
size_t unit_bytes(const GatherArgs& a) {
    const size_t es = dtype_size(a.src_k.dtype);
    size_t ub = 8;
    for (const Tensor* t : {&a.src_k, &a.src_v, &a.dst_k, &a.dst_v})
        while (ub > es && (t->data.offset % ub || (t->head_stride * es) % ub || (t->token_stride * es) % ub ||
                           (t->dim * es) % ub))
            ub /= 2;
    return ub;
}
std::string unit_option(size_t ub) { return std::string("-D UNIT_T=") + (ub == 8 ? "ulong" : ub == 4 ? "uint" : "ushort"); }
// Destination rows a launch spans for `a`.
int gather_rows(const GatherArgs& a) {
    int rows = a.count ? a.dst_k.tokens : a.uniform_count;
    if (a.count && a.idx) rows = std::min(rows, a.idx_stride);
    return rows;
}

}  // namespace

void OpenCLDevice::gather(const GatherArgs& a) {
    validate(a);
    OpScope op(*this, Op::gather);
    const int heads = a.src_k.heads;
    const size_t ub = unit_bytes(a);
    const int units = int(a.src_k.dim * dtype_size(a.src_k.dtype) / ub);
    const std::string opts = unit_option(ub);
    const int rows = gather_rows(a);
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

// Entries sharing buffers and copy unit: one launch of each kernel, z = entry * heads + head.
void OpenCLDevice::gather_batch(const std::vector<GatherArgs>& all) {
    std::vector<std::vector<uint64_t>> keys;
    for (const GatherArgs& a : all) keys.push_back(gather_batch_key(a, unit_bytes(a)));
    for (const auto& g : group_by_key(keys)) {
        if (g.size() == 1) {
            gather(all[g[0]]);
            continue;
        }
        OpScope op(*this, Op::gather);
        const GatherArgs& a = all[g[0]];
        const size_t ub = unit_bytes(a);
        std::vector<GatherParams> tab;
        int rows = 0;
        for (size_t i : g) {
            validate(all[i]);
            tab.push_back(gather_params(all[i], ub));
            rows = std::max(rows, gather_rows(all[i]));
        }
        const int heads = a.src_k.heads;
        const size_t n = g.size();
        const cl_mem tabm = table(kGatherTable, tab.data(), checked_mul(n, sizeof(GatherParams), "gather table"));
        const std::string opts = unit_option(ub);
        auto opt_mem = [&](const BufView& v) { return v ? mem(v) : cl_mem(nullptr); };
        if (rows > 0)
            launch(kernel("gather.cl", opts, "gather_rows_batch"),
                   Range(size_t(tab[0].dim), size_t(rows), checked_mul(n, size_t(heads), "gather batch")), kAnyLocal,
                   mem(a.src_k.data), mem(a.src_v.data), mem(a.dst_k.data), mem(a.dst_v.data), opt_mem(a.idx),
                   opt_mem(a.count), opt_mem(a.dst_off), opt_mem(a.pos_out), tabm, heads);
        if (a.dst_len)
            launch(kernel("gather.cl", opts, "gather_len_batch"), Range(size_t(heads), n), kAnyLocal, opt_mem(a.count),
                   opt_mem(a.dst_off), mem(a.dst_len), tabm);
    }
}

}  // namespace tca::detail::opencl
