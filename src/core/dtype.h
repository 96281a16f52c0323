// Element types of tensors. On the ground floor so that core and io (host-side checks, .npy
// files) name them without including the device layer above them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tca::detail {

// bf16 (the spec's "K/V storage formats"): K/V only, like f16; queries and outputs stay f32.
enum class DType { f32, f16, bf16 };
inline size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 2; }
inline const char* dtype_name(DType t) { return t == DType::f32 ? "f32" : t == DType::f16 ? "f16" : "bf16"; }

// The 16-bit formats, element by element (f16: core/half.h's conversions; bf16: core/kv_format.h's).
uint16_t float_to_16bit(DType t, float f);
float float_from_16bit(DType t, uint16_t h);

}  // namespace tca::detail
