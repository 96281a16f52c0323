// A runtime's own Vulkan objects, for tests that play the caller of the interop API: an instance
// with the validation layer and its synchronization validation (when TCA_VULKAN_VALIDATION=1 and
// the layer is installed; its messages count as the process's, so the validation listener fails
// the test during which they came), the first device with a compute queue, a command pool whose
// command buffers can be reset, a fence, and host-visible coherent buffers.
#pragma once

#include <vulkan/vulkan.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <vector>

#include "backends/vulkan/vulkan_testing.h"
#include "tca/tca.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace tca::detail::test {

inline VKAPI_ATTR VkBool32 VKAPI_CALL runtime_messages(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                       VkDebugUtilsMessageTypeFlagsEXT,
                                                       const VkDebugUtilsMessengerCallbackDataEXT* data, void*) {
    if (severity & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)) {
        const char* text = data && data->pMessage ? data->pMessage : "(no message)";
        vulkan_testing::record_validation_message(text);
        std::fprintf(stderr, "[vulkan validation, test runtime] %s\n", text);
    }
    return VK_FALSE;
}

class VkRuntime {
public:
    struct Buf {
        VkBuffer buffer = VK_NULL_HANDLE;
        VkDeviceMemory memory = VK_NULL_HANDLE;
        unsigned char* mapped = nullptr;
        size_t size = 0;
    };

    VkRuntime() {
        const char* env = std::getenv("TCA_VULKAN_VALIDATION");
        const bool want = env && std::string(env) == "1";
        uint32_t n = 0;
        vkEnumerateInstanceLayerProperties(&n, nullptr);
        std::vector<VkLayerProperties> layers(n);
        vkEnumerateInstanceLayerProperties(&n, layers.data());
        bool have = false;
        for (auto& l : layers) have = have || std::string(l.layerName) == "VK_LAYER_KHRONOS_validation";
        const char* layer = "VK_LAYER_KHRONOS_validation";
        const char* exts[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME};
        const VkValidationFeatureEnableEXT sync = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
        VkValidationFeaturesEXT features{VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
        features.enabledValidationFeatureCount = 1, features.pEnabledValidationFeatures = &sync;
        VkDebugUtilsMessengerCreateInfoEXT dbg{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
        dbg.pNext = &features;
        dbg.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
        dbg.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                          VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
        dbg.pfnUserCallback = runtime_messages;
        VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
        app.apiVersion = VK_API_VERSION_1_2;
        VkInstanceCreateInfo ici{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
        ici.pApplicationInfo = &app;
        validated = want && have;
        if (validated) {
            ici.enabledLayerCount = 1, ici.ppEnabledLayerNames = &layer;
            ici.enabledExtensionCount = 2, ici.ppEnabledExtensionNames = exts;
            ici.pNext = &dbg;
        }
        if (vkCreateInstance(&ici, nullptr, &instance) != VK_SUCCESS) return;
        if (validated) {
            dbg.pNext = nullptr;
            auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
                vkGetInstanceProcAddr(instance, "vkCreateDebugUtilsMessengerEXT"));
            create(instance, &dbg, nullptr, &messenger);
        }
        vkEnumeratePhysicalDevices(instance, &n, nullptr);
        std::vector<VkPhysicalDevice> pds(n);
        vkEnumeratePhysicalDevices(instance, &n, pds.data());
        for (VkPhysicalDevice pd : pds) {
            uint32_t nq = 0;
            vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, nullptr);
            std::vector<VkQueueFamilyProperties> qf(nq);
            vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, qf.data());
            for (uint32_t i = 0; i < nq && !phys; ++i)
                if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) phys = pd, family = i;
            if (phys) break;
        }
        if (!phys) return;
        const float prio = 1.f;
        VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
        qci.queueFamilyIndex = family, qci.queueCount = 1, qci.pQueuePriorities = &prio;
        VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
        dci.queueCreateInfoCount = 1, dci.pQueueCreateInfos = &qci;
        if (vkCreateDevice(phys, &dci, nullptr, &device) != VK_SUCCESS) return;
        vkGetDeviceQueue(device, family, 0, &queue);
        handles = tca_vulkan_handles{sizeof(tca_vulkan_handles), instance, phys, device, queue, family, VK_API_VERSION_1_2, 0u};
        VkCommandPoolCreateInfo cpi{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
        cpi.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
        cpi.queueFamilyIndex = family;
        vkCreateCommandPool(device, &cpi, nullptr, &pool);
        VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        vkCreateFence(device, &fci, nullptr, &fence);
    }
    VkRuntime(const VkRuntime&) = delete;
    VkRuntime& operator=(const VkRuntime&) = delete;
    ~VkRuntime() {
        if (device) {
            vkDeviceWaitIdle(device);
            for (auto& b : bufs_) {
                vkDestroyBuffer(device, b.buffer, nullptr);
                vkFreeMemory(device, b.memory, nullptr);
            }
            if (fence) vkDestroyFence(device, fence, nullptr);
            if (pool) vkDestroyCommandPool(device, pool, nullptr);
            vkDestroyDevice(device, nullptr);
        }
        if (messenger) {
            auto destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
                vkGetInstanceProcAddr(instance, "vkDestroyDebugUtilsMessengerEXT"));
            destroy(instance, messenger, nullptr);
        }
        if (instance) vkDestroyInstance(instance, nullptr);
    }
    bool ok() const { return device != VK_NULL_HANDLE && pool != VK_NULL_HANDLE && fence != VK_NULL_HANDLE; }

    // A host-visible, coherent buffer of `bytes` (storage and transfer usage), mapped; lives as long as
    // the runtime. A deque: references stay valid.
    Buf& buffer(size_t bytes) {
        Buf b;
        b.size = bytes;
        VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
        bci.size = bytes;
        bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
        vkCreateBuffer(device, &bci, nullptr, &b.buffer);
        VkMemoryRequirements req;
        vkGetBufferMemoryRequirements(device, b.buffer, &req);
        VkPhysicalDeviceMemoryProperties mp;
        vkGetPhysicalDeviceMemoryProperties(phys, &mp);
        const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        uint32_t type = 0;
        while (type < mp.memoryTypeCount &&
               !((req.memoryTypeBits >> type & 1) && (mp.memoryTypes[type].propertyFlags & want) == want))
            ++type;
        VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
        mai.allocationSize = req.size, mai.memoryTypeIndex = type;
        vkAllocateMemory(device, &mai, nullptr, &b.memory);
        vkBindBufferMemory(device, b.buffer, b.memory, 0);
        void* p = nullptr;
        vkMapMemory(device, b.memory, 0, VK_WHOLE_SIZE, 0, &p);
        b.mapped = static_cast<unsigned char*>(p);
        bufs_.push_back(b);
        return bufs_.back();
    }

    // A primary command buffer of the pool, begun (one-time submit).
    VkCommandBuffer begin() {
        VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
        ai.commandPool = pool, ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, ai.commandBufferCount = 1;
        VkCommandBuffer cb = VK_NULL_HANDLE;
        vkAllocateCommandBuffers(device, &ai, &cb);
        VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
        bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
        vkBeginCommandBuffer(cb, &bi);
        return cb;
    }
    // Ends cb, submits it with the fence, waits, frees it. False if any step failed.
    bool submit_and_wait(VkCommandBuffer cb) {
        bool ok = vkEndCommandBuffer(cb) == VK_SUCCESS;
        VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
        si.commandBufferCount = 1, si.pCommandBuffers = &cb;
        ok = ok && vkQueueSubmit(queue, 1, &si, fence) == VK_SUCCESS;
        ok = ok && vkWaitForFences(device, 1, &fence, VK_TRUE, UINT64_MAX) == VK_SUCCESS;
        vkResetFences(device, 1, &fence);
        vkFreeCommandBuffers(device, pool, 1, &cb);
        return ok;
    }
    // A global memory barrier between stages (the caller's side of the recording contract).
    static void barrier(VkCommandBuffer cb, VkPipelineStageFlags src, VkAccessFlags src_access, VkPipelineStageFlags dst,
                        VkAccessFlags dst_access) {
        VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
        mb.srcAccessMask = src_access, mb.dstAccessMask = dst_access;
        vkCmdPipelineBarrier(cb, src, dst, 0, 1, &mb, 0, nullptr, 0, nullptr);
    }

    VkInstance instance = VK_NULL_HANDLE;
    VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
    VkPhysicalDevice phys = VK_NULL_HANDLE;
    VkDevice device = VK_NULL_HANDLE;
    VkQueue queue = VK_NULL_HANDLE;
    uint32_t family = 0;
    VkCommandPool pool = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    tca_vulkan_handles handles{};
    bool validated = false;

private:
    std::deque<Buf> bufs_;
};

}  // namespace tca::detail::test
