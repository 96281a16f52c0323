// TCA prefill + decode against dense attention over the same tokens: every output within the
// spec's error bound, and the cache exactly as the spec's decode section describes after every step.
#include <gtest/gtest.h>

#include "method/bound.h"
#include "method/candidates.h"
#include "method/session.h"
#include "method_fixtures.h"

namespace tca::detail::method {
namespace {

using test::cpu;

std::vector<float> rows_at(const HostTensor& x, int t) {
    std::vector<float> r;
    for (int h = 0; h < x.heads; ++h) r.insert(r.end(), x.row(h, t), x.row(h, t) + x.dim);
    return r;
}

HostTensor prefix(const HostTensor& x, int n) {
    HostTensor out(x.heads, n, x.dim);
    for (int h = 0; h < x.heads; ++h) std::copy(x.row(h, 0), x.row(h, 0) + size_t(n) * x.dim, out.row(h, 0));
    return out;
}

// Runs prefill of P tokens then decodes the rest; checks the cache after every step; returns the
// full output and the trace.
struct TcaRun {
    HostTensor o;
    AttentionTrace trace;
};

TcaRun run_tca(const SynthData& w, const TcaParams& p, const Profile& prof, int P) {
    const int L = w.q.tokens, Hkv = w.k.heads, b = p.block, win = p.window;
    auto s = make_tca_session(cpu(), {w.q.heads, Hkv, w.q.dim}, p, prof.layer_p(0), L);
    HostTensor pre = s->prefill(prefix(w.q, P), prefix(w.k, P), prefix(w.v, P));
    TcaRun r{HostTensor(w.q.heads, L, w.q.dim), {}};
    for (int h = 0; h < w.q.heads; ++h) std::copy(pre.row(h, 0), pre.row(h, 0) + size_t(P) * w.q.dim, r.o.row(h, 0));
    const std::vector<int> g0 = s->account().global;
    std::vector<int> t_dec;
    for (int h = 0; h < Hkv; ++h) t_dec.push_back(decode_keep(prof.keep_counts, prof.head(0, h).p));
    // Expected cache, tracked independently: the uncompressed tail grows by one per token and
    // loses b tokens (t_dec of them to G) whenever it reaches w + b.
    int tail = std::min(P, win), compressions = 0;
    for (int t = P; t < L; ++t) {
        const auto o = s->decode(rows_at(w.q, t).data(), rows_at(w.k, t).data(), rows_at(w.v, t).data());
        for (int h = 0; h < w.q.heads; ++h) std::copy(o.begin() + h * w.q.dim, o.begin() + (h + 1) * w.q.dim, r.o.row(h, t));
        if (++tail == win + b) tail = win, ++compressions;
        const CacheAccount& a = s->account();
        EXPECT_EQ(a.tokens_seen, t + 1);
        EXPECT_EQ(a.ring, std::min(tail, win));
        EXPECT_EQ(a.pending, tail - std::min(tail, win));
        const auto dev_g = s->device_global_lengths();
        for (int h = 0; h < Hkv; ++h) {
            EXPECT_EQ(a.global[h], g0[h] + compressions * t_dec[h]) << "step " << t << " head " << h;
            EXPECT_EQ(dev_g[h], a.global[h]) << "device G length differs from the accounting";
            EXPECT_EQ(a.cached(h), a.global[h] + a.pending + a.ring);
            EXPECT_LE(a.cached(h), t + 1);
            EXPECT_EQ(a.tca_bytes(h), int64_t(a.cached(h)) * 2 * w.q.dim * 4);
        }
        EXPECT_EQ(a.dense_bytes(), int64_t(t + 1) * 2 * w.q.dim * 4);
    }
    r.trace = s->trace();
    // G is append-only and sorted by position; every G token is older than the uncompressed tail.
    for (int h = 0; h < Hkv; ++h) {
        const auto& g = r.trace.g_positions[h];
        EXPECT_TRUE(std::is_sorted(g.begin(), g.end()));
        EXPECT_TRUE(std::adjacent_find(g.begin(), g.end()) == g.end());
        if (!g.empty()) EXPECT_LT(g.back(), L - tail);
    }
    return r;
}

void expect_within_bound(const SynthData& w, const TcaRun& r, const char* what, double* max_gamma = nullptr) {
    const auto qb = error_bound(w.q, w.k, w.v, r.o, r.trace);
    int violations = 0;
    double mg = 0;
    for (const auto& x : qb) {
        if (x.actual > x.bound + kBoundFpSlack * x.vmax1) ++violations;
        mg = std::max(mg, x.gamma);
    }
    EXPECT_EQ(violations, 0) << what;
    if (max_gamma) *max_gamma = mg;
}

TEST(Decode, PrefillPlusDecodeMatchesDenseWithinBound) {
    TcaParams p;
    p.block = 16, p.window = 64;
    // mix with 2 KV heads = a local and a sink head; p* calibrated on another seed.
    const Profile prof = test::calibrated(SynthKind::mix, 4, 2, 600, 64, p, 41);
    const auto w = test::workload(SynthKind::mix, 4, 2, 600, 64, 42);
    const TcaRun r = run_tca(w, p, prof, 400);  // 200 decode steps: 12 compressions
    double max_gamma = 0;
    expect_within_bound(w, r, "mix prefill 400 + decode 200", &max_gamma);
    EXPECT_GT(max_gamma, 1e-4) << "something must have been dropped for the test to mean anything";
}

TEST(Decode, ShortPromptStartsDenseThenCompresses) {
    TcaParams p;
    p.block = 8, p.window = 32;
    const Profile prof = test::calibrated(SynthKind::sink, 2, 1, 300, 32, p, 43);
    const auto w = test::workload(SynthKind::sink, 2, 1, 200, 32, 44);
    const TcaRun r = run_tca(w, p, prof, 20);  // P <= w: dense prefill, G fills only by eviction
    EXPECT_TRUE(r.trace.prefill_kept.empty());
    EXPECT_FALSE(r.trace.g_positions[0].empty());
    expect_within_bound(w, r, "sink prompt 20 + decode 180");
}

TEST(Decode, DenseSessionEqualsDenseReference) {
    const auto w = test::workload(SynthKind::retrieval, 4, 2, 300, 64, 45);
    auto s = make_dense_session(cpu(), {4, 2, 64}, 300);
    HostTensor o(4, 300, 64);
    const HostTensor pre = s->prefill(prefix(w.q, 250), prefix(w.k, 250), prefix(w.v, 250));
    for (int h = 0; h < 4; ++h) std::copy(pre.row(h, 0), pre.row(h, 0) + 250 * 64, o.row(h, 0));
    for (int t = 250; t < 300; ++t) {
        const auto ot = s->decode(rows_at(w.q, t).data(), rows_at(w.k, t).data(), rows_at(w.v, t).data());
        for (int h = 0; h < 4; ++h) std::copy(ot.begin() + h * 64, ot.begin() + (h + 1) * 64, o.row(h, t));
    }
    const HostTensor ref = dense_reference(w.q, w.k, w.v);
    double worst = 0;
    for (size_t i = 0; i < o.data.size(); ++i) worst = std::max(worst, double(std::fabs(o.data[i] - ref.data[i])));
    EXPECT_LT(worst, 1e-5);
    EXPECT_EQ(s->account().cached(0), 300);
}

}  // namespace
}  // namespace tca::detail::method
