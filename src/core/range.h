// The input range of attention (tca.h, "input range"): finite inputs whose scores could leave the
// range float32 kernels handle are rejected before any work, with TCA_ERROR_OUT_OF_RANGE, rather
// than turned into NaN. The check needs only one number per tensor: a bound on the L2 norm of its
// rows (one head and token: dim elements), by Cauchy-Schwarz |scale * q.k| <= |scale| ||q|| ||k||.
#pragma once

#include <algorithm>
#include <cstddef>

#include "tca/tca.h"

namespace tca::detail {

// A row-norm bound nobody knows (a wrapped tensor: the library cannot see its memory). Checks
// that need an unknown bound are skipped; tca.h says what the caller then guarantees.
constexpr double kNormUnknown = -1.0;
inline bool norm_known(double n) { return n >= 0; }
// The larger of two bounds; unknown if either is.
inline double norm_max(double a, double b) { return norm_known(a) && norm_known(b) ? std::max(a, b) : kNormUnknown; }

// Largest L2 norm of the rows of host data [rows, dim], accumulated in double (no overflow for any
// finite float).
double max_row_norm(const float* x, size_t rows, int dim);

// The bound on the rows of an attention output whose value rows are bounded by v: a softmax average
// is no longer than its longest row; the margin covers float rounding of the weighted sum.
inline double output_norm(double v) { return norm_known(v) ? v * (1 + 1e-3) : kNormUnknown; }

// Throws TCA_ERROR_OUT_OF_RANGE (message names `what`, the failing product and the limit) unless
// the bounds q, k (queries, every key attended) and v (values) satisfy tca.h's limits for `scale`
// (0: 1/sqrt(dim), as the ops take it); TCA_ERROR_INVALID_ARGUMENT for a NaN or infinite scale.
// Products that involve an unknown bound are not checked.
void check_attention_range(const char* what, float scale, int dim, double q, double k, double v);

}  // namespace tca::detail
