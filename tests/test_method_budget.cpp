// Candidate grid, budget vector Psi and decode budget against the spec's formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "core/error.h"
#include "method/budget.h"
#include "method/candidates.h"

namespace tca::detail::method {
namespace {

TEST(Candidates, GridFollowsTheSpec) {
    TcaParams p;  // b = 128: K = {1, .., 128}, 14 log-Gaussians + dense
    const auto K = keep_counts(p.block);
    ASSERT_EQ(K, (std::vector<int>{1, 2, 4, 8, 16, 32, 64, 128}));
    const auto grid = candidate_grid(p);
    ASSERT_EQ(grid.size(), 15u);
    double prev_mean = 0;
    for (int i = 0; i < 14; ++i) {
        EXPECT_NEAR(grid[i].mu, i * (7.0 + 2.0) / 13.0, 1e-12);
        double s = 0;
        for (size_t j = 0; j < K.size(); ++j) {
            // p_k proportional to exp(-(log2 k - mu)^2 / 2): ratios of neighbours are fixed by mu.
            const double x = std::log2(K[j]) - grid[i].mu;
            const double expect = std::exp(-x * x / 2) / std::exp(-grid[i].mu * grid[i].mu / 2);
            EXPECT_NEAR(grid[i].p[j] / grid[i].p[0] / expect, 1.0, 1e-12);
            s += grid[i].p[j];
        }
        EXPECT_NEAR(s, 1.0, 1e-12);
        const double m = mean_keep(K, grid[i].p) / p.block;
        EXPECT_GT(m, prev_mean) << "candidates are ordered sparsest first";
        prev_mean = m;
    }
    // Mean keep ratios span about 1% .. 96% (the spec's note on the grid).
    EXPECT_NEAR(mean_keep(K, grid[0].p) / 128, 0.0125, 0.005);
    EXPECT_NEAR(mean_keep(K, grid[13].p) / 128, 0.96, 0.01);
    EXPECT_TRUE(grid[14].dense);
    EXPECT_EQ(grid[14].p.back(), 1.0);
}

TEST(Candidates, RejectsBadParameters) {
    for (auto bad : {TcaParams{100}, TcaParams{0}, TcaParams{128, 0}, TcaParams{128, 64, 0.0}, TcaParams{128, 64, 1.5},
                     TcaParams{128, 64, 0.9, -0.1}}) {
        try {
            candidate_grid(bad);
            ADD_FAILURE() << "accepted block " << bad.block << " window " << bad.window << " tau " << bad.tau;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), TCA_ERROR_INVALID_ARGUMENT);
        }
    }
    EXPECT_NO_THROW(candidate_grid(TcaParams{128, 64, 1.0}));  // tau = 1 is allowed
}

TEST(Budget, MatchesCumulativeCountsAndIsNonIncreasing) {
    const auto K = keep_counts(128);
    const auto grid = candidate_grid(TcaParams{});
    for (int n : {1, 2, 3, 7, 31, 100, 1000}) {
        for (const auto& c : grid) {
            const auto psi = budget_vector(K, c.p, n);
            ASSERT_EQ(int(psi.size()), n);
            for (int r = 0; r < n; ++r) {
                EXPECT_GE(psi[r], 1);
                if (r) EXPECT_LE(psi[r], psi[r - 1]) << "budgets must not increase with rank";
            }
            // The number of blocks with budget >= k is C_k = floor(n * sum_{k' >= k} p_k' + 0.5).
            double tail = 0;
            for (int i = int(K.size()) - 1; i >= 0; --i) {
                tail += c.p[i];
                const int expect = i == 0 ? n : int(std::floor(n * tail + 0.5));
                const int got = int(std::count_if(psi.begin(), psi.end(), [&](int b) { return b >= K[i]; }));
                EXPECT_EQ(got, expect) << "n " << n << " k " << K[i];
            }
        }
    }
    // A hand case: p = (0.5 on 1, 0.5 on 4) over K = {1, 2, 4}, n = 3: C_4 = floor(1.5 + .5) = 2.
    EXPECT_EQ(budget_vector({1, 2, 4}, {0.5, 0.0, 0.5}, 3), (std::vector<int>{4, 4, 1}));
    EXPECT_EQ(budget_vector({1, 2, 4}, {0.0, 0.0, 1.0}, 2), (std::vector<int>{4, 4}));
}

TEST(Budget, DecodeKeepIsFloorOfTheMean) {
    EXPECT_EQ(decode_keep({1, 2, 4}, {0.5, 0.0, 0.5}), 2);  // floor(2.5)
    EXPECT_EQ(decode_keep({1, 2, 4}, {1.0, 0.0, 0.0}), 1);
    EXPECT_EQ(decode_keep({1, 2, 4}, {0.0, 0.0, 1.0}), 4);
    EXPECT_EQ(decode_keep({1, 2, 4}, {0.0, 1.0 / 3, 2.0 / 3}), 3);  // 10/3 -> 3
}

}  // namespace
}  // namespace tca::detail::method
