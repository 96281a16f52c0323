// Device discovery and selection: "cpu", "opencl:N", "vulkan:N", and the default choice.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "device/backends.h"
#include "device/device.h"

namespace tca::detail {

// Every device: the reference first, then OpenCL, then Vulkan devices.
const std::vector<DeviceInfo>& list_devices();

// The name the default choice picks: $TCA_DEVICE if set, else the best-ranked device
// (discrete GPU > integrated GPU > CPU driver > reference > simulator; OpenCL before Vulkan on a tie).
std::string default_device_name();
// The best-ranked of `devices` by that order ("cpu" if empty). Simulators and debuggers such as
// Oclgrind rank below every other device, the reference included: visible is not chosen.
std::string best_device_name(const std::vector<DeviceInfo>& devices);

// Opens a device by name ("" = default). Throws Error(TCA_ERROR_DEVICE_NOT_FOUND) for an unknown name.
// The device splits tensors larger than its largest buffer across buffers (device/split_device.h).
std::unique_ptr<Device> open_device(const std::string& name);
// The same with explicit options instead of BackendOptions::from_environment().
std::unique_ptr<Device> open_device(const std::string& name, const BackendOptions& options);

// Whether this build has a component: "reference" (always), "opencl", "vulkan", "clblast" (the
// TCA_WITH_* options at configure time). Throws TCA_ERROR_INVALID_ARGUMENT for any other name.
bool component_built(const std::string& component);

}  // namespace tca::detail
