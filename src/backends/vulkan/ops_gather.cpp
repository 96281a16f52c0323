// Vulkan backend, op family gather: row gather for KV compaction and eviction (shaders/gather.glsl;
// gather.comp the single op, gather_batch.comp the batched one; parameters in src/iface/iface_gather.h).
#include <algorithm>

#include "backends/vulkan/vk_device.h"
#include "core/checked.h"
#include "device/op_params.h"
#include "iface/iface_gather.h"

namespace tca::detail::vulkan {

namespace {

// fp16 rows copy as whole 32-bit words when every row starts on an even element; otherwise halves
// are merged into destination words atomically (neighbouring rows may share a word).
bool words_aligned(const GatherArgs& a) {
    const DType t = a.src_k.dtype;
    bool aligned = true;
    if (dtype_size(t) == 2)  // f16 and bf16 alike: rows are copied, never converted
        for (const Tensor* x : {&a.src_k, &a.src_v, &a.dst_k, &a.dst_v})
            aligned = aligned && (elem_off(x->data, t) % 2 == 0) && x->head_stride % 2 == 0 && x->token_stride % 2 == 0;
    return aligned;
}

std::vector<uint32_t> gather_spec(const GatherArgs& a, uint32_t mode) {
    std::vector<uint32_t> s(TCA_GATHER_SPECS);
    s[TCA_GATHER_SPEC_WG] = kSmallWG, s[TCA_GATHER_SPEC_IS_F16] = dtype_size(a.src_k.dtype) == 2;
    s[TCA_GATHER_SPEC_ALIGNED] = words_aligned(a), s[TCA_GATHER_SPEC_MODE] = mode;
    return s;
}

// The copies' and the lengths pass's bindings (a table added for the batched variant).
std::vector<Bind> copy_binds(const GatherArgs& a, uint32_t n) {
    auto b = binds(n);
    b[TCA_GATHER_BIND_SRC_K] = in(a.src_k.data), b[TCA_GATHER_BIND_SRC_V] = in(a.src_v.data);
    b[TCA_GATHER_BIND_DST_K] = out(a.dst_k.data), b[TCA_GATHER_BIND_DST_V] = out(a.dst_v.data);
    b[TCA_GATHER_BIND_IDX] = in(a.idx), b[TCA_GATHER_BIND_COUNT] = in(a.count), b[TCA_GATHER_BIND_DST_OFF] = in(a.dst_off);
    b[TCA_GATHER_BIND_POS_OUT] = out(a.pos_out);
    return b;
}
std::vector<Bind> length_binds(const GatherArgs& a, uint32_t n) {
    auto lb = binds(n);
    lb[TCA_GATHER_BIND_COUNT] = in(a.count), lb[TCA_GATHER_BIND_DST_OFF] = in(a.dst_off);
    lb[TCA_GATHER_BIND_DST_LEN] = out(a.dst_len);
    return lb;
}

}  // namespace

void VulkanDevice::gather(const GatherArgs& a) {
    validate(a);
    OpScope op(this, Op::gather);
    const GatherParams pc = gather_params(a, dtype_size(a.src_k.dtype));
    dispatch("gather.comp", gather_spec(a, TCA_GATHER_MODE_ROWS), pc, copy_binds(a, TCA_GATHER_BINDINGS),
             ceil_div(a.dst_k.tokens, TCA_GATHER_ROWS), uint32_t(a.src_k.heads));
    // A separate pass after the copies: dst_len may alias dst_off, which every copy reads.
    if (a.dst_len)
        dispatch("gather.comp", gather_spec(a, TCA_GATHER_MODE_LENGTHS), pc, length_binds(a, TCA_GATHER_BINDINGS),
                 ceil_div(a.src_k.heads, kSmallWG));
}

// Entries sharing buffers and constants: one copy dispatch (and one lengths pass) with workgroup
// z = the entry, as many row groups as the entry with the most destination rows.
void VulkanDevice::gather_batch(const std::vector<GatherArgs>& all) {
    std::vector<std::vector<uint64_t>> keys;
    for (const GatherArgs& a : all) keys.push_back(gather_batch_key(a, words_aligned(a)));
    for (const auto& g : group_by_key(keys)) {
        if (g.size() == 1) {
            gather(all[g[0]]);
            continue;
        }
        OpScope op(this, Op::gather);
        std::vector<GatherParams> tab;
        uint32_t groups = 1;
        for (size_t i : g) {
            validate(all[i]);
            tab.push_back(gather_params(all[i], dtype_size(all[i].src_k.dtype)));
            groups = std::max(groups, uint32_t(ceil_div(all[i].dst_k.tokens, TCA_GATHER_ROWS)));
        }
        const uint32_t n = checked_narrow<uint32_t>(int64_t(g.size()), "batch entries");
        const BufView table = scratch(kSlotGatherTable, checked_mul(tab.size(), sizeof(GatherParams), "gather table"));
        update(table, tab.data(), tab.size() * sizeof(GatherParams));
        const GatherArgs& a = all[g[0]];
        auto b = copy_binds(a, TCA_GATHER_BIND_TABLE + 1);
        b[TCA_GATHER_BIND_TABLE] = in(table);
        dispatch_raw("gather_batch.comp", gather_spec(a, TCA_GATHER_MODE_ROWS), nullptr, 0, b, groups,
                     uint32_t(a.src_k.heads), n);
        if (a.dst_len) {
            auto lb = length_binds(a, TCA_GATHER_BIND_TABLE + 1);
            lb[TCA_GATHER_BIND_TABLE] = in(table);
            dispatch_raw("gather_batch.comp", gather_spec(a, TCA_GATHER_MODE_LENGTHS), nullptr, 0, lb,
                         ceil_div(a.src_k.heads, kSmallWG), 1, n);
        }
    }
}

}  // namespace tca::detail::vulkan
