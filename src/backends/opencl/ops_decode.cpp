// OpenCL backend, op family decode: split-K decode attention (cl/decode.cl).
#include <algorithm>

#include "backends/opencl/cl_device.h"
#include "core/checked.h"

namespace tca::detail::opencl {

// Enough split-K partitions to fill the device, so the choice depends on the number of heads.
int OpenCLDevice::decode_splits(const DecodeArgs& a) const {
    const int n_max = std::max(1, a.n1 + (a.k2.data ? a.k2.tokens : 0));
    const int by_work = ceil_div(n_max, tuning_.decode_min_keys);
    const int by_occupancy = std::max(1, int(compute_units_) * tuning_.wgs_per_cu / std::max(1, a.k1.heads));
    return std::min(by_work, by_occupancy);
}

void OpenCLDevice::decode(const DecodeArgs& a) {
    validate(a);
    OpScope op(*this, Op::decode);
    const int hq = a.q.heads, hkv = a.k1.heads, group = hq / hkv, d = a.q.dim;
    const bool seg2 = static_cast<bool>(a.k2.data);
    // Segment-2 counts live on the device; its capacity bounds them.
    const int n_max = std::max(1, checked_narrow<int>(uint64_t(a.n1) + (seg2 ? a.k2.tokens : 0), "decode keys"));
    int splits = a.splits > 0 ? a.splits : decode_splits(a);
    splits = std::clamp(splits, 1, n_max);
    const int split_len = ceil_div(n_max, splits);
    splits = ceil_div(n_max, split_len);

    const cl_mem part_ml = scratch(kDecodeMl, checked_product({hq, splits, 2, 4}, "decode partials"));
    const cl_mem part_o = scratch(kDecodeO, checked_product({hq, splits, d, 4}, "decode partial outputs"));
    const cl_mem ml = scratch(kDecodeMerged, size_t(hq) * 2 * 4);
    const auto [split_kernel, wg] = fitted("decode.cl", "decode_split", tuning_.decode_wg,
                                           [&](int w) { return kv_options(a.k1) + define("DEC_WG", w); });
    const std::string opts = kv_options(a.k1) + define("DEC_WG", wg);
    const float scale = default_scale(a.scale, d);
    const TensorArg none{nullptr, 0, 0, 0};
    launch(split_kernel, Range(size_t(splits) * wg, hkv), Range(wg, 1), tensor(a.q), tensor(a.k1), tensor(a.v1), a.n1,
           seg2 ? tensor(a.k2) : none, seg2 ? tensor(a.v2) : none, seg2 ? a.k2.tokens : 0, view(a.n2),
           cl_int(seg2), group, scale, split_len, part_ml, part_o);
    launch(kernel("decode.cl", opts, "decode_merge"), Range(d / 4, hq), kAnyLocal, part_ml, part_o, splits,
           tensor(a.o), ml);
    if (a.probs)
        launch(kernel("decode.cl", opts, "decode_probs"), Range(a.probs_n, hkv), kAnyLocal, tensor(a.q),
               tensor(a.k1), group, scale, ml, view(a.probs), a.probs_n);
}

}  // namespace tca::detail::opencl
