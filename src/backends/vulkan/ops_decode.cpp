// Vulkan backend, op family decode: split-K decode attention (shaders/decode.glsl).
#include <algorithm>

#include "backends/vulkan/vk_device.h"
#include "core/checked.h"

namespace tca::detail::vulkan {

// Push constants (must match the layout(push_constant) block of shaders/decode.glsl).
struct DecodePC {  // shaders/decode.glsl
    uint32_t q_off, o_off, k1_off, v1_off, k2_off, v2_off;
    uint32_t q_hs, o_hs, k1_hs, k1_ts, v1_hs, v1_ts, k2_hs, k2_ts, v2_hs, v2_ts;
    uint32_t n1, has2, n2_off, chunk, nsplit, group, probs_off, probs_n, hq;
    float scale;
    uint32_t t2;
};

static_assert(sizeof(DecodePC) <= 128, "push constants over 128 bytes");

void VulkanDevice::decode(const DecodeArgs& a) {
    validate(a);
    OpScope op(this, Op::decode);
    const bool has2 = static_cast<bool>(a.k2.data);
    const DType kv = a.k1.dtype;
    DecodePC pc{};
    pc.q_off = elem_off(a.q.data, DType::f32), pc.q_hs = uint32_t(a.q.head_stride);
    pc.o_off = elem_off(a.o.data, DType::f32), pc.o_hs = uint32_t(a.o.head_stride);
    pc.k1_off = elem_off(a.k1.data, kv), pc.k1_hs = uint32_t(a.k1.head_stride), pc.k1_ts = uint32_t(a.k1.token_stride);
    pc.v1_off = elem_off(a.v1.data, kv), pc.v1_hs = uint32_t(a.v1.head_stride), pc.v1_ts = uint32_t(a.v1.token_stride);
    if (has2) {
        pc.k2_off = elem_off(a.k2.data, kv), pc.k2_hs = uint32_t(a.k2.head_stride), pc.k2_ts = uint32_t(a.k2.token_stride);
        pc.v2_off = elem_off(a.v2.data, kv), pc.v2_hs = uint32_t(a.v2.head_stride), pc.v2_ts = uint32_t(a.v2.token_stride);
        pc.n2_off = int_off(a.n2), pc.t2 = uint32_t(a.k2.tokens);
    }
    pc.n1 = uint32_t(a.n1), pc.has2 = has2 ? 1 : 0;
    pc.group = uint32_t(a.q.heads / a.k1.heads), pc.hq = uint32_t(a.q.heads);
    pc.scale = default_scale(a.scale, a.q.dim);
    // Split-K over the virtual key sequence (segment 1 then segment 2). Splits are sized from the
    // largest possible length; splits past a head's real length write an empty partial.
    const uint64_t n_max = uint64_t(a.n1) + (has2 ? uint64_t(a.k2.tokens) : 0);
    uint32_t splits = a.splits > 0 ? uint32_t(a.splits) : std::clamp<uint32_t>(ceil_div(n_max, 512), 1, 64);
    uint32_t chunk = ceil_div(n_max, splits);
    chunk = ceil_div(chunk, kSmallWG) * kSmallWG;
    splits = ceil_div(n_max, chunk);
    pc.chunk = chunk, pc.nsplit = splits;
    if (a.probs) pc.probs_off = int_off(a.probs), pc.probs_n = uint32_t(a.probs_n);
    const size_t part_floats = checked_product({a.q.heads, splits, a.q.dim + 2}, "decode partials");
    BufView part = scratch(kSlotPartials, checked_mul(checked_add(part_floats, size_t(a.q.heads) * 2, "decode partials"), 4, "decode partials"));
    const std::string shader = kv_shader("decode", kv);
    auto spec = [&](uint32_t mode) { return std::vector<uint32_t>{kSmallWG, uint32_t(a.q.dim), kv == DType::f16, sg(), mode}; };
    const BufView k2 = has2 ? a.k2.data : a.k1.data, v2 = has2 ? a.v2.data : a.v1.data;
    dispatch(shader, spec(0), pc, {in(a.q.data), in(a.k1.data), in(a.v1.data), in(k2), in(v2), {}, in(a.n2), out(part), {}},
             splits, uint32_t(a.q.heads));
    dispatch(shader, spec(1), pc, {{}, {}, {}, {}, {}, out(a.o.data), {}, out(part), {}}, 1, uint32_t(a.q.heads));
    if (a.probs)
        dispatch(shader, spec(2), pc, {in(a.q.data), in(a.k1.data), {}, {}, {}, {}, {}, in(part), out(a.probs)},
                 ceil_div(a.probs_n, kSmallWG), uint32_t(a.k1.heads));
}

}  // namespace tca::detail::vulkan
