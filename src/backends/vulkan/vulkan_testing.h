// Internal hooks the Vulkan backend exposes to its own tests (tests/test_vulkan_backend.cpp and others).
// Not part of the library's interface; only tests include this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "device/decode_tuning.h"
#include "device/device.h"

namespace tca::detail::vulkan_testing {

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

// Whether `dev`'s own instance runs the validation layer's synchronization validation
// (on with TCA_VULKAN_VALIDATION=1 wherever the layer offers VK_EXT_validation_features).
bool synchronization_validation_on(Device& dev);
// Records two fills of one buffer with no barrier between them and submits them: a write-after-write
// hazard that synchronization validation reports. Proves the checks, and the harness's reaction, work.
void record_unsynchronised_writes(Device& dev);
// Creates a VkBuffer on `dev`'s device and never destroys it: the validation layer reports the leak
// when `dev` is closed. Proves messages that come after the last test fail the run.
void leak_buffer(Device& dev);

// Validation-layer messages (severity warning or error) this process has seen, numbered from 0 in
// order: those of the library's own instances and those handed to record_validation_message().
uint64_t validation_message_count();
// Texts of messages number `from` onwards (the first 1000 of a process are kept).
std::vector<std::string> validation_messages(uint64_t from);
// For the messenger of a test's own VkInstance (interop): counts `text` as a message of this process.
void record_validation_message(const char* text);
// Frees the device's internal scratch buffers and the dummy binding, so that later ops allocate
// them again as on a fresh device (compiled pipelines stay). Fault-injection tests reuse one device.
void release_scratch(Device& dev);
// Replaces the device's decode tuning row (device/decode_tuning.h), e.g. the GPU row on a CPU driver;
// returns the row it replaced.
DecodeTuning set_decode_tuning(Device& dev, const DecodeTuning& t);

// The device memory blocks buffers are sub-allocated from (src/backends/vulkan/vk_suballoc.h): how
// many are alive, how many of them hold one large buffer alone, and the size of an ordinary block.
size_t memory_blocks(Device& dev);
size_t dedicated_memory_blocks(Device& dev);
uint64_t memory_block_size(Device& dev);

}  // namespace tca::detail::vulkan_testing
