// Vulkan backend, op family decode: split-K decode attention (shaders/decode.glsl; parameters,
// bindings and specialization constants in src/iface/iface_decode.h, tuning rows in
// src/device/decode_tuning.h).
#include <algorithm>
#include <thread>

#include "backends/vulkan/vk_device.h"
#include "core/checked.h"
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
    const bool has2 = static_cast<bool>(a.k2.data);
    const DType kv = a.k1.dtype;
    auto u32 = [](int64_t v, const char* what) { return checked_narrow<uint32_t>(v, what); };
    DecodeParams pc{};
    pc.q_off = elem_off(a.q.data, DType::f32), pc.q_hs = u32(a.q.head_stride, "q head stride");
    pc.o_off = elem_off(a.o.data, DType::f32), pc.o_hs = u32(a.o.head_stride, "o head stride");
    pc.k1_off = elem_off(a.k1.data, kv), pc.k1_hs = u32(a.k1.head_stride, "k1 head stride"), pc.k1_ts = u32(a.k1.token_stride, "k1 token stride");
    pc.v1_off = elem_off(a.v1.data, kv), pc.v1_hs = u32(a.v1.head_stride, "v1 head stride"), pc.v1_ts = u32(a.v1.token_stride, "v1 token stride");
    if (has2) {
        pc.k2_off = elem_off(a.k2.data, kv), pc.k2_hs = u32(a.k2.head_stride, "k2 head stride"), pc.k2_ts = u32(a.k2.token_stride, "k2 token stride");
        pc.v2_off = elem_off(a.v2.data, kv), pc.v2_hs = u32(a.v2.head_stride, "v2 head stride"), pc.v2_ts = u32(a.v2.token_stride, "v2 token stride");
        pc.n2_off = int_off(a.n2), pc.k2_rows = u32(a.k2.tokens, "k2 rows");
    }
    pc.n1 = u32(a.n1, "n1"), pc.has2 = has2 ? 1 : 0;
    pc.scale = default_scale(a.scale, a.q.dim);
    // Split-K over the virtual key sequence (segment 1 then segment 2), planned over the live rows.
    const DecodeSplitPlan plan = decode_split_plan(a.planned_rows(), a.splits > 0 ? a.splits : decode_splits(a));
    const int64_t split_len = plan.split_len, splits = plan.splits;
    pc.split_len = u32(split_len, "decode split length"), pc.nsplit = u32(splits, "decode splits");
    if (a.probs) pc.probs_off = int_off(a.probs), pc.probs_n = u32(a.probs_n, "probs_n");
    // One scratch buffer: per split (m, l), then per split the unnormalised outputs, then the merged (m, l).
    const size_t ml_floats = checked_product({a.q.heads, splits, 2}, "decode partials");
    const size_t o_floats = checked_product({a.q.heads, splits, a.q.dim}, "decode partial outputs");
    pc.part_o = u32(int64_t(ml_floats), "decode partials");
    pc.part_merged = u32(int64_t(checked_add(ml_floats, o_floats, "decode partials")), "decode partials");
    BufView part = scratch(kSlotPartials, checked_mul(size_t(pc.part_merged) + size_t(a.q.heads) * 2, 4, "decode partials"));
    const std::string shader = kv_shader("decode", kv);
    // Absent segment 2: segment 1's buffers stand in (never read: has2 = 0).
    const BufView k2 = has2 ? a.k2.data : a.k1.data, v2 = has2 ? a.v2.data : a.v1.data;

    auto b = binds(9);
    b[TCA_DECODE_BIND_Q] = in(a.q.data), b[TCA_DECODE_BIND_K1] = in(a.k1.data), b[TCA_DECODE_BIND_V1] = in(a.v1.data);
    b[TCA_DECODE_BIND_K2] = in(k2), b[TCA_DECODE_BIND_V2] = in(v2), b[TCA_DECODE_BIND_N2] = in(a.n2);
    b[TCA_DECODE_BIND_PART] = out(part);
    dispatch(shader, decode_spec(a, 0), pc, b, uint32_t(splits), uint32_t(a.k1.heads));

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

}  // namespace tca::detail::vulkan
