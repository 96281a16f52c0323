// Tuning of the decode kernels (cl/decode.cl, shaders/decode.glsl; layout in src/iface/iface_decode.h),
// one named row per device class. Both GPU backends hold one; tests force the GPU row on the CPU
// drivers (opencl_testing / vulkan_testing::set_decode_tuning) so GPU-only code is still checked.
#pragma once

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

}  // namespace tca::detail
