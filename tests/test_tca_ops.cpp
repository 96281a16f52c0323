// The TCA ops (score, metric, rank, select, gather, sparse prefill, two-segment decode with
// eviction probabilities, colsum) on every OpenCL/Vulkan device against the CPU reference.
//
// Selection-type ops (rank, select, gather) must match exactly: they are fed identical inputs
// (including deliberate ties, which break towards the lower index). Float-valued ops are compared
// by normalised MSE: 1e-9 for f32 storage, 1e-6 for f16 storage.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "harness.h"

namespace tca::detail::test {
namespace {

struct Shape {
    int hq, hkv, len, dim;
    DType dtype;
};

std::string shape_name(const Shape& s) {
    return "hq" + std::to_string(s.hq) + "_hkv" + std::to_string(s.hkv) + "_L" + std::to_string(s.len) + "_d" +
           std::to_string(s.dim) + "_" + dtype_name(s.dtype);
}

double tol(DType t) { return t == DType::f32 ? 1e-9 : 1e-6; }

struct Qkv {
    std::vector<float> q, k, v;
};

// Keys share a common direction so softmax rows are peaked, not flat: differences matter.
Qkv make_qkv(const Shape& s, uint32_t seed) {
    Qkv x;
    x.q = randn(size_t(s.hq) * s.len * s.dim, seed, 1.2f);
    x.k = randn(size_t(s.hkv) * s.len * s.dim, seed + 1);
    x.v = randn(size_t(s.hkv) * s.len * s.dim, seed + 2);
    x.k = round_to_format(s.dtype, x.k);
    x.v = round_to_format(s.dtype, x.v);
    return x;
}

class OpsTest : public ::testing::TestWithParam<std::string> {
protected:
    Device& dev() { return device(GetParam()); }
    Device& ref() { return reference(); }
};

// ---- score ----------------------------------------------------------------------------------------

TEST_P(OpsTest, ScoreMatchesReference) {
    for (const Shape& s : {Shape{1, 1, 1, 64, DType::f32}, Shape{2, 1, 127, 64, DType::f32},
                           Shape{8, 2, 129, 128, DType::f16}, Shape{4, 1, 4097, 128, DType::f32},
                           Shape{8, 1, 1000, 64, DType::f16}, Shape{8, 2, 300, 128, DType::bf16}}) {
        const Qkv x = make_qkv(s, 7);
        for (int n_keys : {s.len, std::max(1, s.len / 2)}) {
            auto run = [&](Device& d) {
                auto q = make_tensor(d, DType::f32, s.hq, s.len, s.dim, x.q);
                auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.k, 4);
                const int stride = n_keys + 3;
                auto out = make_floats(d, std::vector<float>(size_t(s.hkv) * stride, -7.f));
                ScoreArgs a;
                a.q = q.t, a.k = k.t, a.q_row = s.len - 1, a.n_keys = n_keys, a.s = out.view(), a.s_stride = stride;
                d.score(a);
                check_guards(d, out, "s");
                auto all = read_floats(d, out, size_t(s.hkv) * stride);
                std::vector<float> used;
                for (int h = 0; h < s.hkv; ++h) {
                    used.insert(used.end(), all.begin() + h * stride, all.begin() + h * stride + n_keys);
                    for (int j = n_keys; j < stride; ++j) EXPECT_EQ(all[h * stride + j], -7.f) << "wrote past n_keys";
                }
                return used;
            };
            const auto expect = run(ref()), got = run(dev());
            EXPECT_LE(nmse(expect, got), tol(s.dtype)) << shape_name(s) << " n_keys=" << n_keys;
        }
    }
}

// ---- metric -----------------------------------------------------------------------------------------

TEST_P(OpsTest, MetricMatchesReference) {
    for (int n_global : {1, 127, 128, 129, 1000, 16384}) {
        const int heads = 3, block = 128, stride = n_global + 5, nb = n_blocks_of(n_global, block);
        std::vector<float> s = randn(size_t(heads) * stride, 11);
        for (float& v : s) v = v * v / n_global;  // non-negative, scores-like
        // A block of zeros (S1 = 0) must give a finite value, not NaN.
        for (int i = 0; i < std::min(block, n_global); ++i) s[size_t(stride) + i] = 0.f;
        for (float alpha : {0.f, 0.5f, 1.f}) {
            auto run = [&](Device& d) {
                auto sb = make_floats(d, s);
                auto hb = make_floats(d, std::vector<float>(size_t(heads) * nb, NAN));
                MetricArgs a;
                a.s = sb.view(), a.heads = heads, a.s_stride = stride, a.n_global = n_global, a.block = block;
                a.alpha = alpha, a.h = hb.view();
                d.metric(a);
                check_guards(d, hb, "h");
                return read_floats(d, hb, size_t(heads) * nb);
            };
            const auto expect = run(ref()), got = run(dev());
            expect_finite(got, "h");
            EXPECT_LE(nmse(expect, got), 1e-10) << "n_global=" << n_global << " alpha=" << alpha;
        }
    }
}

// ---- rank -------------------------------------------------------------------------------------------

TEST_P(OpsTest, RankIsExactWithTiesToLowerIndex) {
    for (int nb : {1, 2, 7, 128, 129, 4096}) {
        const int heads = 2;
        std::vector<float> h = randn(size_t(heads) * nb, 21);
        // Many exact ties: quantise head 1 to a few levels.
        for (int j = 0; j < nb; ++j) h[nb + j] = std::round(h[nb + j] * 2.f) / 2.f;
        auto run = [&](Device& d) {
            auto hb = make_floats(d, h);
            auto ob = make_ints(d, std::vector<int32_t>(size_t(heads) * nb, -1));
            RankArgs a;
            a.h = hb.view(), a.heads = heads, a.n_blocks = nb, a.order = ob.view();
            d.rank(a);
            check_guards(d, ob, "order");
            return read_ints(d, ob, size_t(heads) * nb);
        };
        EXPECT_EQ(run(ref()), run(dev())) << "n_blocks=" << nb;
    }
}

// ---- select -----------------------------------------------------------------------------------------

struct SelectCase {
    int n_global, block;
};

TEST_P(OpsTest, SelectIsExactWithTiesToLowerIndex) {
    for (const SelectCase c : {SelectCase{1, 128}, SelectCase{127, 128}, SelectCase{129, 128}, SelectCase{1000, 128},
                               SelectCase{4097, 128}, SelectCase{300, 32}}) {
        const int heads = 3, stride = c.n_global + 1, nb = n_blocks_of(c.n_global, c.block);
        std::vector<float> s = randn(size_t(heads) * stride, 31);
        for (float& v : s) v = std::fabs(v);
        for (int i = 0; i < stride; ++i) s[size_t(2) * stride + i] = std::round(s[size_t(2) * stride + i] * 3) / 3;  // ties
        // Rank order: a fixed permutation per head; budgets non-increasing by rank, each >= 1,
        // some larger than the block (partial block keeps min(t, size)).
        std::vector<int32_t> order(size_t(heads) * nb), budget(size_t(heads) * nb);
        for (int h = 0; h < heads; ++h) {
            std::iota(order.begin() + h * nb, order.begin() + (h + 1) * nb, 0);
            std::rotate(order.begin() + h * nb, order.begin() + h * nb + (h * 5) % nb, order.begin() + (h + 1) * nb);
            for (int r = 0; r < nb; ++r) budget[size_t(h) * nb + r] = std::max(1, c.block * 2 - r * (c.block / 4 + h));
        }
        const int idx_stride = c.n_global + 2;
        auto run = [&](Device& d) {
            auto sb = make_floats(d, s);
            auto ob = make_ints(d, order);
            auto bb = make_ints(d, budget);
            auto ib = make_ints(d, std::vector<int32_t>(size_t(heads) * idx_stride, -1));
            auto cb = make_ints(d, std::vector<int32_t>(heads, -1));
            SelectArgs a;
            a.s = sb.view(), a.heads = heads, a.s_stride = stride, a.n_global = c.n_global, a.block = c.block;
            a.order = ob.view(), a.budget = bb.view(), a.idx = ib.view(), a.idx_stride = idx_stride, a.count = cb.view();
            d.select(a);
            check_guards(d, ib, "idx");
            check_guards(d, cb, "count");
            auto counts = read_ints(d, cb, heads);
            auto idx = read_ints(d, ib, size_t(heads) * idx_stride);
            std::vector<int32_t> kept(counts.begin(), counts.end());
            for (int h = 0; h < heads; ++h)
                kept.insert(kept.end(), idx.begin() + h * idx_stride, idx.begin() + h * idx_stride + counts[h]);
            return kept;
        };
        EXPECT_EQ(run(ref()), run(dev())) << "n_global=" << c.n_global << " block=" << c.block;
    }
}

// ---- gather -----------------------------------------------------------------------------------------

TEST_P(OpsTest, GatherAppendsExactly) {
    for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
        const int heads = 3, src_len = 300, dim = 64, dst_len = 200;
        const auto kv = randn(size_t(heads) * src_len * dim, 41);
        // Indices: sorted subsets of different sizes per head.
        const int idx_stride = 40;
        std::vector<int32_t> idx(size_t(heads) * idx_stride, 0), count = {40, 1, 17}, off = {0, 5, 150};
        for (int h = 0; h < heads; ++h)
            for (int r = 0; r < count[h]; ++r) idx[size_t(h) * idx_stride + r] = r * 7 + h;
        auto run = [&](Device& d, bool alias_len) {
            auto sk = make_tensor(d, dt, heads, src_len, dim, kv);
            auto sv = make_tensor(d, dt, heads, src_len, dim, kv, 4);
            auto dk = make_tensor(d, dt, heads, dst_len, dim, std::vector<float>(size_t(heads) * dst_len * dim, 0.f));
            auto dv = make_tensor(d, dt, heads, dst_len, dim, std::vector<float>(size_t(heads) * dst_len * dim, 0.f), 8);
            auto ib = make_ints(d, idx);
            auto cb = make_ints(d, count);
            auto ob = make_ints(d, off);
            auto lb = make_ints(d, std::vector<int32_t>(heads, -1));
            const int pos_stride = dst_len;
            auto pb = make_ints(d, std::vector<int32_t>(size_t(heads) * pos_stride, -1));
            GatherArgs a;
            a.src_k = sk.t, a.src_v = sv.t, a.dst_k = dk.t, a.dst_v = dv.t, a.src_row0 = 10;
            a.idx = ib.view(), a.idx_stride = idx_stride, a.count = cb.view(), a.dst_off = ob.view();
            a.dst_len = alias_len ? ob.view() : lb.view();
            a.pos_out = pb.view(), a.pos_stride = pos_stride, a.pos_base = 1000;
            d.gather(a);
            for (auto* g : {&dk, &dv}) check_guards(d, *g, "dst");
            auto k = read_tensor(d, dk), v = read_tensor(d, dv);
            auto lens = read_ints(d, alias_len ? ob : lb, heads);
            auto pos = read_ints(d, pb, size_t(heads) * pos_stride);
            k.insert(k.end(), v.begin(), v.end());
            for (int32_t x : lens) k.push_back(float(x));
            for (int32_t x : pos) k.push_back(float(x));
            return k;
        };
        for (bool alias : {false, true}) EXPECT_EQ(run(ref(), alias), run(dev(), alias)) << dtype_name(dt) << " alias=" << alias;
    }
}

TEST_P(OpsTest, GatherUniformCopyWithoutIndex) {
    const int heads = 2, src_len = 100, dim = 128;
    const auto kv = randn(size_t(heads) * src_len * dim, 43);
    auto run = [&](Device& d) {
        auto sk = make_tensor(d, DType::f16, heads, src_len, dim, kv);
        auto dk = make_tensor(d, DType::f16, heads, 64, dim, std::vector<float>(size_t(heads) * 64 * dim, 0.f));
        auto dv = make_tensor(d, DType::f16, heads, 64, dim, std::vector<float>(size_t(heads) * 64 * dim, 0.f));
        GatherArgs a;
        a.src_k = sk.t, a.src_v = sk.t, a.dst_k = dk.t, a.dst_v = dv.t, a.src_row0 = 36, a.uniform_count = 64;
        d.gather(a);
        check_guards(d, dk, "dst_k");
        return read_tensor(d, dk);
    };
    EXPECT_EQ(run(ref()), run(dev()));
}

// ---- sparse prefill ---------------------------------------------------------------------------------

// Kept list: every `stride`-th token of [0, n_global), plus the first token, per head shifted.
std::vector<int32_t> make_kept(int heads, int n_global, int kept_stride, std::vector<int32_t>& counts) {
    std::vector<int32_t> kept(size_t(heads) * kept_stride, 0);
    counts.assign(heads, 0);
    for (int h = 0; h < heads; ++h)
        for (int j = 0; j < n_global; ++j)
            if (j == 0 || (j + h) % (3 + h) == 0) kept[size_t(h) * kept_stride + counts[h]++] = j;
    return kept;
}

TEST_P(OpsTest, SparsePrefillMatchesReference) {
    struct Case {
        Shape s;
        int window;
    };
    for (const Case c : {Case{{2, 1, 1, 64, DType::f32}, 16}, Case{{4, 2, 129, 64, DType::f32}, 32},
                         Case{{8, 1, 300, 128, DType::f16}, 64}, Case{{2, 2, 1000, 128, DType::f32}, 100},
                         Case{{4, 1, 200, 64, DType::f32}, 500} /* window longer than the prompt */,
                         Case{{2, 1, 4097, 64, DType::f16}, 1024}, Case{{4, 2, 600, 128, DType::bf16}, 128}}) {
        const Shape& s = c.s;
        const Qkv x = make_qkv(s, 51);
        const int n_global = std::max(0, s.len - c.window), kept_stride = std::max(1, n_global);
        std::vector<int32_t> counts;
        const auto kept = make_kept(s.hkv, n_global, kept_stride, counts);
        auto run = [&](Device& d) {
            auto q = make_tensor(d, DType::f32, s.hq, s.len, s.dim, x.q);
            auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.k);
            auto v = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.v, 4);
            auto o = make_output(d, s.hq, s.len, s.dim);
            auto ib = make_ints(d, kept);
            auto cb = make_ints(d, counts);
            PrefillArgs a;
            a.q = q.t, a.k = k.t, a.v = v.t, a.o = o.t, a.window = c.window;
            a.kept_idx = ib.view(), a.kept_count = cb.view(), a.kept_stride = kept_stride;
            d.prefill(a);
            check_guards(d, o, "o");
            return read_tensor(d, o);
        };
        const auto expect = run(ref()), got = run(dev());
        expect_finite(got, "o");
        EXPECT_LE(nmse(expect, got), tol(s.dtype)) << shape_name(s) << " window=" << c.window;
    }
}

// Queries that start mid-sequence (chunked prefill): q_pos0 > 0, dense and sparse.
TEST_P(OpsTest, PrefillWithQueryOffset) {
    const Shape s{4, 2, 700, 64, DType::f32};
    const Qkv x = make_qkv(s, 53);
    const int q_tokens = 100, q_pos0 = 600, window = 64, n_global = s.len - window;
    std::vector<int32_t> counts;
    const auto kept = make_kept(s.hkv, n_global, n_global, counts);
    const std::vector<float> q_rows(x.q.begin(), x.q.begin() + size_t(s.hq) * q_tokens * s.dim);
    for (bool sparse : {false, true}) {
        auto run = [&](Device& d) {
            auto q = make_tensor(d, DType::f32, s.hq, q_tokens, s.dim, q_rows);
            auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.k);
            auto v = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.v);
            auto o = make_output(d, s.hq, q_tokens, s.dim);
            auto ib = make_ints(d, kept);
            auto cb = make_ints(d, counts);
            PrefillArgs a;
            a.q = q.t, a.k = k.t, a.v = v.t, a.o = o.t, a.q_pos0 = q_pos0;
            if (sparse) a.window = window, a.kept_idx = ib.view(), a.kept_count = cb.view(), a.kept_stride = n_global;
            d.prefill(a);
            check_guards(d, o, "o");
            return read_tensor(d, o);
        };
        EXPECT_LE(nmse(run(ref()), run(dev())), 1e-9) << "sparse=" << sparse;
    }
}

// ---- decode over two segments with eviction probabilities -------------------------------------------

TEST_P(OpsTest, TwoSegmentDecodeWithProbs) {
    struct Case {
        Shape s;
        int n1, probs_n;
        std::vector<int32_t> n2;
    };
    for (const Case& c : {Case{{4, 2, 300, 64, DType::f32}, 160, 32, {0, 77}},
                          Case{{8, 1, 5000, 128, DType::f16}, 4224, 128, {700}},
                          Case{{2, 2, 50, 128, DType::f32}, 1, 1, {50, 3}},
                          Case{{8, 8, 260, 64, DType::f32}, 200, 0, {1, 2, 3, 4, 5, 6, 7, 260}},
                          Case{{4, 2, 700, 128, DType::bf16}, 300, 64, {650, 41}}}) {
        const Shape& s = c.s;
        const Qkv x = make_qkv(s, 61);
        const std::vector<float> q1(x.q.begin(), x.q.begin() + size_t(s.hq) * s.dim);
        const auto k2 = randn(size_t(s.hkv) * s.len * s.dim, 62), v2 = randn(size_t(s.hkv) * s.len * s.dim, 63);
        auto run = [&](Device& d) {
            auto q = make_tensor(d, DType::f32, s.hq, 1, s.dim, q1);
            auto ka = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.k);
            auto va = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.v);
            auto kb = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, round_to_format(s.dtype, k2), 4);
            auto vb = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, round_to_format(s.dtype, v2), 4);
            auto o = make_output(d, s.hq, 1, s.dim);
            auto nb = make_ints(d, c.n2);
            auto pb = make_floats(d, std::vector<float>(size_t(s.hkv) * std::max(1, c.probs_n), NAN));
            DecodeArgs a;
            a.q = q.t, a.o = o.t, a.k1 = ka.t, a.v1 = va.t, a.n1 = c.n1, a.k2 = kb.t, a.v2 = vb.t, a.n2 = nb.view();
            if (c.probs_n) a.probs = pb.view(), a.probs_n = c.probs_n;
            d.decode(a);
            check_guards(d, o, "o");
            check_guards(d, pb, "probs");
            auto out = read_tensor(d, o);
            return std::make_pair(out, c.probs_n ? read_floats(d, pb, size_t(s.hkv) * c.probs_n) : std::vector<float>{});
        };
        const auto expect = run(ref()), got = run(dev());
        expect_finite(got.first, "o");
        EXPECT_LE(nmse(expect.first, got.first), tol(s.dtype)) << shape_name(s) << " n1=" << c.n1;
        EXPECT_LE(nmse(expect.second, got.second), tol(s.dtype)) << shape_name(s) << " probs";
    }
}

// ---- colsum (calibration statistic) ---------------------------------------------------------------

TEST_P(OpsTest, ColsumMatchesReference) {
    for (const Shape& s : {Shape{1, 1, 1, 64, DType::f32}, Shape{4, 2, 129, 64, DType::f32},
                           Shape{2, 1, 700, 128, DType::f16}, Shape{8, 2, 1500, 64, DType::f32},
                           Shape{4, 2, 500, 64, DType::bf16}}) {
        const Qkv x = make_qkv(s, 71);
        auto run = [&](Device& d) {
            auto q = make_tensor(d, DType::f32, s.hq, s.len, s.dim, x.q);
            auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.k, 4);
            auto cb = make_floats(d, std::vector<float>(size_t(s.hkv) * s.len, NAN));
            ColsumArgs a;
            a.q = q.t, a.k = k.t, a.c = cb.view(), a.c_stride = s.len;
            d.colsum(a);
            check_guards(d, cb, "c");
            return read_floats(d, cb, size_t(s.hkv) * s.len);
        };
        const auto expect = run(ref()), got = run(dev());
        expect_finite(got, "c");
        // c sums up to L probabilities per key in float: allow 1e-8 (f32) / 1e-6 (f16).
        EXPECT_LE(nmse(expect, got), s.dtype == DType::f32 ? 1e-8 : 1e-6) << shape_name(s);
    }
}

// ---- determinism and profiling ---------------------------------------------------------------------

TEST_P(OpsTest, RepeatedRunsAreBitwiseIdentical) {
    const Shape s{8, 2, 1000, 128, DType::f16};
    const Qkv x = make_qkv(s, 81);
    Device& d = dev();
    auto q = make_tensor(d, DType::f32, s.hq, s.len, s.dim, x.q);
    auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.k);
    auto v = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.v);
    std::vector<std::vector<float>> outs;
    for (int rep = 0; rep < 2; ++rep) {
        auto o = make_output(d, s.hq, s.len, s.dim);
        PrefillArgs a;
        a.q = q.t, a.k = k.t, a.v = v.t, a.o = o.t;
        d.prefill(a);
        auto o1 = make_output(d, s.hq, 1, s.dim);
        DecodeArgs b;
        b.q = Tensor{q.t.data, DType::f32, s.hq, 1, s.dim, q.t.head_stride, q.t.token_stride};
        b.o = o1.t, b.k1 = k.t, b.v1 = v.t, b.n1 = s.len;
        d.decode(b);
        auto out = read_tensor(d, o);
        auto out1 = read_tensor(d, o1);
        out.insert(out.end(), out1.begin(), out1.end());
        outs.push_back(out);
    }
    EXPECT_EQ(0, std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4)) << "results differ between runs";
}

TEST_P(OpsTest, ProfilingRecordsEachOp) {
    const Shape s{2, 1, 256, 64, DType::f32};
    const Qkv x = make_qkv(s, 91);
    Device& d = dev();
    auto q = make_tensor(d, DType::f32, s.hq, s.len, s.dim, x.q);
    auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.k);
    auto o = make_output(d, s.hq, s.len, s.dim);
    d.take_timings();
    d.set_profiling(true);
    PrefillArgs a;
    a.q = q.t, a.k = k.t, a.v = k.t, a.o = o.t;
    d.prefill(a);
    d.prefill(a);
    const auto t = d.take_timings();
    d.set_profiling(false);
    ASSERT_EQ(t.size(), 2u);
    for (const auto& r : t) {
        EXPECT_EQ(r.op, Op::attend_dense);
        EXPECT_GT(r.ms, 0.0);
    }
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OpsTest);
INSTANTIATE_TEST_SUITE_P(AllDevices, OpsTest, ::testing::ValuesIn(devices_under_test()),
                         [](const auto& info) { return safe_name(info.param); });

}  // namespace
}  // namespace tca::detail::test
