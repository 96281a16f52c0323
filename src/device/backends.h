// Factory functions each backend exports to the registry. Only the registry includes this.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "device/device.h"

namespace tca::detail {

// Settings shared by the GPU backends.
struct BackendOptions {
    // Where compiled OpenCL programs and the Vulkan pipeline cache live. Empty disables caching.
    // Default: $TCA_CACHE_DIR, else $XDG_CACHE_HOME/tca, else $HOME/.cache/tca.
    std::string cache_dir;
    // Vulkan: enable VK_LAYER_KHRONOS_validation and count its messages ($TCA_VULKAN_VALIDATION=1).
    bool vulkan_validation = false;
    // The largest buffer to allocate, 0 = the device's own maximum ($TCA_MAX_BUFFER_BYTES). A smaller
    // value makes tensors split across buffers sooner (device/split_device.h); tests use it to
    // exercise splitting on CPU drivers whose real limit is far off.
    uint64_t max_buffer_bytes = 0;
    // Tuning-table overrides, "api.field=value,..." ($TCA_TUNING; device/tuning.h). Applied when a
    // device is created; a bad item fails the creation.
    std::string tuning;
    static BackendOptions from_environment();
};

std::unique_ptr<Device> make_cpu_device();
DeviceInfo cpu_device_info();

// Each GPU backend lists its devices as "<api>:N" in a stable order and opens one by N.
// Enumeration never throws: a missing loader or driver yields an empty list.
std::vector<DeviceInfo> opencl_devices();
std::unique_ptr<Device> make_opencl_device(int index, const BackendOptions& options);

std::vector<DeviceInfo> vulkan_devices();
std::unique_ptr<Device> make_vulkan_device(int index, const BackendOptions& options);

// Number of validation-layer messages of severity warning or error seen since process start
// (tests assert it stays 0).
uint64_t vulkan_validation_message_count();

}  // namespace tca::detail
