// Vulkan backend, roofline probe fma: the multiply-add peak kernel (shaders/fma.comp, fma_f16.comp;
// src/iface/iface_fma.h).
#include <algorithm>

#include "backends/vulkan/vk_device.h"
#include "core/checked.h"
#include "iface/iface_fma.h"

namespace tca::detail::vulkan {

void VulkanDevice::fma_probe(const FmaArgs& a) {
    validate(a);
    require(fma_supported(a.dtype), TCA_ERROR_UNSUPPORTED,
            "vulkan: " + info_.device + " has no shaderFloat16 enabled for the f16 probe");
    OpScope op(this, Op::fma);
    FmaParams pc{};
    pc.out_off = checked_narrow<uint32_t>(a.out.offset / 4, "fma probe output offset");
    pc.items = a.items, pc.iters = a.iters, pc.a = a.a, pc.b = a.b;
    constexpr uint32_t kWG = 256;
    const uint32_t groups = ceil_div(pc.items, kWG);
    pc.gx = std::min<uint32_t>(groups, 32768);
    std::vector<uint32_t> spec(1);
    spec[TCA_FMA_SPEC_WG] = kWG;
    auto b = binds(1);
    b[TCA_FMA_BIND_OUT] = out(a.out);
    dispatch(a.dtype == DType::f16 ? "fma_f16.comp" : "fma.comp", spec, pc, b, pc.gx, ceil_div(groups, pc.gx));
}

}  // namespace tca::detail::vulkan
