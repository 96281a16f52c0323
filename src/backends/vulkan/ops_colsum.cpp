// Vulkan backend, op family colsum: the calibration statistic (shaders/attn.glsl, modes 1 and 2).
#include "backends/vulkan/vk_device.h"
#include "core/checked.h"
#include "iface/iface_attn.h"

namespace tca::detail::vulkan {

void VulkanDevice::colsum(const ColsumArgs& a) {
    validate(a);
    OpScope op(this, Op::colsum);
    const AttnTiles t = attn_tiles(a.q.dim);
    const uint32_t L = uint32_t(a.q.tokens);
    AttnParams pc{};
    pc.q_off = elem_off(a.q.data, DType::f32), pc.q_hs = uint32_t(a.q.head_stride), pc.q_ts = uint32_t(a.q.token_stride);
    pc.k_off = elem_off(a.k.data, a.k.dtype), pc.k_hs = uint32_t(a.k.head_stride), pc.k_ts = uint32_t(a.k.token_stride);
    pc.lq = L, pc.lk = L, pc.group = uint32_t(a.q.heads / a.k.heads);
    pc.c_off = int_off(a.c), pc.c_stride = uint32_t(a.c_stride);
    pc.scale = default_scale(a.scale, a.q.dim);
    // Pass 1: each query row's softmax max and sum (flash-style, no V). Pass 2: per key tile, the sum
    // over query rows of the normalised probabilities, recomputing q.k; nothing L x L is stored.
    BufView stats = scratch(kSlotStats, checked_product({a.q.heads, L, 8}, "colsum statistics"));
    const std::string shader = kv_shader("attn", a.k.dtype);
    auto b = binds(TCA_ATTN_BINDINGS);
    b[TCA_ATTN_BIND_Q] = in(a.q.data), b[TCA_ATTN_BIND_K] = in(a.k.data), b[TCA_ATTN_BIND_STATS] = out(stats);
    dispatch(shader, attn_spec(t, a.q.dim, a.k.dtype, TCA_ATTN_MODE_COLSUM_STATS, false), pc, b, ceil_div(L, t.br),
             uint32_t(a.q.heads));
    b[TCA_ATTN_BIND_STATS] = in(stats), b[TCA_ATTN_BIND_COLSUM] = out(a.c);
    dispatch(shader, attn_spec(t, a.q.dim, a.k.dtype, TCA_ATTN_MODE_COLSUM_COLS, false), pc, b, ceil_div(L, t.br),
             uint32_t(a.k.heads));
}

}  // namespace tca::detail::vulkan
