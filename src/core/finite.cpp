#include <cmath>
#include <cstring>

#include "api/handles.h"

namespace tca {

void check_finite_host(DType dtype, const void* data, size_t bytes, const char* what) {
    const size_t n = bytes / dtype_size(dtype);
    for (size_t i = 0; i < n; ++i) {
        bool finite;
        if (dtype == DType::f32) {
            float f;
            std::memcpy(&f, static_cast<const char*>(data) + i * 4, 4);
            finite = std::isfinite(f);
        } else {
            uint16_t h;
            std::memcpy(&h, static_cast<const char*>(data) + i * 2, 2);
            finite = (h & 0x7c00u) != 0x7c00u;  // exponent all ones: Inf or NaN
        }
        require(finite, TCA_ERROR_NONFINITE_INPUT,
                std::string(what) + ": non-finite value (NaN or Inf) at element " + std::to_string(i));
    }
}

}  // namespace tca
