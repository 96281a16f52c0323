// The host K/V formats (src/core/kv_format.h) against the spec's section "K/V storage formats":
// byte-exact blocks for hand-checked inputs (halves away from zero, the signed maximum of q4_0,
// zero blocks, the -m case that caps at nibble 15), bf16 rounding to nearest even, and the
// dequantisation error each format promises (|x - x^| <= delta / 2 for q8_0, <= |delta| for q4_0,
// up to the f16 rounding of delta).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "core/kv_format.h"

namespace tca::detail {
namespace {

float from_bits(uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}

TEST(KvFormat, Bf16RoundsToNearestEven) {
    EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(float_to_bf16(from_bits(0x3f808000u)), 0x3f80) << "a tie to the even neighbour (down)";
    EXPECT_EQ(float_to_bf16(from_bits(0x3f818000u)), 0x3f82) << "a tie to the even neighbour (up)";
    EXPECT_EQ(float_to_bf16(from_bits(0x3f808001u)), 0x3f81) << "past the tie";
    EXPECT_EQ(float_to_bf16(from_bits(0x3f807fffu)), 0x3f80) << "below the tie";
    EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
    EXPECT_EQ(float_to_bf16(from_bits(0x7f7fffffu)), 0x7f80) << "FLT_MAX rounds to infinity";
    EXPECT_EQ(float_to_bf16(INFINITY), 0x7f80);
    EXPECT_EQ(float_to_bf16(-INFINITY), 0xff80);
    EXPECT_EQ(float_to_bf16(from_bits(0x7f800001u)), 0x7fc0) << "a signalling NaN stays a NaN, never infinity";
    EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
    EXPECT_EQ(bf16_to_float(0x3f82), from_bits(0x3f820000u));
    EXPECT_EQ(float_to_bf16(from_bits(0x00010000u)), 0x0001) << "subnormals keep their upper bits";
}

TEST(KvFormat, Q8_0HalvesRoundAwayFromZero) {
    std::vector<float> x(32, 0.0f);
    // max|x| = 127: delta = 1, 1 / delta = 1, so q = roundf(x).
    const float in[] = {127.f, 63.5f, -63.5f, 0.5f, -0.5f, 1.49f, -1.51f, 2.5f, -126.5f};
    std::copy(std::begin(in), std::end(in), x.begin());
    uint8_t b[kQ8_0Bytes];
    quantize_block_q8_0(x.data(), b);
    EXPECT_EQ(b[0], 0x00);
    EXPECT_EQ(b[1], 0x3c) << "delta 1.0 as little-endian f16 0x3c00";
    const int want[] = {127, 64, -64, 1, -1, 1, -2, 3, -127};
    for (int j = 0; j < 9; ++j) EXPECT_EQ(int(int8_t(b[2 + j])), want[j]) << "element " << j << " = " << in[j];
    for (int j = 9; j < 32; ++j) EXPECT_EQ(b[2 + j], 0) << j;
    float y[32];
    dequantize_block_q8_0(b, y);
    for (int j = 0; j < 9; ++j) EXPECT_EQ(y[j], float(want[j]));
}

TEST(KvFormat, Q8_0BlockIsByteExact) {
    // x[j] = (j - 16) * 0.1f: max|x| = 1.6f at j = 0; delta = 1.6f / 127 stored as f16 0x2273.
    float x[32];
    for (int j = 0; j < 32; ++j) x[j] = float(j - 16) * 0.1f;
    uint8_t b[kQ8_0Bytes];
    quantize_block_q8_0(x, b);
    EXPECT_EQ(b[0] | (b[1] << 8), 0x2273);
    const int want[32] = {-127, -119, -111, -103, -95, -87, -79, -71, -64, -56, -48, -40, -32, -24, -16, -8,
                          0,    8,    16,   24,   32,  40,  48,  56,  64,  71,  79,  87,  95,  103, 111, 119};
    for (int j = 0; j < 32; ++j) EXPECT_EQ(int(int8_t(b[2 + j])), want[j]) << j;
    float y[32];
    dequantize_block_q8_0(b, y);
    const float delta = half_to_float(0x2273);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], delta * float(want[j])) << "dequantisation uses the stored f16 delta";
}

TEST(KvFormat, Q4_0UsesTheSignedLargestElement) {
    // m = -8 (largest magnitude, negative): delta = 1, nibble = min(15, trunc(x + 8.5)).
    float x[32] = {};
    const float in[] = {-8.f, 7.f, 3.5f, 7.9f, -0.5f, 0.4f, -7.6f};
    std::copy(std::begin(in), std::end(in), x);
    x[16] = 2.f, x[31] = -3.f;
    uint8_t b[kQ4_0Bytes];
    quantize_block_q4_0(x, b);
    EXPECT_EQ(b[0] | (b[1] << 8), 0x3c00) << "delta = -8 / -8 = 1";
    const int lo[] = {0, 15, 12, 15, 8, 8, 0};
    for (int j = 0; j < 7; ++j) EXPECT_EQ(b[2 + j] & 0x0f, lo[j]) << "element " << j << " = " << in[j];
    EXPECT_EQ(b[2] >> 4, 10) << "element 16 (2.0) is the high nibble of byte 0";
    EXPECT_EQ(b[2 + 15] >> 4, 5) << "element 31 (-3.0) is the high nibble of byte 15";
    EXPECT_EQ(b[2 + 15] & 0x0f, 8) << "element 15 (0.0)";
    float y[32];
    dequantize_block_q4_0(b, y);
    EXPECT_EQ(y[0], -8.f);
    EXPECT_EQ(y[1], 7.f);
    EXPECT_EQ(y[16], 2.f);
    EXPECT_EQ(y[31], -3.f);
}

TEST(KvFormat, Q4_0TieOfMagnitudesTakesTheFirstAndCapsTheOpposite) {
    // |4| == |-4|: m = 4 (first), delta = -0.5, 1 / delta = -2: 4 -> trunc(0.5) = 0, -4 -> 16 -> 15.
    float x[32] = {};
    x[0] = 4.f, x[1] = -4.f, x[2] = 1.f;
    uint8_t b[kQ4_0Bytes];
    quantize_block_q4_0(x, b);
    EXPECT_EQ(b[0] | (b[1] << 8), 0xb800) << "delta -0.5";
    EXPECT_EQ(b[2] & 0x0f, 0);
    EXPECT_EQ(b[3] & 0x0f, 15) << "-m caps at nibble 15";
    EXPECT_EQ(b[4] & 0x0f, 6) << "trunc(-2 + 8.5)";
    float y[32];
    dequantize_block_q4_0(b, y);
    EXPECT_EQ(y[0], 4.f);
    EXPECT_EQ(y[1], -3.5f) << "the capped element loses half a step";
}

TEST(KvFormat, Q4_0BlockIsByteExact) {
    // x[j] = ((j % 7) - 3) * 0.37f with x[5] = -2.5f: m = -2.5, delta = 0.3125 (f16 0x3500).
    float x[32];
    for (int j = 0; j < 32; ++j) x[j] = float(j % 7 - 3) * 0.37f;
    x[5] = -2.5f;
    uint8_t b[kQ4_0Bytes];
    quantize_block_q4_0(x, b);
    EXPECT_EQ(b[0] | (b[1] << 8), 0x3500);
    const int want[32] = {4, 6, 7, 8, 9, 0, 12, 4, 6, 7, 8, 9, 10, 12, 4, 6, 7, 8, 9, 10, 12, 4, 6, 7, 8, 9, 10, 12, 4, 6, 7, 8};
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(b[2 + j] & 0x0f, want[j]) << j;
        EXPECT_EQ(b[2 + j] >> 4, want[j + 16]) << j + 16;
    }
}

TEST(KvFormat, ZeroBlocks) {
    const float x[32] = {};
    uint8_t b8[kQ8_0Bytes], b4[kQ4_0Bytes];
    quantize_block_q8_0(x, b8);
    for (uint8_t v : b8) EXPECT_EQ(v, 0) << "q8_0: delta 0, every q 0";
    quantize_block_q4_0(x, b4);
    EXPECT_EQ(b4[0] | (b4[1] << 8), 0x8000) << "q4_0: delta = 0 / -8 = -0.0, as ggml stores it";
    for (size_t j = 2; j < kQ4_0Bytes; ++j) EXPECT_EQ(b4[j], 0x88) << "nibble 8 where delta == 0";
    float y[32];
    dequantize_block_q4_0(b4, y);
    for (float v : y) EXPECT_EQ(v, 0.f);
}

// |x - x^| <= |x - q delta| + |q| |delta - stored delta|: half a step of the f32 delta, plus what
// storing delta as f16 costs (large where delta is an f16 subnormal, as in ggml).
TEST(KvFormat, ErrorWithinHalfAStepPlusTheF16Delta) {
    std::mt19937 rng(5);
    std::normal_distribution<float> n(0.f, 1.f);
    for (int trial = 0; trial < 200; ++trial) {
        const float s = std::pow(10.f, float(trial % 9) - 4.f);  // 1e-4 .. 1e4
        float x[32], y[32];
        for (float& v : x) v = n(rng) * s;
        uint8_t b8[kQ8_0Bytes], b4[kQ4_0Bytes];
        float amax = 0, m = 0;
        for (float v : x)
            if (std::fabs(v) > amax) amax = std::fabs(v), m = v;
        quantize_block_q8_0(x, b8);
        dequantize_block_q8_0(b8, y);
        const float d8 = amax / 127.f, s8 = half_to_float(uint16_t(b8[0] | (b8[1] << 8)));
        for (int j = 0; j < 32; ++j)
            EXPECT_LE(std::fabs(x[j] - y[j]), 0.5f * d8 + 127.f * std::fabs(d8 - s8) + 1e-6f * amax) << trial << " " << j;
        quantize_block_q4_0(x, b4);
        dequantize_block_q4_0(b4, y);
        const float d4 = m / -8.f, s4 = half_to_float(uint16_t(b4[0] | (b4[1] << 8)));
        // Half a step, except the -m element capped at 15 (a full step), plus the f16 delta.
        for (int j = 0; j < 32; ++j)
            EXPECT_LE(std::fabs(x[j] - y[j]), std::fabs(d4) + 8.f * std::fabs(d4 - s4) + 1e-6f * amax) << trial << " " << j;
    }
}

}  // namespace
}  // namespace tca::detail
