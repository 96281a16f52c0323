// Vulkan backend: the pipeline cache, kept on disk as one entry of the shared kernel cache
// (device/kernel_cache.h), named by the device, its driver and the driver's cache UUID.
#include <cstring>

#include "backends/vulkan/vk_device.h"
#include "device/kernel_cache.h"

namespace tca::detail::vulkan {

uint64_t VulkanDevice::cache_key() const {
    return kernel_cache::Hash()
        .add(std::string("vulkan pipeline cache"))
        .add_u64(pi_.props.vendorID)
        .add_u64(pi_.props.deviceID)
        .add_u64(pi_.props.driverVersion)
        .add(pi_.props.pipelineCacheUUID, VK_UUID_SIZE)
        .value();
}

void VulkanDevice::create_pipeline_cache() {
    std::vector<unsigned char> payload;
    if (!options_.cache_dir.empty()) {
        cache_path_ = kernel_cache::entry_path(options_.cache_dir, "vulkan", cache_key());
        if (kernel_cache::load(cache_path_, cache_key(), &payload) != kernel_cache::Lookup::hit || !payload_fits(payload))
            payload.clear();
    }
    VkPipelineCacheCreateInfo ci{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    ci.initialDataSize = payload.size();
    ci.pInitialData = payload.empty() ? nullptr : payload.data();
    if (vkCreatePipelineCache(ctx_->device, &ci, nullptr, &cache_) != VK_SUCCESS) {
        ci.initialDataSize = 0;  // a driver that still rejects the data: start empty
        ci.pInitialData = nullptr;
        payload.clear();
        VK_CHECK(vkCreatePipelineCache(ctx_->device, &ci, nullptr, &cache_));
    }
    cache_bytes_loaded_ = payload.size();
}

// The driver's own header (VkPipelineCacheHeaderVersionOne) must name this device: the entry's key
// says so already, but a driver handed another device's data may crash rather than refuse it.
bool VulkanDevice::payload_fits(const std::vector<unsigned char>& payload) const {
    if (payload.size() < 32) return false;
    uint32_t hlen, hver, vendor, device;
    std::memcpy(&hlen, payload.data(), 4);
    std::memcpy(&hver, payload.data() + 4, 4);
    std::memcpy(&vendor, payload.data() + 8, 4);
    std::memcpy(&device, payload.data() + 12, 4);
    return hlen >= 32 && hver == VK_PIPELINE_CACHE_HEADER_VERSION_ONE && vendor == pi_.props.vendorID &&
           device == pi_.props.deviceID && std::memcmp(payload.data() + 16, pi_.props.pipelineCacheUUID, VK_UUID_SIZE) == 0;
}

void VulkanDevice::save_pipeline_cache() {
    if (cache_path_.empty() || !cache_ || !cache_dirty_) return;
    size_t n = 0;
    if (vkGetPipelineCacheData(ctx_->device, cache_, &n, nullptr) != VK_SUCCESS || n == 0) return;
    std::vector<unsigned char> data(n);
    if (vkGetPipelineCacheData(ctx_->device, cache_, &n, data.data()) != VK_SUCCESS) return;
    data.resize(n);
    if (kernel_cache::store(cache_path_, cache_key(), data.data(), data.size())) cache_dirty_ = false;
}

}  // namespace tca::detail::vulkan
