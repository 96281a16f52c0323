// PLACEHOLDER until the vulkan backend lands (being written now); replaced wholesale.
#include "device/backends.h"
namespace tca {
std::vector<DeviceInfo> vulkan_devices() { return {}; }
std::unique_ptr<Device> make_vulkan_device(int, const BackendOptions&) {
    throw Error(TCA_ERROR_DEVICE_NOT_FOUND, "vulkan backend not built");
}
uint64_t vulkan_validation_message_count() { return 0; }
}  // namespace tca
