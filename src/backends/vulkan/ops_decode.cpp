// Vulkan backend, op family decode: split-K decode attention (shaders/decode.glsl; parameters,
// bindings and specialization constants in src/iface/iface_decode.h, tuning rows in
// src/device/decode_tuning.h).
#include <algorithm>
#include <thread>

#include "backends/vulkan/vk_device.h"
#include "core/checked.h"
#include "device/op_params.h"
#include "iface/iface_decode.h"

namespace tca::detail::vulkan {

static_assert(sizeof(DecodeParams) <= 128, "push constants over 128 bytes");

// Specialization constants for `a`: lanes per row, subgroup width of the partial-dot reduction, and
// the largest tile (<= the tuning's) whose shared memory fits.
std::vector<uint32_t> VulkanDevice::decode_spec(const DecodeArgs& a, uint32_t mode) const {
    const DecodeTuning& t = tuning_.decode;
    const uint32_t wg = uint32_t(std::clamp(t.wg, 8, int(pi_.props.limits.maxComputeWorkGroupSize[0])));
    const uint32_t d4 = uint32_t(a.q.dim) / 4, group = uint32_t(a.q.heads / a.k1.heads);
    const uint32_t tpr = uint32_t(decode_lanes_per_row(t, int(d4), int(wg)));
    uint32_t sgw = 1;
    if (t.subgroups && use_subgroups_) sgw = std::min<uint32_t>(tpr, pi_.subgroup.subgroupSize);
    while (sgw > 1 && tpr % sgw != 0) sgw /= 2;
    const uint32_t rp = wg / tpr, ppr = tpr / sgw;
    auto bytes = [&](uint32_t tl) { return group * (2 * d4 * 16 + tl * 4 + tl * ppr * 4 + 8); };
    uint32_t tile = std::max<uint32_t>(uint32_t(std::max(1, t.tile)), rp);
    while (tile > rp && bytes(tile) + 256 > pi_.props.limits.maxComputeSharedMemorySize) tile /= 2;
    tile = std::max(rp, tile / rp * rp);
    std::vector<uint32_t> s(8);
    s[TCA_DECODE_SPEC_WG] = wg;
    s[TCA_DECODE_SPEC_D] = uint32_t(a.q.dim);
    s[TCA_DECODE_SPEC_F16] = kv_format_spec(a.k1.dtype);
    s[TCA_DECODE_SPEC_SGW] = sgw;
    s[TCA_DECODE_SPEC_MODE] = mode;
    s[TCA_DECODE_SPEC_GROUP] = group;
    s[TCA_DECODE_SPEC_TPR] = tpr;
    s[TCA_DECODE_SPEC_TILE] = tile;
    return s;
}

// Enough split-K partitions to fill the device, planned over the live rows (planned_rows), so the
// choice depends on the number of heads.
int VulkanDevice::decode_splits(const DecodeArgs& a) const {
    // Vulkan reports no compute-unit count: a CPU driver runs one workgroup per host thread; for a
    // GPU, 128 stands for a large GPU's multiprocessors (splits past the work are not made anyway).
    const int cus = info_.type == TCA_DEVICE_CPU_DRIVER ? std::max(1, int(std::thread::hardware_concurrency())) : 128;
    return decode_splits_for(a.planned_rows(), tuning_.decode, cus, a.plan_heads > 0 ? a.plan_heads : a.k1.heads);
}

void VulkanDevice::decode(const DecodeArgs& a) {
    validate(a);
    OpScope op(this, Op::decode);
    // Split-K over the virtual key sequence (segment 1 then segment 2), planned over the live rows.
    const DecodeSplitPlan plan = decode_split_plan(a.planned_rows(), a.splits > 0 ? a.splits : decode_splits(a));
    size_t floats = 0;
    const DecodeParams pc = decode_params(a, plan.split_len, plan.splits, 0, &floats);
    const BufView part = scratch(kSlotPartials, checked_mul(floats, 4, "decode partials"));
    const std::string shader = kv_shader("decode", a.k1.dtype);
    const bool has2 = static_cast<bool>(a.k2.data);
    // Absent segment 2: segment 1's buffers stand in (never read: has2 = 0).
    const BufView k2 = has2 ? a.k2.data : a.k1.data, v2 = has2 ? a.v2.data : a.v1.data;

    auto b = binds(9);
    b[TCA_DECODE_BIND_Q] = in(a.q.data), b[TCA_DECODE_BIND_K1] = in(a.k1.data), b[TCA_DECODE_BIND_V1] = in(a.v1.data);
    b[TCA_DECODE_BIND_K2] = in(k2), b[TCA_DECODE_BIND_V2] = in(v2), b[TCA_DECODE_BIND_N2] = in(a.n2);
    b[TCA_DECODE_BIND_PART] = out(part);
    dispatch(shader, decode_spec(a, 0), pc, b, uint32_t(plan.splits), uint32_t(a.k1.heads));

    auto m = binds(9);
    m[TCA_DECODE_BIND_O] = out(a.o.data), m[TCA_DECODE_BIND_PART] = out(part);
    dispatch(shader, decode_spec(a, 1), pc, m, 1, uint32_t(a.q.heads));
    if (a.probs) {
        const std::vector<uint32_t> spec = decode_spec(a, 2);
        auto p = binds(9);
        p[TCA_DECODE_BIND_Q] = in(a.q.data), p[TCA_DECODE_BIND_K1] = in(a.k1.data), p[TCA_DECODE_BIND_PART] = in(part);
        p[TCA_DECODE_BIND_PROBS] = out(a.probs);
        dispatch(shader, spec, pc, p, ceil_div(a.probs_n, spec[TCA_DECODE_SPEC_WG]), uint32_t(a.k1.heads));
    }
}

// Entries sharing buffers and build constants (caches of one pool): the same three dispatches with
// workgroup z = the entry, as wide as the widest entry (narrower ones' extra workgroups return).
// Each entry's scratch region follows the previous one's, so no entry reads another's partials.
void VulkanDevice::decode_batch(const std::vector<DecodeArgs>& all) {
    std::vector<std::vector<uint64_t>> keys;
    for (const DecodeArgs& a : all) keys.push_back(decode_batch_key(a));
    for (const auto& g : group_by_key(keys)) {
        if (g.size() == 1) {
            decode(all[g[0]]);
            continue;
        }
        OpScope op(this, Op::decode);
        std::vector<DecodeParams> tab;
        size_t floats = 0;
        uint32_t splits = 0, probs_n = 0;
        for (size_t i : g) {
            const DecodeArgs& a = all[i];
            validate(a);
            const DecodeSplitPlan plan = decode_split_plan(a.planned_rows(), a.splits > 0 ? a.splits : decode_splits(a));
            size_t f = 0;
            tab.push_back(decode_params(a, plan.split_len, plan.splits, floats, &f));
            floats = checked_add(floats, f, "decode partials");
            splits = std::max(splits, uint32_t(plan.splits));
            if (a.probs) probs_n = std::max(probs_n, uint32_t(a.probs_n));
        }
        const uint32_t n = checked_narrow<uint32_t>(int64_t(g.size()), "batch entries");
        const BufView part = scratch(kSlotPartials, checked_mul(floats, 4, "decode partials"));
        const BufView table = scratch(kSlotDecodeTable, checked_mul(tab.size(), sizeof(DecodeParams), "decode table"));
        update(table, tab.data(), tab.size() * sizeof(DecodeParams));
        const DecodeArgs& a = all[g[0]];  // the key makes every entry's buffers and constants this one's
        const std::string shader = kv_shader("decode_batch", a.k1.dtype);
        const bool has2 = static_cast<bool>(a.k2.data);
        const BufView k2 = has2 ? a.k2.data : a.k1.data, v2 = has2 ? a.v2.data : a.v1.data;

        auto b = binds(TCA_DECODE_BINDINGS);
        b[TCA_DECODE_BIND_Q] = in(a.q.data), b[TCA_DECODE_BIND_K1] = in(a.k1.data), b[TCA_DECODE_BIND_V1] = in(a.v1.data);
        b[TCA_DECODE_BIND_K2] = in(k2), b[TCA_DECODE_BIND_V2] = in(v2), b[TCA_DECODE_BIND_N2] = in(has2 ? a.n2 : a.k1.data);
        b[TCA_DECODE_BIND_PART] = out(part), b[TCA_DECODE_BIND_TABLE] = in(table);
        dispatch_raw(shader, decode_spec(a, 0), nullptr, 0, b, splits, uint32_t(a.k1.heads), n);

        auto m = binds(TCA_DECODE_BINDINGS);
        m[TCA_DECODE_BIND_O] = out(a.o.data), m[TCA_DECODE_BIND_PART] = out(part), m[TCA_DECODE_BIND_TABLE] = in(table);
        dispatch_raw(shader, decode_spec(a, 1), nullptr, 0, m, 1, uint32_t(a.q.heads), n);
        if (probs_n > 0) {
            // Entries without eviction scores this step have probs_n 0: their workgroups write nothing.
            const std::vector<uint32_t> spec = decode_spec(a, 2);
            const DecodeArgs* with = nullptr;
            for (size_t i : g)
                if (all[i].probs) with = &all[i];
            auto p = binds(TCA_DECODE_BINDINGS);
            p[TCA_DECODE_BIND_Q] = in(a.q.data), p[TCA_DECODE_BIND_K1] = in(a.k1.data), p[TCA_DECODE_BIND_PART] = in(part);
            p[TCA_DECODE_BIND_PROBS] = out(with->probs), p[TCA_DECODE_BIND_TABLE] = in(table);
            dispatch_raw(shader, spec, nullptr, 0, p, ceil_div(probs_n, spec[TCA_DECODE_SPEC_WG]), uint32_t(a.k1.heads), n);
        }
    }
}

}  // namespace tca::detail::vulkan
