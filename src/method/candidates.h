// The candidate sparsity configurations of calibration (spec Phase 1, step 1): distributions over
// the per-block keep counts K = {1, 2, 4, .., b}.
#pragma once

#include <vector>

#include "method/params.h"

namespace tca::detail::method {

// K = {1, 2, 4, .., b}.
std::vector<int> keep_counts(int block);

struct Candidate {
    double mu = 0;          // centre in log2(keep count); NaN-free: the dense candidate stores log2(b)
    bool dense = false;     // the all-b candidate
    std::vector<double> p;  // p[i] = probability of keep count K[i]; sums to 1
};

// The spec's log-Gaussian over K: p_k proportional to exp(-(log2 k - mu)^2 / (2 sigma^2)).
Candidate log_gaussian(const std::vector<int>& K, double mu, double sigma);

// All mass on the keep count b (the dense candidate).
Candidate dense_candidate(const std::vector<int>& K);

// The log-Gaussian of width sigma whose expected keep ratio sum_k k p_k / b equals `ratio` (mu found by
// bisection); ratio >= 1 gives the dense distribution, a ratio below 1/b (every block keeps at
// least one token) the sparsest reachable one.
Candidate log_gaussian_with_ratio(const std::vector<int>& K, double sigma, double ratio);

// The grid: M log-Gaussian candidates (mu_i = i * (log2 b + mu_extra) / (M - 1), sigma), then the
// dense candidate when params.dense_candidate. Ordered from sparsest to densest.
std::vector<Candidate> candidate_grid(const TcaParams& params);

// Expected tokens kept per full block, sum_k k p_k, and that as a fraction of b.
double mean_keep(const std::vector<int>& K, const std::vector<double>& p);

// Decode budget of the spec: t_dec = max(1, floor(sum_k k p*_k)) tokens kept of each compressed
// block. A tiny epsilon keeps floor() from dropping a whole token to rounding (e.g. 63.9999999).
int decode_keep(const std::vector<int>& K, const std::vector<double>& p);

// Checks that p is a distribution over K (right length, entries >= 0, sum 1 within 1e-6).
void validate_distribution(const std::vector<int>& K, const std::vector<double>& p, const char* what);

}  // namespace tca::detail::method
