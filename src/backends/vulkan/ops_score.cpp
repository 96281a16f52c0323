// Vulkan backend, op family score: importance scores (shaders/score.glsl).
#include "backends/vulkan/vk_device.h"
#include "core/checked.h"
#include "iface/iface_score.h"

namespace tca::detail::vulkan {

void VulkanDevice::score(const ScoreArgs& a) {
    validate(a);
    OpScope op(this, Op::score);
    constexpr uint32_t kChunk = kSmallWG * TCA_SCORE_KEYS_PER_THREAD;  // keys per workgroup
    ScoreParams pc{};
    pc.q_off = elem_off(a.q.data, DType::f32), pc.q_hs = uint32_t(a.q.head_stride), pc.q_ts = uint32_t(a.q.token_stride);
    pc.q_row = uint32_t(a.q_row);
    pc.k_off = elem_off(a.k.data, a.k.dtype), pc.k_hs = uint32_t(a.k.head_stride), pc.k_ts = uint32_t(a.k.token_stride);
    pc.n_keys = uint32_t(a.n_keys), pc.group = uint32_t(a.q.heads / a.k.heads), pc.hq = uint32_t(a.q.heads);
    pc.nchunk = ceil_div(a.n_keys, kChunk);
    pc.s_off = int_off(a.s), pc.s_stride = uint32_t(a.s_stride);
    pc.scale = default_scale(a.scale, a.q.dim);
    // stats: per (query head, chunk) softmax (max, sum), then per query head the merged (max, sum).
    BufView stats = scratch(kSlotStats, checked_product({a.q.heads, int64_t(pc.nchunk) + 1, 8}, "score statistics"));
    const std::string shader = kv_shader("score", a.k.dtype);
    auto spec = [&](uint32_t mode) {
        std::vector<uint32_t> s(TCA_SCORE_SPECS);
        s[TCA_SCORE_SPEC_WG] = kSmallWG, s[TCA_SCORE_SPEC_D] = uint32_t(a.q.dim);
        s[TCA_SCORE_SPEC_KV_F16] = kv_format_spec(a.k.dtype), s[TCA_SCORE_SPEC_USE_SG] = sg(), s[TCA_SCORE_SPEC_MODE] = mode;
        return s;
    };
    auto b = binds(TCA_SCORE_BINDINGS);
    b[TCA_SCORE_BIND_Q] = in(a.q.data), b[TCA_SCORE_BIND_K] = in(a.k.data), b[TCA_SCORE_BIND_STATS] = out(stats);
    dispatch(shader, spec(TCA_SCORE_MODE_CHUNK_STATS), pc, b, pc.nchunk, uint32_t(a.k.heads));
    auto merge = binds(TCA_SCORE_BINDINGS);
    merge[TCA_SCORE_BIND_STATS] = out(stats);
    dispatch(shader, spec(TCA_SCORE_MODE_MERGE), pc, merge, uint32_t(a.q.heads));
    b[TCA_SCORE_BIND_STATS] = in(stats), b[TCA_SCORE_BIND_S] = out(a.s);
    dispatch(shader, spec(TCA_SCORE_MODE_NORMALISE), pc, b, pc.nchunk, uint32_t(a.k.heads));
}

}  // namespace tca::detail::vulkan
