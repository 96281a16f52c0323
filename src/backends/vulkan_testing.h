// Internal hooks the Vulkan backend exposes to its own tests (tests/test_vulkan_backend.cpp).
// Not part of the library's interface; only tests include this.
#pragma once

#include <cstddef>

#include "device/device.h"

namespace tca::vulkan_testing {

// Bytes of pipeline-cache data accepted from disk when `dev` (a Vulkan device) was opened;
// 0 when there was no file, or it was rejected as corrupt or from another device/driver.
size_t pipeline_cache_bytes_loaded(Device& dev);

// Path of the pipeline-cache file `dev` reads and writes ("" when caching is off).
std::string pipeline_cache_path(Device& dev);

// Builds a pipeline from a deliberately broken SPIR-V module; must throw TCA_ERROR_KERNEL_BUILD.
void build_broken_shader(Device& dev);

// Whether `dev` runs its kernels with native 16-bit storage / subgroup operations (after the
// TCA_VULKAN_DISABLE_FP16_STORAGE / TCA_VULKAN_DISABLE_SUBGROUPS switches).
bool uses_fp16_storage(Device& dev);
bool uses_subgroups(Device& dev);

// Frees the device's internal scratch buffers and the dummy binding, so that later ops allocate
// them again as on a fresh device (compiled pipelines stay). Fault-injection tests reuse one device.
void release_scratch(Device& dev);

}  // namespace tca::vulkan_testing
