// Vulkan backend: tile and work-group choices of the kernel families, per device class.
#include "backends/vulkan/vk_tuning.h"

#include <algorithm>

#include "backends/vulkan/vk_device.h"
#include "device/tuning.h"
#include "iface/iface_attn.h"

namespace tca::detail::vulkan {

namespace {

// Field order: attn_tpr, attn_br, gemm_bm, gemm_bn, gemm_bk, gemm_tm, gemm_tn, gemm_stage, decode.
// GPUs: 4 threads per query row keep per-thread state (q slice, o slice) small; GEMM in 64x64
// tiles of 4x4 blocks (256 invocations) staged through shared memory.
constexpr Tuning kGpu = {4, 32, 64, 64, 16, 4, 4, 1, kDecodeGpuRow};

struct TuningRow {
    DeviceClass cls;
    Tuning t;
};

const TuningRow kTuning[] = {
    // CPU drivers (lavapipe) run a workgroup's invocations as SIMD lanes in a loop: one thread per
    // query row, so all lanes of an invocation group read the same K/V address; GEMM with fewer,
    // fatter invocations (8x8 blocks) keeping more in registers, and no shared-memory staging.
    {DeviceClass::cpu_driver, {1, 32, 64, 64, 16, 8, 8, 0, kDecodeCpuRow}},
    {DeviceClass::nvidia, kGpu},
    {DeviceClass::amd, kGpu},
    {DeviceClass::intel, kGpu},
    {DeviceClass::gpu, kGpu},
};

}  // namespace

Tuning choose_tuning(const DeviceInfo& info, const std::string& overrides) {
    const DeviceClass cls = classify_device(info);
    Tuning t = kGpu;  // other vendors' GPUs and other devices: the generic GPU row
    for (const auto& row : kTuning)
        if (row.cls == cls) t = row.t;
    apply_tuning_overrides(overrides, "vulkan",
                           {{"attn_tpr", &t.attn_tpr, 1, 4, true},
                            {"attn_br", &t.attn_br, 1, 256, false},
                            {"gemm_bm", &t.gemm_bm, 1, 256, false},
                            {"gemm_bn", &t.gemm_bn, 1, 256, false},
                            {"gemm_bk", &t.gemm_bk, 1, 256, false},
                            {"gemm_tm", &t.gemm_tm, 1, 16, false},
                            {"gemm_tn", &t.gemm_tn, 1, 16, false},
                            {"gemm_stage", &t.gemm_stage, 0, 1, false},
                            {"decode_wg", &t.decode.wg, 8, 1024, true},
                            {"decode_tpr", &t.decode.tpr, 0, 1024, false},
                            {"decode_tile", &t.decode.tile, 1, 4096, true},
                            {"decode_min_keys", &t.decode.min_keys, 1, 1 << 20, false},
                            {"decode_wgs_per_cu", &t.decode.wgs_per_cu, 1, 64, false}});
    return t;
}

std::vector<uint32_t> VulkanDevice::attn_spec(const AttnTiles& t, int dim, DType kv, uint32_t mode, bool sparse) const {
    std::vector<uint32_t> s(TCA_ATTN_SPECS);
    s[TCA_ATTN_SPEC_WG] = t.br * t.tpr;
    s[TCA_ATTN_SPEC_BR] = t.br;
    s[TCA_ATTN_SPEC_BC] = t.bc;
    s[TCA_ATTN_SPEC_D] = uint32_t(dim);
    s[TCA_ATTN_SPEC_TPR] = t.tpr;
    s[TCA_ATTN_SPEC_KV_F16] = kv_format_spec(kv);
    s[TCA_ATTN_SPEC_USE_SG] = t.sg ? 1u : 0u;
    s[TCA_ATTN_SPEC_MODE] = mode;
    s[TCA_ATTN_SPEC_SPARSE] = sparse ? 1u : 0u;
    return s;
}

VulkanDevice::AttnTiles VulkanDevice::attn_tiles(int dim) const {
    AttnTiles t{};
    const uint32_t d4 = uint32_t(dim) / 4;
    t.tpr = uint32_t(tuning_.attn_tpr);
    t.br = std::clamp<uint32_t>(uint32_t(tuning_.attn_br), 32 / t.tpr, 256 / t.tpr);  // WG >= BC (column staging), <= 256
    while (t.tpr > 1 && t.tpr > d4) t.tpr /= 2;
    t.sg = use_subgroups_ && pi_.subgroup.subgroupSize >= t.tpr && (t.br * t.tpr) % pi_.subgroup.subgroupSize == 0;
    const uint32_t shared = pi_.props.limits.maxComputeSharedMemorySize;
    // Largest key tile whose shared footprint (K or V tile, positions, stats, per-row scores, and the
    // partial-dot reduction area when subgroups are off) fits; 32 at most (one mask word per tile).
    for (t.bc = 32; t.bc > 4; t.bc /= 2) {
        const uint32_t bytes = t.bc * d4 * 16 + t.bc * 12 + t.br * t.bc * 4 + (t.sg || t.tpr == 1 ? 0 : t.br * t.tpr * t.bc * 4);
        if (bytes + 256 <= shared) break;
    }
    return t;
}

}  // namespace tca::detail::vulkan
