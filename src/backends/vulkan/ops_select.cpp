// Vulkan backend, op families metric, rank and select (shaders/select.glsl).
#include "backends/vulkan/vk_device.h"
#include "core/checked.h"
#include "iface/iface_select.h"

namespace tca::detail::vulkan {

namespace {

std::vector<uint32_t> select_spec(uint32_t use_sg, uint32_t mode) {
    std::vector<uint32_t> s(TCA_SELECT_SPECS);
    s[TCA_SELECT_SPEC_WG] = kSmallWG, s[TCA_SELECT_SPEC_USE_SG] = use_sg, s[TCA_SELECT_SPEC_MODE] = mode;
    return s;
}

}  // namespace

void VulkanDevice::metric(const MetricArgs& a) {
    validate(a);
    OpScope op(this, Op::metric);
    SelectParams pc{};
    pc.a_off = int_off(a.s), pc.a_stride = uint32_t(a.s_stride), pc.heads = uint32_t(a.heads), pc.n = uint32_t(a.n_global);
    pc.block = uint32_t(a.block), pc.nb = uint32_t(n_blocks_of(a.n_global, a.block));
    pc.out_off = int_off(a.h), pc.alpha = a.alpha;
    auto b = binds(TCA_SELECT_BINDINGS);
    b[TCA_SELECT_BIND_IN] = in(a.s), b[TCA_SELECT_BIND_METRIC] = out(a.h);
    dispatch("select.comp", select_spec(sg(), TCA_SELECT_MODE_METRIC), pc, b, pc.nb, uint32_t(a.heads));
}

void VulkanDevice::rank(const RankArgs& a) {
    validate(a);
    OpScope op(this, Op::sort);
    SelectParams pc{};
    pc.a_off = int_off(a.h), pc.heads = uint32_t(a.heads), pc.nb = uint32_t(a.n_blocks), pc.out_off = int_off(a.order);
    auto b = binds(TCA_SELECT_BINDINGS);
    b[TCA_SELECT_BIND_IN] = in(a.h), b[TCA_SELECT_BIND_OUT] = out(a.order);
    dispatch("select.comp", select_spec(sg(), TCA_SELECT_MODE_RANK), pc, b, ceil_div(a.n_blocks, kSmallWG), uint32_t(a.heads));
}

void VulkanDevice::select(const SelectArgs& a) {
    validate(a);
    OpScope op(this, Op::select);
    const uint32_t nb = uint32_t(n_blocks_of(a.n_global, a.block));
    SelectParams pc{};
    pc.a_off = int_off(a.s), pc.a_stride = uint32_t(a.s_stride), pc.heads = uint32_t(a.heads), pc.n = uint32_t(a.n_global);
    pc.block = uint32_t(a.block), pc.nb = nb, pc.order_off = int_off(a.order), pc.budget_off = int_off(a.budget);
    pc.out_off = int_off(a.idx), pc.out_stride = uint32_t(a.idx_stride), pc.cnt_off = int_off(a.count);
    // Scratch: [A] kept count per block, [B] exclusive prefix sums (output offset per block),
    // [C] keep flag per token.
    pc.scr_a = 0, pc.scr_b = checked_narrow<uint32_t>(checked_product({a.heads, nb}, "select scratch"), "select scratch");
    pc.scr_c = checked_narrow<uint32_t>(checked_product({2, a.heads, nb}, "select scratch"), "select scratch");
    BufView scr = scratch(kSlotSelect, checked_mul(checked_add(pc.scr_c, checked_product({a.heads, a.n_global}, "select scratch"), "select scratch"), 4, "select scratch"));
    auto b = binds(TCA_SELECT_BINDINGS);
    b[TCA_SELECT_BIND_IN] = in(a.s), b[TCA_SELECT_BIND_ORDER] = in(a.order), b[TCA_SELECT_BIND_BUDGET] = in(a.budget);
    b[TCA_SELECT_BIND_OUT] = out(a.idx), b[TCA_SELECT_BIND_COUNT] = out(a.count), b[TCA_SELECT_BIND_SCRATCH] = out(scr);
    dispatch("select.comp", select_spec(sg(), TCA_SELECT_MODE_KEEP_COUNTS), pc, b, ceil_div(nb, kSmallWG), uint32_t(a.heads));
    dispatch("select.comp", select_spec(sg(), TCA_SELECT_MODE_OFFSETS), pc, b, 1, uint32_t(a.heads));
    dispatch("select.comp", select_spec(sg(), TCA_SELECT_MODE_TOKENS), pc, b, nb, uint32_t(a.heads));
}

}  // namespace tca::detail::vulkan
