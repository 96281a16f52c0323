// Vulkan backend, op family gather: row gather for KV compaction and eviction (shaders/gather.comp).
#include "backends/vulkan/vk_device.h"
#include "core/checked.h"
#include "iface/iface_gather.h"

namespace tca::detail::vulkan {

void VulkanDevice::gather(const GatherArgs& a) {
    validate(a);
    OpScope op(this, Op::gather);
    const DType t = a.src_k.dtype;
    GatherParams pc{};
    pc.sk_off = elem_off(a.src_k.data, t), pc.sk_hs = uint32_t(a.src_k.head_stride), pc.sk_ts = uint32_t(a.src_k.token_stride);
    pc.sv_off = elem_off(a.src_v.data, t), pc.sv_hs = uint32_t(a.src_v.head_stride), pc.sv_ts = uint32_t(a.src_v.token_stride);
    pc.dk_off = elem_off(a.dst_k.data, t), pc.dk_hs = uint32_t(a.dst_k.head_stride), pc.dk_ts = uint32_t(a.dst_k.token_stride);
    pc.dv_off = elem_off(a.dst_v.data, t), pc.dv_hs = uint32_t(a.dst_v.head_stride), pc.dv_ts = uint32_t(a.dst_v.token_stride);
    pc.src_row0 = uint32_t(a.src_row0);
    pc.flags = (a.idx ? TCA_GATHER_HAS_IDX : 0u) | (a.count ? TCA_GATHER_HAS_COUNT : 0u) |
               (a.dst_off ? TCA_GATHER_HAS_DST_OFF : 0u) | (a.pos_out ? TCA_GATHER_HAS_POS_OUT : 0u);
    if (a.idx) pc.idx_off = int_off(a.idx), pc.idx_stride = uint32_t(a.idx_stride);
    if (a.count) pc.cnt_off = int_off(a.count);
    pc.uniform_count = uint32_t(a.uniform_count);
    if (a.dst_off) pc.off_off = int_off(a.dst_off);
    if (a.dst_len) pc.len_off = int_off(a.dst_len);
    if (a.pos_out) pc.pos_off = int_off(a.pos_out), pc.pos_stride = uint32_t(a.pos_stride);
    pc.pos_base = a.pos_base;
    pc.dst_tokens = uint32_t(a.dst_k.tokens), pc.src_tokens = uint32_t(a.src_k.tokens), pc.dim = uint32_t(a.src_k.dim);
    pc.heads = uint32_t(a.src_k.heads);
    // fp16 rows copy as whole 32-bit words when every row starts on an even element; otherwise
    // halves are merged into destination words atomically (neighbouring rows may share a word).
    bool aligned = true;
    if (dtype_size(t) == 2)  // f16 and bf16 alike: rows are copied, never converted
        for (const Tensor* x : {&a.src_k, &a.src_v, &a.dst_k, &a.dst_v})
            aligned = aligned && (elem_off(x->data, t) % 2 == 0) && x->head_stride % 2 == 0 && x->token_stride % 2 == 0;
    auto spec = [&](uint32_t mode) {
        std::vector<uint32_t> s(TCA_GATHER_SPECS);
        s[TCA_GATHER_SPEC_WG] = kSmallWG, s[TCA_GATHER_SPEC_IS_F16] = dtype_size(t) == 2;
        s[TCA_GATHER_SPEC_ALIGNED] = aligned, s[TCA_GATHER_SPEC_MODE] = mode;
        return s;
    };
    auto b = binds(TCA_GATHER_BINDINGS);
    b[TCA_GATHER_BIND_SRC_K] = in(a.src_k.data), b[TCA_GATHER_BIND_SRC_V] = in(a.src_v.data);
    b[TCA_GATHER_BIND_DST_K] = out(a.dst_k.data), b[TCA_GATHER_BIND_DST_V] = out(a.dst_v.data);
    b[TCA_GATHER_BIND_IDX] = in(a.idx), b[TCA_GATHER_BIND_COUNT] = in(a.count), b[TCA_GATHER_BIND_DST_OFF] = in(a.dst_off);
    b[TCA_GATHER_BIND_POS_OUT] = out(a.pos_out);
    dispatch("gather.comp", spec(TCA_GATHER_MODE_ROWS), pc, b, ceil_div(a.dst_k.tokens, TCA_GATHER_ROWS), uint32_t(a.src_k.heads));
    if (a.dst_len) {
        // A separate pass after the copies: dst_len may alias dst_off, which every copy reads.
        auto lb = binds(TCA_GATHER_BINDINGS);
        lb[TCA_GATHER_BIND_COUNT] = in(a.count), lb[TCA_GATHER_BIND_DST_OFF] = in(a.dst_off);
        lb[TCA_GATHER_BIND_DST_LEN] = out(a.dst_len);
        dispatch("gather.comp", spec(TCA_GATHER_MODE_LENGTHS), pc, lb, ceil_div(a.src_k.heads, kSmallWG));
    }
}

}  // namespace tca::detail::vulkan
