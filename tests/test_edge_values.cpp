// Edge values for every op on every device under test, against the CPU reference: tiny values
// (1e-30 .. 1e-20; f16 subnormals for f16 storage), large values inside the library's input range
// (tca.h, TCA_SCORE_LIMIT: scores of 1e4 .. 1e6 and values of 1e17), all-equal ties and zeros.
// Every result must be finite and match the reference (selection-type ops and copies exactly).
//
// The large-score inputs are integers whose dot products stay below 2^24 and the scale is a power
// of two, so every backend computes exactly the same scores: the softmax is then compared, not
// the rounding of q.k (at scores of 1e6 one ulp of a score is already 0.06 in the exponent).
#include <cmath>
#include <cstring>
#include <numeric>

#include "harness.h"

namespace tca::detail::test {
namespace {

enum class Regime { tiny, large, limit, ties, zeros };

const char* regime_name(Regime r) {
    switch (r) {
        case Regime::tiny: return "tiny";
        case Regime::large: return "large";
        case Regime::limit: return "limit";
        case Regime::ties: return "ties";
        case Regime::zeros: return "zeros";
    }
    return "?";
}

const Regime kRegimes[] = {Regime::tiny, Regime::large, Regime::limit, Regime::ties, Regime::zeros};

struct Shape {
    int hq, hkv, len, dim;
    DType dtype;
};

// The scale every attention op here uses: a power of two (1/sqrt(64) and 1/16 for d = 128).
float scale_for(int dim) { return dim == 64 ? 0.125f : 0.0625f; }

// Magnitudes spread over 1e-20 .. 1e-30 (f32), or over the f16 subnormals 6e-8 .. 6e-5.
std::vector<float> tiny_values(size_t n, uint32_t seed, DType dt) {
    std::vector<float> x = randn(n, seed);
    for (size_t i = 0; i < n; ++i) {
        const int e = int((i * 7) % 11);  // 0 .. 10
        x[i] *= dt == DType::f32 ? float(std::pow(10.0, -20 - e)) : float(std::pow(10.0, -5 - e % 3) * 0.5);
    }
    return dt == DType::f16 ? round_to_half(x) : x;
}

// Integers in [-lim, lim].
std::vector<float> integers(size_t n, uint32_t seed, float lim) {
    std::vector<float> x = randn(n, seed, lim / 3);
    for (float& v : x) v = std::round(std::fmin(lim, std::fmax(-lim, v)));
    return x;
}

struct Qkv {
    std::vector<float> q, k, v;
};

// q [hq, q_tokens, dim], k/v [hkv, len, dim] in the given regime.
Qkv make_qkv(const Shape& s, int q_tokens, Regime r, uint32_t seed) {
    const size_t nq = size_t(s.hq) * q_tokens * s.dim, nk = size_t(s.hkv) * s.len * s.dim;
    Qkv x;
    switch (r) {
        case Regime::tiny:
            x.q = tiny_values(nq, seed, DType::f32);
            x.k = tiny_values(nk, seed + 1, s.dtype);
            x.v = tiny_values(nk, seed + 2, s.dtype);
            break;
        case Regime::large:
            // |q_i k_i| <= 3000 * 40 and d <= 128 terms: every partial sum of q.k is below 2^24, so
            // exact in f32; scores reach ~1e6 (d = 64: scale 1/8).
            x.q = integers(nq, seed, 3000);
            x.k = integers(nk, seed + 1, s.dim == 64 ? 40 : 20);
            x.v = s.dtype == DType::f32 ? randn(nk, seed + 2, 1e17f) : round_to_half(randn(nk, seed + 2, 1e4f));
            break;
        case Regime::limit:
            // Just inside the range: |scale| * max|q| * max|k| and max|v| (row norms) near 1e20. The
            // softmax is one-hot (score gaps of ~1e17 dwarf rounding), so backends still agree.
            x.q = randn(nq, seed, s.dtype == DType::f32 ? 2.5e9f : 1e15f);
            x.k = s.dtype == DType::f32 ? randn(nk, seed + 1, 2.5e9f) : round_to_half(randn(nk, seed + 1, 100.f));
            x.v = s.dtype == DType::f32 ? randn(nk, seed + 2, 1e19f) : round_to_half(randn(nk, seed + 2, 6e3f));
            break;
        case Regime::ties: {
            // Every key the same row: all scores of a query are bitwise equal, the softmax uniform.
            x.q = integers(nq, seed, 3000);
            const std::vector<float> row = integers(size_t(s.dim), seed + 1, 40);
            x.k.resize(nk);
            for (size_t i = 0; i < nk; ++i) x.k[i] = row[i % size_t(s.dim)];
            x.v = s.dtype == DType::f32 ? randn(nk, seed + 2, 1e10f) : round_to_half(randn(nk, seed + 2));
            break;
        }
        case Regime::zeros:
            x.q.assign(nq, 0.f);
            x.k.assign(nk, 0.f);
            x.v.assign(nk, 0.f);
            break;
    }
    return x;
}

double tol(DType t) { return t == DType::f32 ? 1e-9 : 1e-6; }

std::string what(const Shape& s, Regime r) {
    return std::string(regime_name(r)) + " hq" + std::to_string(s.hq) + " hkv" + std::to_string(s.hkv) + " L" +
           std::to_string(s.len) + " d" + std::to_string(s.dim) + " " + dtype_name(s.dtype);
}

const Shape kShapes[] = {{4, 2, 300, 64, DType::f32}, {2, 1, 200, 128, DType::f16}};

class EdgeValues : public ::testing::TestWithParam<std::string> {
protected:
    Device& dev() { return device(GetParam()); }
    Device& ref() { return reference(); }
    // Runs `run` on the reference and the device; expects finite results within `tolerance`.
    template <class F>
    void compare(F run, double tolerance, const std::string& label) {
        const std::vector<float> expect = run(ref()), got = run(dev());
        expect_finite(expect, label + " (reference)");
        expect_finite(got, label);
        EXPECT_LE(nmse(expect, got), tolerance) << label;
    }
};

// ---- attention ---------------------------------------------------------------------------------

TEST_P(EdgeValues, DensePrefill) {
    for (const Shape& s : kShapes)
        for (Regime r : kRegimes) {
            const Qkv x = make_qkv(s, s.len, r, 101);
            compare(
                [&](Device& d) {
                    auto q = make_tensor(d, DType::f32, s.hq, s.len, s.dim, x.q);
                    auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.k);
                    auto v = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.v);
                    auto o = make_output(d, s.hq, s.len, s.dim);
                    PrefillArgs a;
                    a.q = q.t, a.k = k.t, a.v = v.t, a.o = o.t, a.scale = scale_for(s.dim);
                    d.prefill(a);
                    return read_tensor(d, o);
                },
                tol(s.dtype), what(s, r));
        }
}

TEST_P(EdgeValues, SparsePrefill) {
    for (const Shape& s : kShapes)
        for (Regime r : kRegimes) {
            const Qkv x = make_qkv(s, s.len, r, 111);
            const int window = 48, n_global = s.len - window;
            std::vector<int32_t> kept(size_t(s.hkv) * n_global), count(s.hkv, 0);
            for (int h = 0; h < s.hkv; ++h)
                for (int j = 0; j < n_global; ++j)
                    if (j % (2 + h) == 0) kept[size_t(h) * n_global + count[h]++] = j;
            compare(
                [&](Device& d) {
                    auto q = make_tensor(d, DType::f32, s.hq, s.len, s.dim, x.q);
                    auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.k);
                    auto v = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.v);
                    auto o = make_output(d, s.hq, s.len, s.dim);
                    auto ib = make_ints(d, kept);
                    auto cb = make_ints(d, count);
                    PrefillArgs a;
                    a.q = q.t, a.k = k.t, a.v = v.t, a.o = o.t, a.scale = scale_for(s.dim), a.window = window;
                    a.kept_idx = ib.view(), a.kept_count = cb.view(), a.kept_stride = n_global;
                    d.prefill(a);
                    return read_tensor(d, o);
                },
                tol(s.dtype), what(s, r));
        }
}

TEST_P(EdgeValues, TwoSegmentDecodeWithProbs) {
    for (const Shape& s : kShapes)
        for (Regime r : kRegimes) {
            const Qkv x = make_qkv(s, 1, r, 121);
            const int n1 = s.len / 2, probs_n = 32;
            const std::vector<int32_t> n2(s.hkv, s.len / 3);
            for (const bool want_probs : {false, true}) {
                auto run = [&](Device& d, bool probs_only) {
                    auto q = make_tensor(d, DType::f32, s.hq, 1, s.dim, x.q);
                    auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.k);
                    auto v = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.v);
                    auto o = make_output(d, s.hq, 1, s.dim);
                    auto nb = make_ints(d, n2);
                    auto pb = make_floats(d, std::vector<float>(size_t(s.hkv) * probs_n, NAN));
                    DecodeArgs a;
                    a.q = q.t, a.o = o.t, a.k1 = k.t, a.v1 = v.t, a.n1 = n1, a.scale = scale_for(s.dim);
                    // Segment 2: the same tensors from row 0 (keys seen twice are fine for a softmax).
                    a.k2 = k.t, a.v2 = v.t, a.n2 = nb.view();
                    if (want_probs) a.probs = pb.view(), a.probs_n = probs_n;
                    d.decode(a);
                    return probs_only ? read_floats(d, pb, size_t(s.hkv) * probs_n) : read_tensor(d, o);
                };
                compare([&](Device& d) { return run(d, false); }, tol(s.dtype), what(s, r) + " o");
                if (want_probs) compare([&](Device& d) { return run(d, true); }, tol(s.dtype), what(s, r) + " probs");
            }
        }
}

// Split-K decode over many keys: the splits' (max, sum) partials are merged.
TEST_P(EdgeValues, LongDecode) {
    const Shape s{4, 1, 5000, 64, DType::f32};
    for (Regime r : kRegimes) {
        const Qkv x = make_qkv(s, 1, r, 131);
        compare(
            [&](Device& d) {
                auto q = make_tensor(d, DType::f32, s.hq, 1, s.dim, x.q);
                auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.k);
                auto v = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.v);
                auto o = make_output(d, s.hq, 1, s.dim);
                DecodeArgs a;
                a.q = q.t, a.o = o.t, a.k1 = k.t, a.v1 = v.t, a.n1 = s.len, a.scale = scale_for(s.dim);
                d.decode(a);
                return read_tensor(d, o);
            },
            tol(s.dtype), what(s, r));
    }
}

TEST_P(EdgeValues, Score) {
    for (const Shape& s : kShapes)
        for (Regime r : kRegimes) {
            const Qkv x = make_qkv(s, s.len, r, 141);
            compare(
                [&](Device& d) {
                    auto q = make_tensor(d, DType::f32, s.hq, s.len, s.dim, x.q);
                    auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.k);
                    auto out = make_floats(d, std::vector<float>(size_t(s.hkv) * s.len, NAN));
                    ScoreArgs a;
                    a.q = q.t, a.k = k.t, a.q_row = s.len - 1, a.n_keys = s.len, a.scale = scale_for(s.dim);
                    a.s = out.view(), a.s_stride = s.len;
                    d.score(a);
                    return read_floats(d, out, size_t(s.hkv) * s.len);
                },
                tol(s.dtype), what(s, r));
        }
}

TEST_P(EdgeValues, Colsum) {
    for (const Shape& s : kShapes)
        for (Regime r : kRegimes) {
            const Qkv x = make_qkv(s, s.len, r, 151);
            compare(
                [&](Device& d) {
                    auto q = make_tensor(d, DType::f32, s.hq, s.len, s.dim, x.q);
                    auto k = make_tensor(d, s.dtype, s.hkv, s.len, s.dim, x.k);
                    auto cb = make_floats(d, std::vector<float>(size_t(s.hkv) * s.len, NAN));
                    ColsumArgs a;
                    a.q = q.t, a.k = k.t, a.scale = scale_for(s.dim), a.c = cb.view(), a.c_stride = s.len;
                    d.colsum(a);
                    return read_floats(d, cb, size_t(s.hkv) * s.len);
                },
                s.dtype == DType::f32 ? 1e-8 : 1e-6, what(s, r));
        }
}

// ---- selection --------------------------------------------------------------------------------

std::vector<float> run_metric(Device& d, const std::vector<float>& s, int heads, int n_global, float alpha) {
    const int nb = n_blocks_of(n_global, 128);
    auto sb = make_floats(d, s);
    auto hb = make_floats(d, std::vector<float>(size_t(heads) * nb, NAN));
    MetricArgs a;
    a.s = sb.view(), a.heads = heads, a.s_stride = n_global, a.n_global = n_global, a.block = 128, a.alpha = alpha;
    a.h = hb.view();
    d.metric(a);
    return read_floats(d, hb, size_t(heads) * nb);
}

std::vector<int32_t> run_rank(Device& d, const std::vector<float>& h, int heads, int nb) {
    auto hb = make_floats(d, h);
    auto ob = make_ints(d, std::vector<int32_t>(size_t(heads) * nb, -1));
    RankArgs a;
    a.h = hb.view(), a.heads = heads, a.n_blocks = nb, a.order = ob.view();
    d.rank(a);
    return read_ints(d, ob, size_t(heads) * nb);
}

// The case: a block of 128 x 1e-25 (S1 > 0, S1^2 below the f32 range) beside a block
// alternating 1e-4 / 0. h = 0.5 S1 + 0.5 (1 - S2 / S1^2) = [0.4960938, 0.4953875], order [0, 1].
TEST_P(EdgeValues, MetricWhenTheSquaredMassUnderflows) {
    std::vector<float> s(256);
    for (int i = 0; i < 128; ++i) s[i] = 1e-25f;
    for (int i = 128; i < 256; ++i) s[i] = i % 2 == 0 ? 1e-4f : 0.f;
    for (Device* d : {&ref(), &dev()}) {
        const auto h = run_metric(*d, s, 1, 256, 0.5f);
        ASSERT_EQ(h.size(), 2u);
        EXPECT_NEAR(h[0], 0.5 * 1.28e-23 + 0.5 * (1 - 1.0 / 128), 1e-6) << d->info().name;
        EXPECT_NEAR(h[1], 0.5 * 6.4e-3 + 0.5 * (1 - 1.0 / 64), 1e-6) << d->info().name;
        EXPECT_EQ(run_rank(*d, h, 1, 2), (std::vector<int32_t>{0, 1})) << d->info().name;
    }
}

// Blocks of every kind side by side: tiny (1e-30 .. 1e-20), large (1e20 .. 1e30, whose squares
// leave the f32 range), all equal, all zero, a single non-zero, and ordinary probabilities.
std::vector<float> metric_rows(int heads, int n_global) {
    std::vector<float> s(size_t(heads) * n_global);
    const auto g = randn(s.size(), 161);
    for (size_t i = 0; i < s.size(); ++i) {
        const int blk = int(i % size_t(n_global)) / 128, kind = (blk + int(i / size_t(n_global))) % 6;
        const float u = std::fabs(g[i]);
        const int e = int((i * 7) % 11);
        switch (kind) {
            case 0: s[i] = u * float(std::pow(10.0, -20 - e)); break;
            case 1: s[i] = u * float(std::pow(10.0, 20 + e)); break;
            case 2: s[i] = 3e-22f; break;
            case 3: s[i] = 0.f; break;
            case 4: s[i] = i % 128 == 5 ? 1e-27f : 0.f; break;
            default: s[i] = u * u / float(n_global); break;
        }
    }
    return s;
}

TEST_P(EdgeValues, Metric) {
    const int heads = 3, n_global = 128 * 12 + 40;
    const auto s = metric_rows(heads, n_global);
    for (float alpha : {0.f, 0.5f, 1.f}) {
        const auto expect = run_metric(ref(), s, heads, n_global, alpha);
        const auto got = run_metric(dev(), s, heads, n_global, alpha);
        expect_finite(got, "h");
        ASSERT_EQ(expect.size(), got.size());
        // Element-wise relative: blocks of 1e30 mass sit beside blocks of 1e-30 mass.
        for (size_t i = 0; i < got.size(); ++i)
            EXPECT_NEAR(got[i], expect[i], 1e-5 * std::fabs(expect[i]) + 1e-6) << "block " << i << " alpha " << alpha;
        // Whatever the values, the ranking they induce must be the same.
        EXPECT_EQ(run_rank(ref(), expect, heads, n_blocks_of(n_global, 128)),
                  run_rank(dev(), got, heads, n_blocks_of(n_global, 128)))
            << "alpha " << alpha;
    }
}

TEST_P(EdgeValues, Rank) {
    const int heads = 6, nb = 300;
    std::vector<float> h(size_t(heads) * nb);
    const auto g = randn(h.size(), 171);
    for (int j = 0; j < nb; ++j) {
        h[j] = 0.5f;                                                     // all equal
        h[nb + j] = 0.f;                                                 // all zero
        h[2 * nb + j] = float(1 + j % 17) * 1e-30f;                      // tiny, many ties
        h[3 * nb + j] = std::fabs(g[3 * nb + j]) * 1e30f;                // large
        h[4 * nb + j] = j % 3 == 0 ? -0.f : (j % 3 == 1 ? 0.f : 1e-25f);  // signed zeros tie
        h[5 * nb + j] = j % 4 == 1 ? NAN : g[5 * nb + j];                 // NaN ranks as -infinity
    }
    EXPECT_EQ(run_rank(ref(), h, heads, nb), run_rank(dev(), h, heads, nb));
}

// NaN cannot come out of the metric any more, but the ranking must stay a permutation regardless.
TEST_P(EdgeValues, RankPutsNaNLast) {
    const std::vector<float> h = {NAN, 1.f, NAN, 2.f, -INFINITY, 0.f};
    const std::vector<int32_t> expect = {3, 1, 5, 0, 2, 4};  // NaN ties with -inf: lower index first
    for (Device* d : {&ref(), &dev()}) EXPECT_EQ(run_rank(*d, h, 1, int(h.size())), expect) << d->info().name;
}

TEST_P(EdgeValues, Select) {
    const int heads = 5, n_global = 128 * 3 + 17, nb = n_blocks_of(n_global, 128);
    std::vector<float> s(size_t(heads) * n_global);
    for (int i = 0; i < n_global; ++i) {
        s[i] = 1e-25f;                                          // all tied
        s[n_global + i] = 0.f;                                  // all zero
        s[2 * n_global + i] = float(1 + (i * 13) % 7) * 1e-30f;  // tiny with ties
        s[3 * n_global + i] = i % 2 ? -0.f : 0.f;               // signed zeros tie
        s[4 * n_global + i] = i % 3 ? float(i % 5) : NAN;       // NaN ranks as -infinity
    }
    std::vector<int32_t> order(size_t(heads) * nb), budget(size_t(heads) * nb);
    for (int h = 0; h < heads; ++h)
        for (int r = 0; r < nb; ++r) {
            order[size_t(h) * nb + r] = (r + h) % nb;
            budget[size_t(h) * nb + r] = std::max(1, 100 - 30 * r + h);
        }
    auto run = [&](Device& d) {
        auto sb = make_floats(d, s);
        auto ob = make_ints(d, order);
        auto bb = make_ints(d, budget);
        auto ib = make_ints(d, std::vector<int32_t>(size_t(heads) * n_global, -1));
        auto cb = make_ints(d, std::vector<int32_t>(heads, -1));
        SelectArgs a;
        a.s = sb.view(), a.heads = heads, a.s_stride = n_global, a.n_global = n_global, a.block = 128;
        a.order = ob.view(), a.budget = bb.view(), a.idx = ib.view(), a.idx_stride = n_global, a.count = cb.view();
        d.select(a);
        auto counts = read_ints(d, cb, heads);
        auto idx = read_ints(d, ib, size_t(heads) * n_global);
        std::vector<int32_t> kept(counts.begin(), counts.end());
        for (int h = 0; h < heads; ++h)
            kept.insert(kept.end(), idx.begin() + size_t(h) * n_global, idx.begin() + size_t(h) * n_global + counts[h]);
        return kept;
    };
    EXPECT_EQ(run(ref()), run(dev()));
}

// ---- copies ---------------------------------------------------------------------------------------

// A copy must keep every bit: tiny, subnormal, huge, signed zeros.
TEST_P(EdgeValues, GatherKeepsEveryBit) {
    for (DType dt : {DType::f32, DType::f16}) {
        const int heads = 2, len = 40, dim = 64;
        std::vector<float> kv(size_t(heads) * len * dim);
        const float f32_specials[] = {1e-30f, -1e-20f, 1e-40f, -1e-45f, 3.0e38f, -3.4e38f, 0.f, -0.f};
        const float f16_specials[] = {6e-8f, -6e-8f, 3e-5f, 65504.f, -65504.f, 0.f, -0.f, 1e-4f};
        for (size_t i = 0; i < kv.size(); ++i) kv[i] = (dt == DType::f32 ? f32_specials : f16_specials)[i % 8];
        const std::vector<int32_t> idx = {39, 0, 7, 20, 1, 2, 3, 38, 5, 4, 3, 2, 1, 0, 0, 0}, count = {8, 5};
        auto run = [&](Device& d) {
            auto sk = make_tensor(d, dt, heads, len, dim, kv);
            auto dk = make_tensor(d, dt, heads, 10, dim, std::vector<float>(size_t(heads) * 10 * dim, 1.f));
            auto dv = make_tensor(d, dt, heads, 10, dim, std::vector<float>(size_t(heads) * 10 * dim, 1.f));
            auto ib = make_ints(d, idx);
            auto cb = make_ints(d, count);
            GatherArgs a;
            a.src_k = sk.t, a.src_v = sk.t, a.dst_k = dk.t, a.dst_v = dv.t;
            a.idx = ib.view(), a.idx_stride = 8, a.count = cb.view();
            d.gather(a);
            const size_t bytes = size_t(heads) * 10 * dim * dtype_size(dt);
            std::vector<unsigned char> out(2 * bytes);
            d.read(dk.t.data, out.data(), bytes);
            d.read(dv.t.data, out.data() + bytes, bytes);
            return out;
        };
        EXPECT_EQ(run(ref()), run(dev())) << dtype_name(dt);
    }
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(EdgeValues);
INSTANTIATE_TEST_SUITE_P(AllDevices, EdgeValues, ::testing::ValuesIn(devices_under_test()),
                         [](const auto& info) { return safe_name(info.param); });

}  // namespace
}  // namespace tca::detail::test
