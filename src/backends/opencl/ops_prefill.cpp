// OpenCL backend, op family prefill/attend: causal flash attention, dense or sparse (cl/prefill.cl).
#include "backends/opencl/cl_device.h"
#include "core/checked.h"

namespace tca::detail::opencl {

void OpenCLDevice::prefill(const PrefillArgs& a) {
    validate(a);
    OpScope op(*this, a.sparse() ? Op::attend_sparse : Op::attend_dense);
    const int bk = key_tile(a.q.dim, 2);
    const auto [k, bq] = fitted("prefill.cl", "attend", tuning_.prefill_bq,
                                [&](int wg) { return kv_options(a.k) + define("BQ", wg) + define("BK", bk); });
    launch(k, Range(size_t(ceil_div(a.q.tokens, bq)) * bq, a.q.heads),
           Range(bq, 1), tensor(a.q), tensor(a.k), tensor(a.v), tensor(a.o), a.q.tokens, a.k.tokens, a.q_pos0,
           a.q.heads / a.k.heads, default_scale(a.scale, a.q.dim), cl_int(a.sparse()), a.window, view(a.kept_idx),
           a.kept_stride, view(a.kept_count));
}


// Keys per local tile: the table's size, halved until `tiles` tiles of [bk, d] floats fit in
// three quarters of local memory (the rest is left for the compiler's own use).
int OpenCLDevice::key_tile(int d, int tiles) const {
    int bk = tuning_.prefill_bk;
    while (bk > 4 && cl_ulong(tiles) * bk * d * 4 > local_mem_ * 3 / 4) bk /= 2;
    return bk;
}

}  // namespace tca::detail::opencl
