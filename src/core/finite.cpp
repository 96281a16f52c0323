#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/finite.h"

#include "core/error.h"
#include "core/half.h"
#include "core/kv_format.h"

namespace tca::detail {

namespace {

// Element i of host data, widened; NaN/Inf rejected with the element's index.
double finite_at(DType dtype, const void* data, size_t i, const char* what) {
    double x;
    if (dtype == DType::f32) {
        float f;
        std::memcpy(&f, static_cast<const char*>(data) + i * 4, 4);
        x = f;
    } else {
        uint16_t h;
        std::memcpy(&h, static_cast<const char*>(data) + i * 2, 2);
        // Exponent all ones: Inf or NaN (f16: 5 exponent bits, bf16: f32's 8).
        if (dtype == DType::bf16) x = (h & 0x7f80u) == 0x7f80u ? NAN : bf16_to_float(h);
        else x = (h & 0x7c00u) == 0x7c00u ? NAN : half_to_float(h);
    }
    require(std::isfinite(x), TCA_ERROR_NONFINITE_INPUT,
            std::string(what) + ": non-finite value (NaN or Inf) at element " + std::to_string(i));
    return x;
}

}  // namespace

void check_finite_host(DType dtype, const void* data, size_t bytes, const char* what) {
    const size_t n = bytes / dtype_size(dtype);
    for (size_t i = 0; i < n; ++i) finite_at(dtype, data, i, what);
}

double check_finite_rows(DType dtype, const void* data, size_t bytes, int dim, const char* what) {
    const size_t n = bytes / dtype_size(dtype), d = size_t(dim > 0 ? dim : 1);
    double best = 0;  // squared norms, in double: no finite float overflows them
    for (size_t r0 = 0; r0 < n; r0 += d) {
        double row = 0;
        for (size_t i = r0; i < std::min(n, r0 + d); ++i) {
            const double x = finite_at(dtype, data, i, what);
            row += x * x;
        }
        best = std::max(best, row);
    }
    return std::sqrt(best);
}

}  // namespace tca::detail
