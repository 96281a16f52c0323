#include "op_runs.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace tca::detail::test::op_runs {

namespace {

std::vector<int> sorted_subset(int n, double frac, uint32_t seed) {
    std::mt19937 rng(seed);
    std::bernoulli_distribution keep(frac);
    std::vector<int> v;
    for (int i = 0; i < n; ++i)
        if (keep(rng)) v.push_back(i);
    return v;
}

std::vector<float> kv_values(const Shape& c, int tokens, uint32_t seed) {
    auto v = randn(size_t(c.hkv) * tokens * c.dim, seed);
    return round_to_format(c.dtype, v);
}

}  // namespace

double tolerance(DType t) { return t == DType::f32 ? 1e-9 : 1e-6; }

std::vector<float> run_dense_prefill(Device& d, const Shape& s, int row_pad) {
    auto q = make_tensor(d, DType::f32, s.hq, s.len, s.dim, randn(size_t(s.hq) * s.len * s.dim, 61, 1.5f), row_pad);
    auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, kv_values(s, s.len, 62), row_pad);
    auto v = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, kv_values(s, s.len, 63), row_pad);
    auto o = make_output(d, s.hq, s.len, s.dim, row_pad);
    PrefillArgs a;
    a.q = q.t, a.k = k.t, a.v = v.t, a.o = o.t;
    d.prefill(a);
    check_guards(d, o, "o");
    return read_tensor(d, o);
}

std::vector<float> run_sparse(Device& d, const SparseCase& c, int row_pad) {
    const auto& s = c.s;
    auto q = make_tensor(d, DType::f32, s.hq, c.q_tokens, s.dim, randn(size_t(s.hq) * c.q_tokens * s.dim, 5, 1.5f), row_pad);
    auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, kv_values(s, s.len, 6), row_pad);
    auto v = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, kv_values(s, s.len, 7), row_pad);
    auto o = make_output(d, s.hq, c.q_tokens, s.dim, row_pad);
    // Kept lists per KV head: random subsets of every position (entries too recent for a query
    // must be ignored by it), stride with room to spare.
    const int stride = s.len + 3;
    std::vector<int32_t> idx(size_t(s.hkv) * stride, -7), count(s.hkv);
    for (int h = 0; h < s.hkv; ++h) {
        const auto kept = sorted_subset(s.len, c.keep, 100 + h);
        std::copy(kept.begin(), kept.end(), idx.begin() + size_t(h) * stride);
        count[h] = int(kept.size());
    }
    auto gi = make_ints(d, idx);
    auto gc = make_ints(d, count);
    PrefillArgs a;
    a.q = q.t, a.k = k.t, a.v = v.t, a.o = o.t;
    a.q_pos0 = s.len - c.q_tokens;
    a.window = c.window;
    a.kept_idx = gi.view(), a.kept_count = gc.view(), a.kept_stride = stride;
    d.prefill(a);
    check_guards(d, o, "o");
    return read_tensor(d, o);
}

std::pair<std::vector<float>, std::vector<float>> run_decode(Device& d, const DecodeCase& c) {
    const auto& s = c.s;
    auto q = make_tensor(d, DType::f32, s.hq, 1, s.dim, randn(size_t(s.hq) * s.dim, 11, 1.5f));
    auto k1 = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, kv_values(s, s.len, 12), 4);
    auto v1 = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, kv_values(s, s.len, 13), 4);
    GuardedTensor k2, v2;
    GuardedArray n2;
    if (c.cap2 > 0) {
        k2 = make_tensor(d, s.dtype, s.hkv, c.cap2, s.dim, kv_values(s, c.cap2, 14));
        v2 = make_tensor(d, s.dtype, s.hkv, c.cap2, s.dim, kv_values(s, c.cap2, 15));
        n2 = make_ints(d, c.n2);
    }
    auto o = make_output(d, s.hq, 1, s.dim);
    auto probs = make_floats(d, std::vector<float>(size_t(s.hkv) * c.probs_n, NAN));
    DecodeArgs a;
    a.q = q.t, a.o = o.t, a.k1 = k1.t, a.v1 = v1.t, a.n1 = c.n1;
    if (c.cap2 > 0) a.k2 = k2.t, a.v2 = v2.t, a.n2 = n2.view();
    if (c.probs_n) a.probs = probs.view(), a.probs_n = c.probs_n;
    a.splits = c.splits;
    a.n2_max = c.n2_max;
    d.decode(a);
    check_guards(d, o, "o");
    check_guards(d, probs, "probs");
    return {read_tensor(d, o), read_floats(d, probs, size_t(s.hkv) * c.probs_n)};
}

std::vector<float> run_score(Device& d, const Shape& s, int q_row, int n_keys) {
    const int stride = n_keys + 5;
    auto q = make_tensor(d, DType::f32, s.hq, 3, s.dim, randn(size_t(s.hq) * 3 * s.dim, 21, 1.5f));
    auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, kv_values(s, s.len, 22), 4);
    auto out = make_floats(d, std::vector<float>(size_t(s.hkv) * stride, -1.f));
    ScoreArgs a;
    a.q = q.t, a.q_row = q_row, a.k = k.t, a.n_keys = n_keys, a.s = out.view(), a.s_stride = stride;
    d.score(a);
    check_guards(d, out, "s");
    auto v = read_floats(d, out, size_t(s.hkv) * stride);
    for (int h = 0; h < s.hkv; ++h)  // the padding past n_keys stays untouched
        for (int j = n_keys; j < stride; ++j) EXPECT_EQ(v[size_t(h) * stride + j], -1.f);
    return v;
}

// Softmax-like scores: a few large values, a long tail, tiny values and exact ties.
std::vector<float> fake_scores(int heads, int stride, uint32_t seed) {
    std::mt19937 rng(seed);
    std::exponential_distribution<float> e(1.f);
    std::vector<float> s(size_t(heads) * stride);
    for (size_t i = 0; i < s.size(); ++i) {
        float x = std::exp(-6.f * e(rng));
        if (i % 97 == 3) x = 1e-30f * e(rng);
        if (i % 13 == 5) x = 0.125f;  // ties
        s[i] = x;
    }
    return s;
}

std::vector<float> run_metric(Device& d, const SelectCase& c, const std::vector<float>& s) {
    const int nb = n_blocks_of(c.n_global, c.block);
    auto gs = make_floats(d, s);
    auto gh = make_floats(d, std::vector<float>(size_t(c.heads) * nb, NAN));
    MetricArgs a;
    a.s = gs.view(), a.heads = c.heads, a.s_stride = c.stride, a.n_global = c.n_global, a.block = c.block;
    a.alpha = 0.3f, a.h = gh.view();
    d.metric(a);
    check_guards(d, gh, "h");
    return read_floats(d, gh, size_t(c.heads) * nb);
}

std::vector<int32_t> run_rank(Device& d, const SelectCase& c, const std::vector<float>& h) {
    auto g = make_floats(d, h);
    auto order = make_ints(d, std::vector<int32_t>(h.size(), -1));
    RankArgs a;
    a.h = g.view(), a.heads = c.heads, a.n_blocks = n_blocks_of(c.n_global, c.block), a.order = order.view();
    d.rank(a);
    check_guards(d, order, "order");
    return read_ints(d, order, h.size());
}

std::vector<int32_t> select_budget(const SelectCase& c) {
    const int nb = n_blocks_of(c.n_global, c.block);
    std::vector<int32_t> budget(size_t(c.heads) * nb);
    for (int hh = 0; hh < c.heads; ++hh)
        for (int r = 0; r < nb; ++r) budget[size_t(hh) * nb + r] = std::max(1, c.block + 3 - r * 7);
    return budget;
}

std::vector<int32_t> run_select(Device& d, const SelectCase& c, const std::vector<float>& s,
                                const std::vector<int32_t>& order, const std::vector<int32_t>& budget) {
    const int idx_stride = c.n_global + 2;
    auto gs = make_floats(d, s);
    auto go = make_ints(d, order);
    auto gb = make_ints(d, budget);
    auto idx = make_ints(d, std::vector<int32_t>(size_t(c.heads) * idx_stride, -1));
    auto cnt = make_ints(d, std::vector<int32_t>(c.heads, -1));
    SelectArgs a;
    a.s = gs.view(), a.heads = c.heads, a.s_stride = c.stride, a.n_global = c.n_global, a.block = c.block;
    a.order = go.view(), a.budget = gb.view(), a.idx = idx.view(), a.idx_stride = idx_stride;
    a.count = cnt.view();
    d.select(a);
    check_guards(d, idx, "idx");
    check_guards(d, cnt, "count");
    auto i = read_ints(d, idx, size_t(c.heads) * idx_stride);
    auto n = read_ints(d, cnt, c.heads);
    for (int hh = 0; hh < c.heads; ++hh)  // only the counted prefix is defined
        std::fill(i.begin() + size_t(hh) * idx_stride + n[hh], i.begin() + size_t(hh + 1) * idx_stride, 0);
    i.insert(i.end(), n.begin(), n.end());
    return i;
}

std::vector<float> run_gather(Device& d, DType dt) {
    const Shape s{0, 2, 300, 64, dt};
    auto sk = make_tensor(d, dt, 2, 300, 64, kv_values(s, 300, 41), 4);
    auto sv = make_tensor(d, dt, 2, 300, 64, kv_values(s, 300, 42));
    auto dk = make_tensor(d, dt, 2, 120, 64, kv_values(s, 120, 43));
    auto dv = make_tensor(d, dt, 2, 120, 64, kv_values(s, 120, 44), 8);
    const int idx_stride = 70, pos_stride = 130;
    std::vector<int32_t> idx(2 * idx_stride, 0);
    for (int r = 0; r < idx_stride; ++r) idx[r] = r * 3, idx[idx_stride + r] = 200 - r;
    auto gi = make_ints(d, idx);
    auto cnt = make_ints(d, {60, 17});
    auto off = make_ints(d, {5, 100});  // also the length output: append semantics
    auto pos = make_ints(d, std::vector<int32_t>(2 * pos_stride, -1));
    GatherArgs a;
    a.src_k = sk.t, a.src_v = sv.t, a.dst_k = dk.t, a.dst_v = dv.t, a.src_row0 = 10;
    a.idx = gi.view(), a.idx_stride = idx_stride, a.count = cnt.view();
    a.dst_off = off.view(), a.dst_len = off.view(), a.pos_out = pos.view(), a.pos_stride = pos_stride;
    a.pos_base = 1000;
    d.gather(a);
    // and a dense one: uniform count, no idx, no offsets
    GatherArgs b;
    b.src_k = sk.t, b.src_v = sv.t, b.dst_k = dk.t, b.dst_v = dv.t, b.src_row0 = 250, b.uniform_count = 4;
    d.gather(b);
    check_guards(d, dk, "dst_k");
    check_guards(d, dv, "dst_v");
    check_guards(d, off, "dst_len");
    auto out = read_tensor(d, dk);
    const auto v = read_tensor(d, dv);
    out.insert(out.end(), v.begin(), v.end());
    for (int x : read_ints(d, off, 2)) out.push_back(float(x));
    for (int x : read_ints(d, pos, 2 * pos_stride)) out.push_back(float(x));
    return out;
}

std::vector<float> run_colsum(Device& d, const Shape& s) {
    const int stride = s.len + 3;
    auto q = make_tensor(d, DType::f32, s.hq, s.len, s.dim, randn(size_t(s.hq) * s.len * s.dim, 51, 1.5f), 4);
    auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, kv_values(s, s.len, 52));
    auto c = make_floats(d, std::vector<float>(size_t(s.hkv) * stride, -1.f));
    ColsumArgs a;
    a.q = q.t, a.k = k.t, a.c = c.view(), a.c_stride = stride;
    d.colsum(a);
    check_guards(d, c, "c");
    return read_floats(d, c, size_t(s.hkv) * stride);
}

}  // namespace tca::detail::test::op_runs
