// Parameter blocks of the decode and gather kernels (op_params.h).
#include "device/op_params.h"

#include <map>

#include "core/checked.h"

namespace tca::detail {

namespace {

uint32_t u32(int64_t v, const char* what) { return checked_narrow<uint32_t>(v, what); }
uint32_t off_in(const BufView& v, size_t unit, const char* what) { return u32(int64_t(v.offset / unit), what); }

}  // namespace

DecodeParams decode_params(const DecodeArgs& a, int64_t split_len, int64_t splits, size_t part_base, size_t* part_floats) {
    const DType kv = a.k1.dtype;
    const size_t es = dtype_size(kv);
    const bool seg2 = static_cast<bool>(a.k2.data);
    DecodeParams p{};
    p.q_off = off_in(a.q.data, 4, "decode q offset"), p.q_hs = u32(a.q.head_stride, "q head stride");
    p.o_off = off_in(a.o.data, 4, "decode o offset"), p.o_hs = u32(a.o.head_stride, "o head stride");
    p.k1_off = off_in(a.k1.data, es, "decode k1 offset"), p.k1_hs = u32(a.k1.head_stride, "k1 head stride");
    p.k1_ts = u32(a.k1.token_stride, "k1 token stride");
    p.v1_off = off_in(a.v1.data, es, "decode v1 offset"), p.v1_hs = u32(a.v1.head_stride, "v1 head stride");
    p.v1_ts = u32(a.v1.token_stride, "v1 token stride");
    if (seg2) {
        p.k2_off = off_in(a.k2.data, es, "decode k2 offset"), p.k2_hs = u32(a.k2.head_stride, "k2 head stride");
        p.k2_ts = u32(a.k2.token_stride, "k2 token stride");
        p.v2_off = off_in(a.v2.data, es, "decode v2 offset"), p.v2_hs = u32(a.v2.head_stride, "v2 head stride");
        p.v2_ts = u32(a.v2.token_stride, "v2 token stride");
        p.n2_off = off_in(a.n2, 4, "n2 offset"), p.k2_rows = u32(a.k2.tokens, "k2 rows");
    }
    p.n1 = u32(a.n1, "n1"), p.has2 = seg2 ? 1 : 0;
    p.split_len = u32(split_len, "decode split length"), p.nsplit = u32(splits, "decode splits");
    if (a.probs) p.probs_off = off_in(a.probs, 4, "probs offset"), p.probs_n = u32(a.probs_n, "probs_n");
    p.scale = default_scale(a.scale, a.q.dim);
    // The region: per split (m, l), then per split the unnormalised outputs, then the merged (M, L).
    const size_t ml = checked_product({a.q.heads, splits, 2}, "decode partials");
    const size_t o = checked_product({a.q.heads, splits, a.q.dim}, "decode partial outputs");
    p.part_ml = u32(int64_t(part_base), "decode partials");
    p.part_o = u32(int64_t(checked_add(part_base, ml, "decode partials")), "decode partials");
    p.part_merged = u32(int64_t(checked_add(size_t(p.part_o), o, "decode partials")), "decode partials");
    *part_floats = checked_add(ml + o, size_t(a.q.heads) * 2, "decode partials");
    (void)u32(int64_t(checked_add(part_base, *part_floats, "decode partials")), "decode partials");
    return p;
}

GatherParams gather_params(const GatherArgs& a, size_t unit) {
    GatherParams p{};
    auto ts = [&](const Tensor& t, uint32_t* off, uint32_t* hs, uint32_t* tsr, const char* what) {
        const size_t per = dtype_size(t.dtype);  // strides are in elements; the unit divides them
        *off = off_in(t.data, unit, what);
        *hs = u32(t.head_stride * int64_t(per) / int64_t(unit), what);
        *tsr = u32(t.token_stride * int64_t(per) / int64_t(unit), what);
    };
    ts(a.src_k, &p.sk_off, &p.sk_hs, &p.sk_ts, "gather source k");
    ts(a.src_v, &p.sv_off, &p.sv_hs, &p.sv_ts, "gather source v");
    ts(a.dst_k, &p.dk_off, &p.dk_hs, &p.dk_ts, "gather destination k");
    ts(a.dst_v, &p.dv_off, &p.dv_hs, &p.dv_ts, "gather destination v");
    p.src_row0 = u32(a.src_row0, "gather source row");
    p.flags = (a.idx ? TCA_GATHER_HAS_IDX : 0u) | (a.count ? TCA_GATHER_HAS_COUNT : 0u) |
              (a.dst_off ? TCA_GATHER_HAS_DST_OFF : 0u) | (a.pos_out ? TCA_GATHER_HAS_POS_OUT : 0u);
    if (a.idx) p.idx_off = off_in(a.idx, 4, "gather idx offset"), p.idx_stride = u32(a.idx_stride, "gather idx stride");
    if (a.count) p.cnt_off = off_in(a.count, 4, "gather count offset");
    p.uniform_count = u32(a.uniform_count, "gather count");
    if (a.dst_off) p.off_off = off_in(a.dst_off, 4, "gather dst_off offset");
    if (a.dst_len) p.len_off = off_in(a.dst_len, 4, "gather dst_len offset");
    if (a.pos_out) p.pos_off = off_in(a.pos_out, 4, "gather positions offset"), p.pos_stride = u32(a.pos_stride, "gather positions stride");
    p.pos_base = a.pos_base;
    p.dst_tokens = u32(a.dst_k.tokens, "gather rows"), p.src_tokens = u32(a.src_k.tokens, "gather rows");
    p.dim = u32(int64_t(size_t(a.src_k.dim) * dtype_size(a.src_k.dtype) / unit), "gather row units");
    p.heads = u32(a.src_k.heads, "gather heads");
    return p;
}

std::vector<uint64_t> decode_batch_key(const DecodeArgs& a) {
    const bool has2 = static_cast<bool>(a.k2.data);
    const uint64_t k1 = buffer_key(a.k1.data);
    return {buffer_key(a.q.data), buffer_key(a.o.data), k1, buffer_key(a.v1.data),
            has2 ? buffer_key(a.k2.data) : k1, has2 ? buffer_key(a.v2.data) : buffer_key(a.v1.data),
            has2 ? buffer_key(a.n2) : k1, a.probs ? buffer_key(a.probs) : k1, uint64_t(a.k1.dtype),
            uint64_t(a.q.heads), uint64_t(a.k1.heads), uint64_t(a.q.dim)};
}

std::vector<uint64_t> gather_batch_key(const GatherArgs& a, uint64_t variant) {
    return {buffer_key(a.src_k.data), buffer_key(a.src_v.data), buffer_key(a.dst_k.data), buffer_key(a.dst_v.data),
            buffer_key(a.idx), buffer_key(a.count), buffer_key(a.dst_off), buffer_key(a.dst_len), buffer_key(a.pos_out),
            uint64_t(a.src_k.dtype), uint64_t(a.src_k.heads), variant};
}

std::vector<std::vector<size_t>> group_by_key(const std::vector<std::vector<uint64_t>>& keys) {
    std::vector<std::vector<size_t>> groups;
    std::map<std::vector<uint64_t>, size_t> at;
    for (size_t i = 0; i < keys.size(); ++i) {
        auto it = at.find(keys[i]);
        if (it == at.end()) {
            at.emplace(keys[i], groups.size());
            groups.push_back({i});
        } else {
            groups[it->second].push_back(i);
        }
    }
    return groups;
}

}  // namespace tca::detail
