#include "method/candidates.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace tca::detail::method {

bool is_power_of_two(int x) { return x > 0 && (x & (x - 1)) == 0; }

void validate_params(const TcaParams& p) {
    require(is_power_of_two(p.block), TCA_ERROR_INVALID_ARGUMENT,
            "block size " + std::to_string(p.block) + " is not a power of two");
    require(p.block <= 4096, TCA_ERROR_INVALID_ARGUMENT, "block size " + std::to_string(p.block) + " is above 4096");
    require(p.window >= 1, TCA_ERROR_INVALID_ARGUMENT, "window must be >= 1, got " + std::to_string(p.window));
    require(p.tau > 0 && p.tau <= 1, TCA_ERROR_INVALID_ARGUMENT, "tau must be in (0, 1], got " + std::to_string(p.tau));
    require(p.alpha >= 0 && p.alpha <= 1, TCA_ERROR_INVALID_ARGUMENT,
            "alpha must be in [0, 1], got " + std::to_string(p.alpha));
    require(p.n_lognormal >= 2, TCA_ERROR_INVALID_ARGUMENT, "need at least 2 log-Gaussian candidates");
    require(p.sigma > 0, TCA_ERROR_INVALID_ARGUMENT, "sigma must be > 0");
}

std::vector<int> keep_counts(int block) {
    std::vector<int> K;
    for (int k = 1; k <= block; k *= 2) K.push_back(k);
    return K;
}

Candidate log_gaussian(const std::vector<int>& K, double mu, double sigma) {
    Candidate c;
    c.mu = mu;
    double z = 0;
    for (int k : K) {
        const double x = std::log2(double(k)) - mu;
        c.p.push_back(std::exp(-x * x / (2 * sigma * sigma)));
        z += c.p.back();
    }
    for (double& v : c.p) v /= z;
    return c;
}

// All mass on k = b: every block keeps everything.
Candidate dense_candidate(const std::vector<int>& K) {
    Candidate c;
    c.mu = std::log2(double(K.back()));
    c.dense = true;
    c.p.assign(K.size(), 0.0);
    c.p.back() = 1.0;
    return c;
}

Candidate log_gaussian_with_ratio(const std::vector<int>& K, double sigma, double ratio) {
    const double b = K.back();
    if (ratio >= 1) return dense_candidate(K);  // only the dense distribution keeps everything
    // The expected keep count grows monotonically with mu; far outside [0, log2 b] it is pinned at
    // 1 (or b), so bisecting there reaches any reachable ratio to double precision.
    double lo = -4 * sigma - 8, hi = std::log2(b) + 4 * sigma + 8;
    for (int it = 0; it < 200; ++it) {
        const double mid = 0.5 * (lo + hi);
        (mean_keep(K, log_gaussian(K, mid, sigma).p) / b < ratio ? lo : hi) = mid;
    }
    return log_gaussian(K, 0.5 * (lo + hi), sigma);
}

std::vector<Candidate> candidate_grid(const TcaParams& params) {
    validate_params(params);
    const std::vector<int> K = keep_counts(params.block);
    const double top = std::log2(double(params.block)) + params.mu_extra;
    std::vector<Candidate> grid;
    for (int i = 0; i < params.n_lognormal; ++i)
        grid.push_back(log_gaussian(K, i * top / (params.n_lognormal - 1), params.sigma));
    if (params.dense_candidate) grid.push_back(dense_candidate(K));
    return grid;
}

double mean_keep(const std::vector<int>& K, const std::vector<double>& p) {
    double m = 0;
    for (size_t i = 0; i < K.size(); ++i) m += K[i] * p[i];
    return m;
}

int decode_keep(const std::vector<int>& K, const std::vector<double>& p) {
    return std::max(1, static_cast<int>(std::floor(mean_keep(K, p) + 1e-9)));
}

void validate_distribution(const std::vector<int>& K, const std::vector<double>& p, const char* what) {
    require(p.size() == K.size(), TCA_ERROR_INVALID_ARGUMENT,
            std::string(what) + ": has " + std::to_string(p.size()) + " probabilities for " + std::to_string(K.size()) +
                " keep counts");
    double s = 0;
    for (double v : p) {
        require(std::isfinite(v) && v >= 0, TCA_ERROR_INVALID_ARGUMENT, std::string(what) + ": negative or non-finite probability");
        s += v;
    }
    require(std::fabs(s - 1) < 1e-6, TCA_ERROR_INVALID_ARGUMENT,
            std::string(what) + ": probabilities sum to " + std::to_string(s) + ", not 1");
}

}  // namespace tca::detail::method
