// Vulkan backend, op family prefill/attend: causal flash attention, dense or sparse (shaders/attn.glsl).
#include "backends/vulkan/vk_device.h"
#include "core/checked.h"
#include "iface/iface_attn.h"

namespace tca::detail::vulkan {

void VulkanDevice::prefill(const PrefillArgs& a) {
    validate(a);
    OpScope op(this, a.sparse() ? Op::attend_sparse : Op::attend_dense);
    const AttnTiles t = attn_tiles(a.q.dim);
    AttnParams pc{};
    pc.q_off = elem_off(a.q.data, DType::f32), pc.q_hs = uint32_t(a.q.head_stride), pc.q_ts = uint32_t(a.q.token_stride);
    pc.k_off = elem_off(a.k.data, a.k.dtype), pc.k_hs = uint32_t(a.k.head_stride), pc.k_ts = uint32_t(a.k.token_stride);
    pc.v_off = elem_off(a.v.data, a.v.dtype), pc.v_hs = uint32_t(a.v.head_stride), pc.v_ts = uint32_t(a.v.token_stride);
    pc.o_off = elem_off(a.o.data, DType::f32), pc.o_hs = uint32_t(a.o.head_stride), pc.o_ts = uint32_t(a.o.token_stride);
    pc.lq = uint32_t(a.q.tokens), pc.lk = uint32_t(a.k.tokens), pc.q_pos0 = uint32_t(a.q_pos0);
    pc.group = uint32_t(a.q.heads / a.k.heads);
    pc.scale = default_scale(a.scale, a.q.dim);
    if (a.sparse()) {
        pc.window = a.window;
        pc.idx_off = int_off(a.kept_idx), pc.cnt_off = int_off(a.kept_count), pc.kept_stride = uint32_t(a.kept_stride);
    }
    auto b = binds(TCA_ATTN_BINDINGS);
    b[TCA_ATTN_BIND_Q] = in(a.q.data), b[TCA_ATTN_BIND_K] = in(a.k.data), b[TCA_ATTN_BIND_V] = in(a.v.data);
    b[TCA_ATTN_BIND_O] = out(a.o.data);
    b[TCA_ATTN_BIND_KEPT_IDX] = in(a.kept_idx), b[TCA_ATTN_BIND_KEPT_COUNT] = in(a.kept_count);
    dispatch(kv_shader("attn", a.k.dtype), attn_spec(t, a.q.dim, a.k.dtype, TCA_ATTN_MODE_PREFILL, a.sparse()), pc, b,
             ceil_div(a.q.tokens, t.br), uint32_t(a.q.heads));
}

}  // namespace tca::detail::vulkan
