// Devices and buffers on objects the caller owns (the zero-copy interop of tca.h). Each backend
// implements its half in its own host file; only src/api includes this.
//
// Handles travel as void* / uint64_t so this header needs no OpenCL or Vulkan header either.
#pragma once

#include <cstdint>
#include <memory>

#include "device/backends.h"
#include "device/device.h"

namespace tca::detail {

// A device on the caller's cl_context / cl_device_id / cl_command_queue (retained, released on
// destruction). Throws TCA_ERROR_INVALID_ARGUMENT for mismatched objects and TCA_ERROR_UNSUPPORTED for
// an out-of-order queue.
std::unique_ptr<Device> make_opencl_device_external(void* context, void* device, void* queue,
                                                    const BackendOptions& options);
// The caller's cl_mem as a buffer of `dev` (retained while the Buffer lives; never freed by us).
Buffer opencl_wrap_buffer(Device& dev, void* mem);

// Events (tca_context_opencl_wait_for / _last_event): gates every command enqueued after this call
// on `events` (a barrier with that wait list in the in-order queue); the last attention call's
// closing marker, retained for the caller (null before the first call).
void opencl_wait_for(Device& dev, uint32_t n, void* const* events);
void* opencl_last_event(Device& dev);

struct VulkanExternal {
    void* instance = nullptr;
    void* physical_device = nullptr;
    void* device = nullptr;
    void* queue = nullptr;
    uint32_t queue_family = 0;
    uint32_t api_version = 0;
    bool storage_buffer_16bit = false;  // the caller enabled storageBuffer16BitAccess
    bool shader_float16 = false;        // the caller enabled shaderFloat16 (Vulkan 1.2)
};

// A device on the caller's Vulkan objects; nothing of them is destroyed with it.
std::unique_ptr<Device> make_vulkan_device_external(const VulkanExternal& ext, const BackendOptions& options);
// The caller's VkBuffer of `size` bytes as a buffer of `dev` (never destroyed by us).
Buffer vulkan_wrap_buffer(Device& dev, uint64_t buffer, uint64_t size);

// Recording into the caller's VkCommandBuffer (tca_context_vulkan_begin_recording / _end_recording /
// _release): TCA_ERROR_INVALID_ARGUMENT on a device that is not Vulkan.
void vulkan_begin_recording(Device& dev, void* command_buffer);
uint64_t vulkan_end_recording(Device& dev);  // the recording's ticket
void vulkan_release_recording(Device& dev, uint64_t ticket);
bool vulkan_recording_open(Device& dev);  // false on any other device

}  // namespace tca::detail
