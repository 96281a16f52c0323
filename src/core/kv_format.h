// The K/V storage formats of the spec's section "K/V storage formats", on the host: bf16, and
// ggml's q8_0 and q4_0 blocks byte for byte, with the spec's exact quantisation rules. The CPU
// reference dequantises with these functions, the device quantisers are tested bit for bit
// against them, and a runtime's existing cache buffer in these layouts reads the same everywhere.
//
// Why hand-written: Debian 12 packages no library with ggml's block formats (ggml itself is not
// packaged there), and the rules are a few lines each; tests/test_kv_format.cpp pins them with
// fixtures computed from the spec's text.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tca::detail {

// bf16: the upper 16 bits of the f32, rounded to nearest even (NaN stays a quiet NaN).
uint16_t float_to_bf16(float f);
float bf16_to_float(uint16_t h);

// Blocks of 32 consecutive elements along the head dimension.
constexpr int kQuantBlock = 32;

// q8_0 (34 bytes): f16 delta (little-endian), then 32 int8 q; x = delta * q.
//   delta = max|x| / 127 (f32); q = roundf(x * (1 / delta)) (halves away from zero; 0 where
//   delta == 0); delta is stored as f16 and dequantisation uses the stored value.
constexpr size_t kQ8_0Bytes = 2 + kQuantBlock;
// q4_0 (18 bytes): f16 delta, then 16 bytes; byte j holds element j in its low nibble and element
// j + 16 in its high nibble; x = (nibble - 8) * delta.
//   m = the element of largest magnitude, signed (the first one on a tie of magnitudes, as ggml);
//   delta = m / -8 (f32); nibble = min(15, trunc(x * (1 / delta) + 8.5)) (8 where delta == 0).
constexpr size_t kQ4_0Bytes = 2 + kQuantBlock / 2;

// One block of 32 finite values (callers check finiteness first: a NaN has no quantisation).
void quantize_block_q8_0(const float* x, uint8_t* out);
void dequantize_block_q8_0(const uint8_t* in, float* y);
void quantize_block_q4_0(const float* x, uint8_t* out);
void dequantize_block_q4_0(const uint8_t* in, float* y);

}  // namespace tca::detail
