// OpenCL backend, op family decode: split-K decode attention (cl/decode.cl; parameters, bindings and
// layout in src/iface/iface_decode.h, tuning rows in src/device/decode_tuning.h).
#include <algorithm>

#include "backends/opencl/cl_device.h"
#include "core/checked.h"
#include "iface/iface_decode.h"

namespace tca::detail::opencl {

// Enough split-K partitions to fill the device, so the choice depends on the number of heads.
// Planned over the live rows (DecodeArgs::planned_rows), not segment 2's capacity.
int OpenCLDevice::decode_splits(const DecodeArgs& a) const {
    return decode_splits_for(a.planned_rows(), tuning_.decode, int(compute_units_),
                             a.plan_heads > 0 ? a.plan_heads : a.k1.heads);
}

// Lanes per row, and the largest tile (<= the tuning's) whose local memory fits the device.
std::string OpenCLDevice::decode_options(const DecodeArgs& a, int wg) const {
    const DecodeTuning& t = tuning_.decode;
    const int d4 = a.q.dim / 4, group = a.q.heads / a.k1.heads;
    const int tpr = decode_lanes_per_row(t, d4, wg);
    const int rp = wg / tpr;
    int tile = std::max(t.tile, rp);
    auto bytes = [&](int tl) {
        return size_t(group) * (2 * d4 * 16 + tl * 4 + (tpr > 1 ? size_t(tl) * tpr * 4 : 0) + 8);
    };
    while (tile > rp && bytes(tile) + 1024 > local_mem_) tile /= 2;
    tile = std::max(rp, tile / rp * rp);
    return kv_options(a.k1) + define("DEC_WG", wg) + define("DEC_GROUP", group) + define("DEC_TPR", tpr) +
           define("DEC_TILE", tile);
}

DecodeTuning OpenCLDevice::set_decode_tuning(const DecodeTuning& t) {
    const DecodeTuning old = tuning_.decode;
    tuning_.decode = t;
    while (size_t(tuning_.decode.wg) > max_wg_ && tuning_.decode.wg > 1) tuning_.decode.wg /= 2;
    return old;
}

void OpenCLDevice::decode(const DecodeArgs& a) {
    validate(a);
    OpScope op(*this, Op::decode);
    const int hq = a.q.heads, hkv = a.k1.heads, d = a.q.dim;
    const bool seg2 = static_cast<bool>(a.k2.data);
    // Segment-2 counts live on the device: splits follow the caller's bound on them.
    (void)checked_narrow<int>(a.planned_rows(), "decode keys");  // the kernels index rows as int
    const DecodeSplitPlan plan = decode_split_plan(a.planned_rows(), a.splits > 0 ? a.splits : decode_splits(a));
    const int split_len = int(plan.split_len), splits = int(plan.splits);

    DecodeParams p{};
    auto u32 = [](int64_t v, const char* what) { return checked_narrow<uint32_t>(v, what); };
    auto off = [&](const Tensor& t) { return u32(int64_t(t.data.offset / dtype_size(t.dtype)), "decode tensor offset"); };
    p.q_off = off(a.q), p.q_hs = u32(a.q.head_stride, "q head stride");
    p.o_off = off(a.o), p.o_hs = u32(a.o.head_stride, "o head stride");
    p.k1_off = off(a.k1), p.k1_hs = u32(a.k1.head_stride, "k1 head stride"), p.k1_ts = u32(a.k1.token_stride, "k1 token stride");
    p.v1_off = off(a.v1), p.v1_hs = u32(a.v1.head_stride, "v1 head stride"), p.v1_ts = u32(a.v1.token_stride, "v1 token stride");
    if (seg2) {
        p.k2_off = off(a.k2), p.k2_hs = u32(a.k2.head_stride, "k2 head stride"), p.k2_ts = u32(a.k2.token_stride, "k2 token stride");
        p.v2_off = off(a.v2), p.v2_hs = u32(a.v2.head_stride, "v2 head stride"), p.v2_ts = u32(a.v2.token_stride, "v2 token stride");
        p.n2_off = u32(int64_t(a.n2.offset / 4), "n2 offset"), p.k2_rows = u32(a.k2.tokens, "k2 rows");
    }
    p.n1 = u32(a.n1, "n1"), p.has2 = seg2 ? 1 : 0;
    p.split_len = u32(split_len, "decode split length"), p.nsplit = u32(splits, "decode splits");
    // One scratch buffer: per split (m, l), then per split the unnormalised outputs, then the merged (m, l).
    const size_t ml_floats = checked_product({hq, splits, 2}, "decode partials");
    const size_t o_floats = checked_product({hq, splits, d}, "decode partial outputs");
    p.part_o = u32(int64_t(ml_floats), "decode partials");
    p.part_merged = u32(int64_t(checked_add(ml_floats, o_floats, "decode partials")), "decode partials");
    if (a.probs) p.probs_off = u32(int64_t(a.probs.offset / 4), "probs offset"), p.probs_n = u32(a.probs_n, "probs_n");
    p.scale = default_scale(a.scale, d);
    const cl_mem part = scratch(kDecodePart, checked_mul(size_t(p.part_merged) + size_t(hq) * 2, 4, "decode partials"));

    const auto [split_kernel, wg] = fitted("decode.cl", "decode_split", tuning_.decode.wg,
                                           [&](int w) { return decode_options(a, w); });
    const std::string opts = decode_options(a, wg);
    // Absent segment 2 / n2: segment 1's buffers stand in (never read: has2 = 0).
    const BufView k2 = seg2 ? a.k2.data : a.k1.data, v2 = seg2 ? a.v2.data : a.v1.data;
    launch(split_kernel, Range(size_t(splits) * wg, hkv), Range(wg, 1), mem(a.q.data), mem(a.k1.data), mem(a.v1.data),
           mem(k2), mem(v2), seg2 ? mem(a.n2) : mem(a.k1.data), part, params(p));
    launch(kernel("decode.cl", opts, "decode_merge"), Range(d / 4, hq), kAnyLocal, part, mem(a.o.data), params(p));
    if (a.probs)
        launch(kernel("decode.cl", opts, "decode_probs"), Range(size_t(ceil_div(a.probs_n, wg)) * wg, hkv), Range(wg, 1),
               mem(a.q.data), mem(a.k1.data), part, mem(a.probs), params(p));
}

}  // namespace tca::detail::opencl
