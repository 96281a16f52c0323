// Private header of the Vulkan backend (src/backends/vulkan/): errors, the instance/device context
// and what is known of a physical device. Only files of this folder include it.
#pragma once

#include <vulkan/vulkan.h>

// Vulkan structs are initialised as {sType} with every other member zeroed; that is the intent.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "device/device.h"

namespace tca::detail::vulkan {

// ---- errors (vk_errors.cpp) ----------------------------------------------------------------------

const char* result_name(VkResult r);
tca_status status_of(VkResult r);
// Memory exhaustion and device loss keep their own codes whatever the call was; otherwise `code`.
[[noreturn]] void fail(VkResult r, const char* what, tca_status code = TCA_ERROR_BACKEND);

#define VK_CHECK(call)                                              \
    do {                                                            \
        const VkResult r_ = (call);                                 \
        if (r_ != VK_SUCCESS) ::tca::detail::vulkan::fail(r_, #call); \
    } while (0)

bool env_flag(const char* name);
std::string hex(uint64_t v, int width = 0);
std::string vendor_name(uint32_t id);
bool has_extension(const std::vector<VkExtensionProperties>& exts, const char* name);

// Validation-layer messages of severity warning or error seen by this process (see vulkan_testing.h).
void record_validation(const char* text);
uint64_t validation_count();
std::vector<std::string> validation_texts(uint64_t from);
VKAPI_ATTR VkBool32 VKAPI_CALL debug_callback(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                              VkDebugUtilsMessageTypeFlagsEXT type,
                                              const VkDebugUtilsMessengerCallbackDataEXT* data, void* user);

// ---- instance and device (vk_instance.cpp) -------------------------------------------------------

// The instance and, once opened, the logical device. Shared (shared_ptr) by the device object and
// every buffer it allocated, so handles outlive whichever of them goes last.
struct Context {
    VkInstance instance = VK_NULL_HANDLE;
    VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
    VkPhysicalDevice phys = VK_NULL_HANDLE;
    VkDevice device = VK_NULL_HANDLE;
    uint32_t api_version = VK_API_VERSION_1_1;  // instance version asked for
    bool external = false;         // the caller's instance and device (interop): never destroyed here
    bool sync_validation = false;  // our instance runs the layer's synchronization validation

    ~Context();
};

std::shared_ptr<Context> create_instance(bool validation);
std::vector<VkPhysicalDevice> physical_devices(VkInstance instance);

// Everything the backend needs to know about a physical device, queried once.
struct PhysInfo {
    VkPhysicalDeviceProperties props{};
    VkPhysicalDeviceSubgroupProperties subgroup{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceMaintenance3Properties maint3{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    bool has_driver_props = false;
    bool storage16 = false, float16 = false;
    VkPhysicalDeviceMemoryProperties mem{};
    int compute_family = -1;
    uint32_t timestamp_bits = 0;
    uint32_t effective_version = 0;
};

PhysInfo query_phys(const Context& ctx, VkPhysicalDevice pd);
uint64_t max_allocation_of(const PhysInfo& pi);
bool subgroups_usable(const PhysInfo& pi);
DeviceInfo device_info(const PhysInfo& pi, int index);

}  // namespace tca::detail::vulkan
