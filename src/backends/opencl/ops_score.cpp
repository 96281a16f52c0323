// OpenCL backend, op family score: importance scores (cl/score.cl).
#include "backends/opencl/cl_device.h"
#include "core/checked.h"

namespace tca::detail::opencl {

void OpenCLDevice::score(const ScoreArgs& a) {
    validate(a);
    OpScope op(*this, Op::score);
    const int hq = a.q.heads, hkv = a.k.heads, group = hq / hkv;
    const int wg = tuning_.score_wg, chunk = tuning_.score_chunk;
    const int chunks = ceil_div(a.n_keys, chunk);
    const cl_mem part = scratch(kScoreParts, checked_product({hq, chunks, 2, 4}, "score partials"));
    const cl_mem ml = scratch(kScoreMerged, size_t(hq) * 2 * 4);
    const std::string opts = kv_options(a.k) + define("SC_WG", wg);
    const float scale = default_scale(a.scale, a.q.dim);
    // One query head per KV head: its logits fit in s, so K is read once. Otherwise the
    // normalising pass recomputes the group's logits (s holds only one value per key).
    const cl_int logits_in_s = group == 1;
    launch(kernel("score.cl", opts, "score_stats"), Range(size_t(chunks) * wg, hkv), Range(wg, 1), tensor(a.q),
           a.q_row, tensor(a.k), a.n_keys, group, scale, chunk, view(a.s), a.s_stride, logits_in_s, part);
    launch(kernel("score.cl", opts, "score_merge"), Range(hq), kAnyLocal, part, chunks, ml);
    launch(kernel("score.cl", opts, "score_norm"), Range(a.n_keys, hkv), kAnyLocal, tensor(a.q), a.q_row,
           tensor(a.k), a.n_keys, group, scale, view(a.s), a.s_stride, logits_in_s, ml);
}

}  // namespace tca::detail::opencl
