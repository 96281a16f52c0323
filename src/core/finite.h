// Host-side NaN/Inf checks of input data (finite.cpp). The C API's uploads and the .npy reader
// both use them, so they live here, below both.
#pragma once

#include <cstddef>

#include "core/dtype.h"

namespace tca::detail {

// Rejects NaN/Inf in host data of the given dtype (TCA_ERROR_NONFINITE_INPUT, with the first index).
void check_finite_host(DType dtype, const void* data, size_t bytes, const char* what);
// The same check in the same pass; returns the largest L2 norm of the data's rows of `dim` elements.
double check_finite_rows(DType dtype, const void* data, size_t bytes, int dim, const char* what);

}  // namespace tca::detail
