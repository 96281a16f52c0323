// Vulkan backend, roofline probe gemm: register-blocked f32 GEMM (shaders/gemm.comp).
#include "backends/vulkan/vk_device.h"
#include "core/checked.h"
#include "iface/iface_gemm.h"

namespace tca::detail::vulkan {

// Register-blocked tiles of shaders/gemm.comp from the tuning table (vk_tuning.cpp), checked
// against this device's limits (a TCA_TUNING override may ask for more than it has).
void VulkanDevice::gemm(const GemmArgs& a) {
    validate(a);
    require(gemm_supported(a.dtype), TCA_ERROR_UNSUPPORTED, "vulkan: the GEMM probe is f32 only");
    OpScope op(this, Op::gemm);
    const uint32_t bm = uint32_t(tuning_.gemm_bm), bn = uint32_t(tuning_.gemm_bn), bk = uint32_t(tuning_.gemm_bk),
                   tm = uint32_t(tuning_.gemm_tm), tn = uint32_t(tuning_.gemm_tn), stage = uint32_t(tuning_.gemm_stage);
    const auto& lim = pi_.props.limits;
    require(tm > 0 && tn > 0 && bk > 0 && bm % tm == 0 && bn % tn == 0 &&
                (bm / tm) * (bn / tn) <= lim.maxComputeWorkGroupInvocations && (bm + bn) * bk * 4 <= lim.maxComputeSharedMemorySize,
            TCA_ERROR_INVALID_ARGUMENT, "vulkan: GEMM tiles do not fit this device");
    GemmParams pc{};
    pc.a_off = elem_off(a.a, DType::f32), pc.b_off = elem_off(a.b, DType::f32), pc.c_off = elem_off(a.c, DType::f32);
    pc.m = uint32_t(a.m), pc.n = uint32_t(a.n), pc.k = uint32_t(a.k);
    std::vector<uint32_t> spec(TCA_GEMM_SPECS);
    spec[TCA_GEMM_SPEC_WG_X] = bn / tn, spec[TCA_GEMM_SPEC_WG_Y] = bm / tm;
    spec[TCA_GEMM_SPEC_BM] = bm, spec[TCA_GEMM_SPEC_BN] = bn, spec[TCA_GEMM_SPEC_BK] = bk;
    spec[TCA_GEMM_SPEC_TM] = tm, spec[TCA_GEMM_SPEC_TN] = tn, spec[TCA_GEMM_SPEC_STAGE] = stage ? 1u : 0u;
    auto b = binds(TCA_GEMM_BINDINGS);
    b[TCA_GEMM_BIND_A] = in(a.a), b[TCA_GEMM_BIND_B] = in(a.b), b[TCA_GEMM_BIND_C] = out(a.c);
    dispatch("gemm.comp", spec, pc, b, ceil_div(a.n, bn), ceil_div(a.m, bm));
}

}  // namespace tca::detail::vulkan
