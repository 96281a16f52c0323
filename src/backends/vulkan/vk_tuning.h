// Private header of the Vulkan backend: the tuning table (vk_tuning.cpp), one row per device class
// (device/tuning.h), chosen when a context is created.
#pragma once

#include <string>

#include "device/decode_tuning.h"
#include "device/device.h"

namespace tca::detail::vulkan {

struct Tuning {
    // Flash-attention family (shaders/attn.glsl): threads per query row (they split the head dim)
    // and query rows per workgroup. Key-tile size follows from shared memory (VulkanDevice::attn_tiles).
    int attn_tpr;
    int attn_br;
    // GEMM probe (shaders/gemm.comp): output tile BM x BN, K step BK, each invocation a TM x TN
    // register block; stage = 1 stages A and B tiles through shared memory.
    int gemm_bm, gemm_bn, gemm_bk, gemm_tm, gemm_tn, gemm_stage;
    // Decode family (shaders/decode.glsl): layout and split-K (device/decode_tuning.h).
    DecodeTuning decode;
};

// The row for `info`'s device class, then the TCA_TUNING items for Vulkan (`overrides`). Throws
// TCA_ERROR_INVALID_ARGUMENT for a bad override.
Tuning choose_tuning(const DeviceInfo& info, const std::string& overrides);

}  // namespace tca::detail::vulkan
