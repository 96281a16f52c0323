// tca_dtype <-> DType, with the one message every entry point gives for an unknown value.
#pragma once

#include <string>

#include "core/dtype.h"
#include "core/error.h"
#include "tca/tca.h"

namespace tca::detail::api {

inline DType dtype_from_api(int dtype, const char* what = "dtype") {
    require(dtype == TCA_F32 || dtype == TCA_F16 || dtype == TCA_BF16, TCA_ERROR_INVALID_ARGUMENT,
            std::string("unknown ") + what + " " + std::to_string(dtype) + " (TCA_F32 = 0, TCA_F16 = 1, TCA_BF16 = 2)");
    return dtype == TCA_F32 ? DType::f32 : dtype == TCA_F16 ? DType::f16 : DType::bf16;
}

inline tca_dtype dtype_to_api(DType t) { return t == DType::f32 ? TCA_F32 : t == DType::f16 ? TCA_F16 : TCA_BF16; }

}  // namespace tca::detail::api
