// Every OpenCL kernel of cl/ on simulator-sized shapes, against the CPU reference: the cases that
// scripts/oclgrind-check runs under Oclgrind (out-of-bounds, data-race and API checks; any Oclgrind
// message fails the check). The shapes of test_opencl_backend.cpp and test_dense_attention.cpp
// take 20+ minutes there; these take seconds each and still reach every kernel and every code
// path the shapes of those suites pick: f32 and f16 K/V, padded rows, GQA (2 q / 1 KV head), a
// partial last block, a partial last work-group, both decode segments, probs, split-K.
// In the normal suite they run on every OpenCL device (PoCL) like any op test.
//
// Kernels (cl/): prefill.cl attention (dense and sparse); decode.cl decode, decode_merge,
// decode_probs; score.cl score_stats, score_merge, score_norm; select.cl metric, rank,
// select_offsets, select_tokens; gather.cl gather_rows, gather_len; colsum.cl colsum_stats,
// colsum_cols; copy.cl copy_u4. Not here: the gemm op, which on OpenCL is CLBlast's, not ours.
#include <cmath>
#include <random>

#include "harness.h"
#include "op_runs.h"

namespace tca::detail::test {
namespace {

using namespace op_runs;

std::vector<std::string> opencl_devices() {
    std::vector<std::string> out;
    for (const auto& n : devices_under_test())
        if (n.rfind("opencl:", 0) == 0) out.push_back(n);
    return out;
}

class OclgrindOps : public ::testing::TestWithParam<std::string> {
protected:
    Device& dev() { return device(GetParam()); }
};

constexpr int kHq = 2, kHkv = 1, kDim = 64, kBlock = 16, kWindow = 32;

TEST_P(OclgrindOps, DensePrefill) {
    // L = 40: one full and one partial query tile; f16 with padded rows.
    for (const auto& [s, pad] : {std::pair{Shape{kHq, kHkv, 40, kDim, DType::f32}, 0},
                                 std::pair{Shape{kHq, kHkv, 40, kDim, DType::f16}, 4},
                                 std::pair{Shape{kHq, kHkv, 40, kDim, DType::bf16}, 0}}) {
        const auto ref = run_dense_prefill(reference(), s, pad);
        const auto got = run_dense_prefill(dev(), s, pad);
        expect_finite(got, "dense prefill");
        EXPECT_LE(nmse(ref, got), tolerance(s.dtype)) << dtype_name(s.dtype);
    }
}

TEST_P(OclgrindOps, SparsePrefill) {
    // The last queries of a 300-token context over kept lists plus the window; the second case
    // has a window wider than its context (every key attended).
    const SparseCase cases[] = {
        {{kHq, kHkv, 300, kDim, DType::f32}, 24, kWindow, 0.2},
        {{kHq, kHkv, 60, kDim, DType::f16}, 20, 100, 0.3},
    };
    for (const auto& c : cases) {
        const auto ref = run_sparse(reference(), c, 0);
        const auto got = run_sparse(dev(), c, 4);
        expect_finite(got, "sparse prefill");
        EXPECT_LE(nmse(ref, got), tolerance(c.s.dtype)) << "L=" << c.s.len << " window=" << c.window;
    }
}

TEST_P(OclgrindOps, DecodeTwoSegmentsProbsAndSplits) {
    const DecodeCase cases[] = {
        // dense decode (segment 1 only), the device's split plan
        {{kHq, kHkv, 300, kDim, DType::f16}, 300, 0, {}, 0, 0},
        // bf16 K/V, both segments
        {{kHq, kHkv, 80, kDim, DType::bf16}, 60, 50, {33}, 0, 0},
        // both segments with probs over part of segment 1
        {{kHq, kHkv, 200, kDim, DType::f32}, 150, 100, {77}, 150, 0},
        // segment 2 only, forced split-K into 3, a bound on the live rows of segment 2
        {{kHq, kHkv, 40, kDim, DType::f16}, 0, 300, {257}, 0, 3, 260},
        // both segments, probs and 2 splits
        {{kHq, kHkv, 64, kDim, DType::f32}, 64, 64, {1}, 40, 2},
    };
    for (const auto& c : cases) {
        const auto [ro, rp] = run_decode(reference(), c);
        const auto [go, gp] = run_decode(dev(), c);
        expect_finite(go, "decode o");
        EXPECT_LE(nmse(ro, go), tolerance(c.s.dtype)) << "n1=" << c.n1 << " cap2=" << c.cap2;
        if (c.probs_n) {
            expect_finite(gp, "probs");
            EXPECT_LE(nmse(rp, gp), 1e-9) << "probs n1=" << c.n1;
        }
    }
}

TEST_P(OclgrindOps, Score) {
    for (const auto& [s, row, n] : {std::tuple{Shape{kHq, kHkv, 300, kDim, DType::f32}, 2, 300},
                                    std::tuple{Shape{kHq, kHkv, 100, kDim, DType::f16}, 0, 77},
                                    std::tuple{Shape{kHq, kHkv, 60, kDim, DType::bf16}, 0, 60}}) {
        EXPECT_LE(nmse(run_score(reference(), s, row, n), run_score(dev(), s, row, n)), 1e-9) << "n_keys=" << n;
    }
}

TEST_P(OclgrindOps, MetricRankSelect) {
    // 300 positions in blocks of 16 (a partial last block), and two heads of 77.
    for (const SelectCase c : {SelectCase{kHkv, 300, kBlock, 303}, SelectCase{2, 77, kBlock, 80}}) {
        const auto s = fake_scores(c.heads, c.stride, 31);
        const auto rh = run_metric(reference(), c, s), gh = run_metric(dev(), c, s);
        ASSERT_EQ(rh.size(), gh.size());
        for (size_t i = 0; i < rh.size(); ++i) EXPECT_NEAR(rh[i], gh[i], 1e-6 + 1e-5 * std::abs(rh[i])) << i;
        auto h = rh;
        for (size_t i = 0; i < h.size(); i += 5) h[i] = 0.25f;  // ties
        const auto order = run_rank(reference(), c, h);
        EXPECT_EQ(order, run_rank(dev(), c, h));
        const auto budget = select_budget(c);
        EXPECT_EQ(run_select(reference(), c, s, order, budget), run_select(dev(), c, s, order, budget))
            << "n_global=" << c.n_global;
    }
}

TEST_P(OclgrindOps, Gather) {
    for (DType dt : {DType::f32, DType::f16, DType::bf16})
        EXPECT_EQ(run_gather(reference(), dt), run_gather(dev(), dt)) << dtype_name(dt);
}

TEST_P(OclgrindOps, Colsum) {
    for (const Shape& s : {Shape{kHq, kHkv, 70, kDim, DType::f32}, Shape{kHq, kHkv, 40, kDim, DType::f16}})
        EXPECT_LE(nmse(run_colsum(reference(), s), run_colsum(dev(), s)), 1e-9) << "L=" << s.len;
}

TEST_P(OclgrindOps, Copy) {
    std::mt19937 rng(7);
    for (size_t words : {size_t(4), size_t(1000)}) {
        std::vector<int32_t> src(words);
        for (auto& x : src) x = int32_t(rng());
        auto s = make_ints(dev(), src);
        auto d = make_empty(dev(), words);
        dev().stream_copy(CopyArgs{s.view(), d.view(), words * 4});
        EXPECT_EQ(read_ints(dev(), d, words), src) << words << " words";
        check_guards(dev(), d, "copy dst");
        check_guards(dev(), s, "copy src");
    }
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OclgrindOps);
INSTANTIATE_TEST_SUITE_P(Devices, OclgrindOps, ::testing::ValuesIn(opencl_devices()),
                         [](const auto& info) { return safe_name(info.param); });

}  // namespace
}  // namespace tca::detail::test
