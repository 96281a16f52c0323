#include "core/kv_format.h"

#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/half.h"

namespace tca::detail {

uint16_t float_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);  // NaN: keep it quiet
    // Round to nearest even on the 16 bits dropped; a carry into the exponent is the right result
    // (up to infinity for values past bf16's largest).
    x += 0x7fffu + ((x >> 16) & 1u);
    return uint16_t(x >> 16);
}

uint16_t float_to_16bit(DType t, float f) { return t == DType::bf16 ? float_to_bf16(f) : float_to_half(f); }
float float_from_16bit(DType t, uint16_t h) { return t == DType::bf16 ? bf16_to_float(h) : half_to_float(h); }

float bf16_to_float(uint16_t h) {
    const uint32_t x = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

namespace {

void put_delta(uint8_t* out, float delta) {
    const uint16_t h = float_to_half(delta);
    out[0] = uint8_t(h & 0xffu);
    out[1] = uint8_t(h >> 8);
}

float get_delta(const uint8_t* in) { return half_to_float(uint16_t(in[0] | (uint16_t(in[1]) << 8))); }

}  // namespace

void quantize_block_q8_0(const float* x, uint8_t* out) {
    float amax = 0.0f;
    for (int j = 0; j < kQuantBlock; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float delta = amax / 127.0f;
    const float id = delta != 0.0f ? 1.0f / delta : 0.0f;
    put_delta(out, delta);
    for (int j = 0; j < kQuantBlock; ++j) {
        const float q = std::roundf(x[j] * id);  // |x * id| <= 127 (up to rounding): fits int8
        out[2 + j] = uint8_t(int8_t(q));
    }
}

void dequantize_block_q8_0(const uint8_t* in, float* y) {
    const float delta = get_delta(in);
    for (int j = 0; j < kQuantBlock; ++j) y[j] = delta * float(int8_t(in[2 + j]));
}

void quantize_block_q4_0(const float* x, uint8_t* out) {
    float amax = 0.0f, m = 0.0f;
    for (int j = 0; j < kQuantBlock; ++j)
        if (std::fabs(x[j]) > amax) {  // strictly: the first element of the largest magnitude
            amax = std::fabs(x[j]);
            m = x[j];
        }
    const float delta = m / -8.0f;
    const float id = delta != 0.0f ? 1.0f / delta : 0.0f;
    put_delta(out, delta);
    auto nibble = [&](float v) {
        // v * id is in [-8, 8] (|v| <= |m|), so the truncation is in [0, 16]; 16 only for v = -m.
        const int n = int(std::trunc(v * id + 8.5f));
        return uint8_t(n < 15 ? n : 15);
    };
    for (int j = 0; j < kQuantBlock / 2; ++j)
        out[2 + j] = uint8_t(nibble(x[j]) | (nibble(x[j + kQuantBlock / 2]) << 4));
}

void dequantize_block_q4_0(const uint8_t* in, float* y) {
    const float delta = get_delta(in);
    for (int j = 0; j < kQuantBlock / 2; ++j) {
        y[j] = float(int(in[2 + j] & 0x0fu) - 8) * delta;
        y[j + kQuantBlock / 2] = float(int(in[2 + j] >> 4) - 8) * delta;
    }
}

}  // namespace tca::detail
