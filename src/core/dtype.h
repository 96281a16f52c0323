// Element types of tensors. On the ground floor so that core and io (host-side checks, .npy
// files) name them without including the device layer above them.
#pragma once

#include <cstddef>

namespace tca::detail {

enum class DType { f32, f16 };
inline size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 2; }
inline const char* dtype_name(DType t) { return t == DType::f32 ? "f32" : "f16"; }

}  // namespace tca::detail
