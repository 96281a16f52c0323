// OpenCL backend, op family decode: split-K decode attention (cl/decode.cl; parameters, bindings and
// layout in src/iface/iface_decode.h, tuning rows in src/device/decode_tuning.h).
#include <algorithm>

#include "backends/opencl/cl_device.h"
#include "core/checked.h"
#include "device/op_params.h"
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
    size_t floats = 0;
    const DecodeParams p = decode_params(a, plan.split_len, plan.splits, 0, &floats);
    const cl_mem part = scratch(kDecodePart, checked_mul(floats, 4, "decode partials"));

    const auto [split_kernel, wg] = fitted("decode.cl", "decode_split", tuning_.decode.wg,
                                           [&](int w) { return decode_options(a, w); });
    const std::string opts = decode_options(a, wg);
    // Absent segment 2 / n2: segment 1's buffers stand in (never read: has2 = 0).
    const BufView k2 = seg2 ? a.k2.data : a.k1.data, v2 = seg2 ? a.v2.data : a.v1.data;
    launch(split_kernel, Range(size_t(plan.splits) * wg, hkv), Range(wg, 1), mem(a.q.data), mem(a.k1.data), mem(a.v1.data),
           mem(k2), mem(v2), seg2 ? mem(a.n2) : mem(a.k1.data), part, params(p));
    launch(kernel("decode.cl", opts, "decode_merge"), Range(d / 4, hq), kAnyLocal, part, mem(a.o.data), params(p));
    if (a.probs)
        launch(kernel("decode.cl", opts, "decode_probs"), Range(size_t(ceil_div(a.probs_n, wg)) * wg, hkv), Range(wg, 1),
               mem(a.q.data), mem(a.k1.data), part, mem(a.probs), params(p));
}

// Entries sharing buffers and build constants (caches of one pool): the same three launches with
// the grid's z = the entry, as wide as the widest entry (narrower ones' extra work-groups return).
// Each entry's scratch region follows the previous one's, so no entry reads another's partials.
void OpenCLDevice::decode_batch(const std::vector<DecodeArgs>& all) {
    std::vector<std::vector<uint64_t>> keys;
    for (const DecodeArgs& a : all) keys.push_back(decode_batch_key(a));
    for (const auto& g : group_by_key(keys)) {
        if (g.size() == 1) {
            decode(all[g[0]]);
            continue;
        }
        OpScope op(*this, Op::decode);
        std::vector<DecodeParams> tab;
        size_t floats = 0;
        int64_t splits = 0;
        int probs_n = 0;
        for (size_t i : g) {
            const DecodeArgs& a = all[i];
            validate(a);
            (void)checked_narrow<int>(a.planned_rows(), "decode keys");
            const DecodeSplitPlan plan = decode_split_plan(a.planned_rows(), a.splits > 0 ? a.splits : decode_splits(a));
            size_t f = 0;
            tab.push_back(decode_params(a, plan.split_len, plan.splits, floats, &f));
            floats = checked_add(floats, f, "decode partials");
            splits = std::max(splits, plan.splits);
            if (a.probs) probs_n = std::max(probs_n, a.probs_n);
        }
        const DecodeArgs& a = all[g[0]];  // the key makes every entry's buffers and constants this one's
        const size_t n = g.size();
        const cl_mem part = scratch(kDecodePart, checked_mul(floats, 4, "decode partials"));
        const cl_mem tabm = table(kDecodeTable, tab.data(), checked_mul(n, sizeof(DecodeParams), "decode table"));
        const auto [split_kernel, wg] = fitted("decode.cl", "decode_split", tuning_.decode.wg,
                                               [&](int w) { return decode_options(a, w) + " -D DEC_BATCH=1"; });
        const std::string opts = decode_options(a, wg) + " -D DEC_BATCH=1";
        const bool seg2 = static_cast<bool>(a.k2.data);
        const BufView k2 = seg2 ? a.k2.data : a.k1.data, v2 = seg2 ? a.v2.data : a.v1.data;
        launch(split_kernel, Range(size_t(splits) * wg, a.k1.heads, n), Range(wg, 1, 1), mem(a.q.data), mem(a.k1.data),
               mem(a.v1.data), mem(k2), mem(v2), seg2 ? mem(a.n2) : mem(a.k1.data), part, tabm);
        launch(kernel("decode.cl", opts, "decode_merge"), Range(a.q.dim / 4, a.q.heads, n), kAnyLocal, part,
               mem(a.o.data), tabm);
        if (probs_n > 0) {
            // Entries without eviction scores this step have probs_n 0: their work-items write nothing.
            const DecodeArgs* with = nullptr;
            for (size_t i : g)
                if (all[i].probs) with = &all[i];
            launch(kernel("decode.cl", opts, "decode_probs"), Range(size_t(ceil_div(probs_n, wg)) * wg, a.k1.heads, n),
                   Range(wg, 1, 1), mem(a.q.data), mem(a.k1.data), part, mem(with->probs), tabm);
        }
    }
}

}  // namespace tca::detail::opencl
