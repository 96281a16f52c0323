// Why the limits are 1e20 (TCA_SCORE_LIMIT, TCA_VALUE_LIMIT in tca.h), and the check itself.
//
// What the float32 kernels form from q, k, v (cl/, shaders/):
//   * q_i * scale (every kernel scales q as it loads it, never the dot): |.| <= |scale| ||q||;
//   * partial sums of (scale q).k: by Cauchy-Schwarz on any subset of the terms,
//     |.| <= |scale| ||q|| ||k||;
//   * scores x and, in the max-subtracted online softmax, differences x - m with |x - m| <= 2 * 1e20,
//     and exp(x - m) in [0, 1] (later passes that recompute x clamp x - m at 0);
//   * excluded keys carry the finite mask value -1e30 (device.h kMaskValue): a real score is never
//     below -1e20, ten decades above it, so a mask is never mistaken for a score or vice versa
//     (and exp(-1e30 - x) is 0 for every real x);
//   * accumulators sum p_j v_j with weights p_j <= 1 over at most 2^31 keys: |.| <= 2^31 * 1e20
//     ~ 2e29, nine decades below FLT_MAX (3.4e38); outputs are weighted averages, <= ||v||.
// Each bound holds with room to spare for rounding, so within the limits nothing overflows and no
// inf - inf can arise. Beyond them it can: scores near 1e30 meet the mask, and q = 3e38 with
// k = 1e30 overflows q.k itself. Ordinary activations sit many decades inside; the limits turn
// away only inputs whose attention float32 cannot represent.
#include "core/range.h"

#include <cmath>
#include <sstream>
#include <string>

#include "core/error.h"

namespace tca::detail {

double max_row_norm(const float* x, size_t rows, int dim) {
    double best = 0;
    for (size_t r = 0; r < rows; ++r) {
        double ss = 0;
        for (int i = 0; i < dim; ++i) ss += double(x[r * size_t(dim) + i]) * x[r * size_t(dim) + i];
        best = std::max(best, ss);
    }
    return std::sqrt(best);
}

namespace {

std::string sci(double x) {
    std::ostringstream s;
    s.precision(3);
    s << x;
    return s.str();
}

void check_product(const char* what, const char* name, double value, double limit, const char* limit_name) {
    require(value <= limit, TCA_ERROR_OUT_OF_RANGE,
            std::string(what) + ": inputs out of range: " + name + " = " + sci(value) + " exceeds " + limit_name +
                " = " + sci(limit) + " (scores or sums could overflow float32); scale the inputs down");
}

}  // namespace

void check_attention_range(const char* what, float scale, int dim, double q, double k, double v) {
    require(std::isfinite(scale), TCA_ERROR_INVALID_ARGUMENT, std::string(what) + ": scale is NaN or infinite");
    const double s = std::fabs(scale != 0.f ? double(scale) : 1.0 / std::sqrt(double(dim)));
    if (norm_known(q) && norm_known(k))
        check_product(what, "|scale| * max||q|| * max||k||", s * q * k, TCA_SCORE_LIMIT, "TCA_SCORE_LIMIT");
    if (norm_known(q)) check_product(what, "|scale| * max||q||", s * q, TCA_SCORE_LIMIT, "TCA_SCORE_LIMIT");
    if (norm_known(v)) check_product(what, "max||v||", v, TCA_VALUE_LIMIT, "TCA_VALUE_LIMIT");
}

}  // namespace tca::detail
