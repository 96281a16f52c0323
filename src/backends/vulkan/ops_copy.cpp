// Vulkan backend, roofline probe copy: the bandwidth kernel (shaders/copy.comp, src/iface/iface_copy.h).
#include <algorithm>

#include "backends/vulkan/vk_device.h"
#include "core/checked.h"
#include "iface/iface_copy.h"

namespace tca::detail::vulkan {

void VulkanDevice::stream_copy(const CopyArgs& a) {
    validate(a);
    OpScope op(this, Op::copy);
    CopyParams pc{};
    pc.src_off = checked_narrow<uint32_t>(a.src.offset / 16, "copy source offset");
    pc.dst_off = checked_narrow<uint32_t>(a.dst.offset / 16, "copy destination offset");
    pc.n = checked_narrow<uint32_t>(a.bytes / 16, "copy size");
    constexpr uint32_t kWG = 256;
    const uint32_t groups = ceil_div(pc.n, kWG);
    pc.gx = std::min<uint32_t>(groups, 32768);
    std::vector<uint32_t> spec(1);
    spec[TCA_COPY_SPEC_WG] = kWG;
    auto b = binds(2);
    b[TCA_COPY_BIND_SRC] = in(a.src), b[TCA_COPY_BIND_DST] = out(a.dst);
    dispatch("copy.comp", spec, pc, b, pc.gx, ceil_div(groups, pc.gx));
}

}  // namespace tca::detail::vulkan
