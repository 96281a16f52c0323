// Host-side error measures of the benchmark, computed from public outputs only: relative L1 of TCA
// against dense, the spec's error bound (from the kept positions tca_cache_kept_positions reports),
// the attended-pair fraction, and NMSE.
#pragma once

#include <utility>
#include <vector>

namespace tca::detail::bench {

// Shapes of one case: q/o [hq, L, d], k/v [hkv, L, d], host float (K/V already rounded to what the
// device stores).
struct CaseShape {
    int hq = 0, hkv = 0, L = 0, d = 0, window = 0;
};

double nmse(const std::vector<float>& ref, const std::vector<float>& x);

// Per-row relative L1 of x against ref over rows with position >= row0, all heads: (mean, max).
std::pair<double, double> rel_l1(const std::vector<float>& ref, const std::vector<float>& x, const CaseShape& s, int row0);

// (query, key) pairs a TCA prefill attends / pairs dense attends, averaged over KV heads.
// kept[h]: the kept global positions of KV head h, ascending.
double attended_fraction(const std::vector<std::vector<int>>& kept, const CaseShape& s);

// Full-softmax probabilities of a few sampled query rows (every query head), computed once per
// input in double precision, so each TCA profile's dropped mass gamma is a sum.
struct BoundRows {
    std::vector<int> pos;                    // sampled positions (>= window)
    std::vector<std::vector<double>> probs;  // [r * hq + h] over keys 0..pos[r]
    std::vector<double> vmax1;               // [r * hq + h] max_{j <= pos} ||v_j||_1
};
BoundRows bound_rows(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                     const CaseShape& s, int rows);

struct BoundCheck {
    double worst_slack = 0;  // min over rows of 2*gamma - ||o - o~||_1 / vmax1 (negative: violated)
    double max_use = 0;      // max over rows with gamma > 0 of ||o - o~||_1 / (2 gamma vmax1)
    int rows = 0;
};
// dense_o / tca_o: the device outputs [hq, L, d].
BoundCheck check_bound(const BoundRows& b, const std::vector<std::vector<int>>& kept, const std::vector<float>& dense_o,
                       const std::vector<float>& tca_o, const CaseShape& s);

}  // namespace tca::detail::bench
