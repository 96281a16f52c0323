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

// CPU drivers (PoCL, lavapipe): a whole row across the lanes, so a SIMD batch of lanes reads one
// contiguous run; large tiles amortise the barriers; few compute units, so few splits.
constexpr DecodeTuning kDecodeCpuRow{64, 0, 128, 512, 2, true};
// GPUs: 8 lanes per row (128 contiguous bytes of f32 per row and step), many splits to fill the SMs.
constexpr DecodeTuning kDecodeGpuRow{128, 8, 64, 256, 4, true};

}  // namespace tca::detail
