// Tuning of the decode kernels (cl/decode.cl, shaders/decode.glsl; layout in src/iface/iface_decode.h),
// one named row per device class. Both GPU backends hold one; tests force the GPU row on the CPU
// drivers (opencl_testing / vulkan_testing::set_decode_tuning) so GPU-only code is still checked.
#pragma once

#include <algorithm>
#include <cstdint>

namespace tca::detail {

struct DecodeTuning {
    int wg = 64;            // lanes per work-group (power of two)
    int tpr = 0;            // lanes per K/V row (power of two; 0: d / 4, a whole row one float4 per lane)
    int tile = 64;          // rows per softmax tile (lowered to fit local/shared memory)
    int min_keys = 512;     // a split gets at least this many rows
    int wgs_per_cu = 2;     // splits aim at this many work-groups per compute unit, all KV heads together
    bool subgroups = false; // reduce a row's partial dots through subgroup shuffles where available
};

// CPU drivers (PoCL, lavapipe): 4 lanes per row (64 contiguous bytes of f32 per lane group), 128-row
// tiles to amortise the barriers, few splits (few compute units). Measured on PoCL 3.1 and lavapipe
// (Mesa 22.3), 16K keys, 8 heads, d 128, f16: 4 lanes per row 1.5x faster than a whole row (d / 4),
// 2 and 8 slower; 128-row tiles a little faster than 64.
constexpr DecodeTuning kDecodeCpuRow{64, 4, 128, 512, 2, true};
// GPUs: 8 lanes per row (128 contiguous bytes of f32 per row and step), many splits to fill the SMs.
constexpr DecodeTuning kDecodeGpuRow{128, 8, 64, 256, 4, true};

// The split-K plan and lane count both GPU backends derive from a row (one piece of code, so the two
// APIs cannot drift apart).

// Split-K partitions for `rows` live rows: at least t.min_keys rows each, and no more work-groups than
// fill `compute_units` (t.wgs_per_cu each) across `kv_heads` heads.
inline int decode_splits_for(int64_t rows, const DecodeTuning& t, int compute_units, int kv_heads) {
    const int64_t n_max = std::max<int64_t>(1, rows);
    const int64_t by_work = (n_max + t.min_keys - 1) / std::max(1, t.min_keys);
    const int by_occupancy = std::max(1, compute_units * t.wgs_per_cu / std::max(1, kv_heads));
    return int(std::max<int64_t>(1, std::min<int64_t>(by_work, by_occupancy)));
}

// Rows per split for `rows` live rows and a requested split count (clamped to [1, rows]); the split
// count actually launched is then ceil(rows / split length).
struct DecodeSplitPlan {
    int64_t split_len, splits;
};
inline DecodeSplitPlan decode_split_plan(int64_t rows, int64_t requested) {
    const int64_t n_max = std::max<int64_t>(1, rows);
    const int64_t hint = std::clamp<int64_t>(requested, 1, n_max);
    const int64_t len = (n_max + hint - 1) / hint;
    return {len, (n_max + len - 1) / len};
}

// Lanes per K/V row: the tuning's (0: a whole row, d4 float4 units), lowered to a power of two that
// divides both d4 and the work-group size.
inline int decode_lanes_per_row(const DecodeTuning& t, int d4, int wg) {
    int tpr = t.tpr > 0 ? std::min(t.tpr, d4) : d4;
    while (tpr > 1 && (d4 % tpr != 0 || wg % tpr != 0)) tpr /= 2;
    return tpr;
}

}  // namespace tca::detail
