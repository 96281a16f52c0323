// Vulkan backend: the instance (layers, validation, messenger), physical devices and their properties.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "backends/vulkan/vk_context.h"

namespace tca::detail::vulkan {

Context::~Context() {
    if (external) return;
    if (device) vkDestroyDevice(device, nullptr);
    if (messenger) {
        auto destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
            vkGetInstanceProcAddr(instance, "vkDestroyDebugUtilsMessengerEXT"));
        if (destroy) destroy(instance, messenger, nullptr);
    }
    if (instance) vkDestroyInstance(instance, nullptr);
}

std::shared_ptr<Context> create_instance(bool validation) {
    auto ctx = std::make_shared<Context>();
    uint32_t loader_version = VK_API_VERSION_1_0;
    auto enum_version = reinterpret_cast<PFN_vkEnumerateInstanceVersion>(
        vkGetInstanceProcAddr(nullptr, "vkEnumerateInstanceVersion"));
    if (enum_version) enum_version(&loader_version);
    if (loader_version < VK_API_VERSION_1_1) throw Error(TCA_ERROR_UNSUPPORTED, "vulkan: loader older than 1.1");
    // 1.2 lets us query driver properties and float16 features through core structures.
    ctx->api_version = loader_version >= VK_API_VERSION_1_2 ? VK_API_VERSION_1_2 : VK_API_VERSION_1_1;

    uint32_t n = 0;
    vkEnumerateInstanceExtensionProperties(nullptr, &n, nullptr);
    std::vector<VkExtensionProperties> exts(n);
    vkEnumerateInstanceExtensionProperties(nullptr, &n, exts.data());
    std::vector<const char*> enabled;
    VkInstanceCreateFlags flags = 0;
    // Portability enumeration makes non-conformant implementations (MoltenVK) visible.
    if (has_extension(exts, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
        enabled.push_back(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
        flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
    }
    std::vector<const char*> layers;
    bool messenger = false, sync_validation = false;
    if (validation) {
        vkEnumerateInstanceLayerProperties(&n, nullptr);
        std::vector<VkLayerProperties> props(n);
        vkEnumerateInstanceLayerProperties(&n, props.data());
        const bool have_layer = std::any_of(props.begin(), props.end(), [](const VkLayerProperties& p) {
            return std::strcmp(p.layerName, "VK_LAYER_KHRONOS_validation") == 0;
        });
        if (have_layer) layers.push_back("VK_LAYER_KHRONOS_validation");
        else std::fprintf(stderr, "tca: vulkan validation requested but VK_LAYER_KHRONOS_validation is not installed\n");
        if (have_layer && has_extension(exts, VK_EXT_DEBUG_UTILS_EXTENSION_NAME)) {
            enabled.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
            messenger = true;
        }
        // Synchronization validation (missing or wrong barriers between dispatches and copies) is off
        // by default in the layer; VK_EXT_validation_features, which the layer itself provides, turns it on.
        if (have_layer) {
            uint32_t m = 0;
            vkEnumerateInstanceExtensionProperties("VK_LAYER_KHRONOS_validation", &m, nullptr);
            std::vector<VkExtensionProperties> layer_exts(m);
            vkEnumerateInstanceExtensionProperties("VK_LAYER_KHRONOS_validation", &m, layer_exts.data());
            layer_exts.resize(m);
            sync_validation = has_extension(layer_exts, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
            if (sync_validation) enabled.push_back(VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
            else std::fprintf(stderr, "tca: the vulkan validation layer has no VK_EXT_validation_features: no synchronization validation\n");
        }
    }

    VkDebugUtilsMessengerCreateInfoEXT dbg{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
    dbg.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    dbg.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                      VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
    dbg.pfnUserCallback = debug_callback;

    const VkValidationFeatureEnableEXT sync_feature = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
    VkValidationFeaturesEXT features{VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
    features.enabledValidationFeatureCount = 1;
    features.pEnabledValidationFeatures = &sync_feature;
    dbg.pNext = sync_validation ? &features : nullptr;

    VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
    app.pApplicationName = "libtca";
    app.pEngineName = "libtca";
    app.apiVersion = ctx->api_version;
    VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    // The messenger also covers messages from instance creation itself.
    ci.pNext = messenger ? static_cast<const void*>(&dbg) : sync_validation ? static_cast<const void*>(&features) : nullptr;
    ci.flags = flags;
    ci.pApplicationInfo = &app;
    ci.enabledLayerCount = uint32_t(layers.size());
    ci.ppEnabledLayerNames = layers.data();
    ci.enabledExtensionCount = uint32_t(enabled.size());
    ci.ppEnabledExtensionNames = enabled.data();
    VK_CHECK(vkCreateInstance(&ci, nullptr, &ctx->instance));
    if (messenger) {
        auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
            vkGetInstanceProcAddr(ctx->instance, "vkCreateDebugUtilsMessengerEXT"));
        dbg.pNext = nullptr;  // the features belong to instance creation only
        if (create) VK_CHECK(create(ctx->instance, &dbg, nullptr, &ctx->messenger));
    }
    ctx->sync_validation = sync_validation;
    return ctx;
}

std::vector<VkPhysicalDevice> physical_devices(VkInstance instance) {
    uint32_t n = 0;
    VK_CHECK(vkEnumeratePhysicalDevices(instance, &n, nullptr));
    std::vector<VkPhysicalDevice> v(n);
    VK_CHECK(vkEnumeratePhysicalDevices(instance, &n, v.data()));
    v.resize(n);
    return v;
}

PhysInfo query_phys(const Context& ctx, VkPhysicalDevice pd) {
    PhysInfo pi;
    vkGetPhysicalDeviceProperties(pd, &pi.props);
    pi.effective_version = std::min(pi.props.apiVersion, ctx.api_version);
    // Chain only structures the effective API version defines, or the validation layer objects.
    const bool v12 = pi.effective_version >= VK_API_VERSION_1_2;
    VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    p2.pNext = &pi.subgroup;
    pi.subgroup.pNext = &pi.maint3;
    if (v12) {
        pi.maint3.pNext = &pi.driver;
        pi.has_driver_props = true;
    }
    vkGetPhysicalDeviceProperties2(pd, &p2);

    VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    VkPhysicalDevice16BitStorageFeatures s16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    VkPhysicalDeviceShaderFloat16Int8Features f16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
    f2.pNext = &s16;
    if (v12) s16.pNext = &f16;
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    pi.storage16 = s16.storageBuffer16BitAccess;
    pi.float16 = v12 && f16.shaderFloat16;

    vkGetPhysicalDeviceMemoryProperties(pd, &pi.mem);
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, nullptr);
    std::vector<VkQueueFamilyProperties> qf(nq);
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, qf.data());
    // Prefer a compute-only family (async compute queues), else any family with compute.
    for (uint32_t i = 0; i < nq; ++i)
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && !(qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) {
            pi.compute_family = int(i);
            break;
        }
    if (pi.compute_family < 0)
        for (uint32_t i = 0; i < nq; ++i)
            if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
                pi.compute_family = int(i);
                break;
            }
    if (pi.compute_family >= 0) pi.timestamp_bits = qf[pi.compute_family].timestampValidBits;
    return pi;
}

uint64_t max_allocation_of(const PhysInfo& pi) {
    // Every binding is a whole buffer, so a buffer may not exceed the storage-buffer range either.
    return std::min<uint64_t>(pi.maint3.maxMemoryAllocationSize, pi.props.limits.maxStorageBufferRange);
}

bool subgroups_usable(const PhysInfo& pi) {
    const VkSubgroupFeatureFlags need =
        VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT;
    return (pi.subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) && (pi.subgroup.supportedOperations & need) == need &&
           pi.subgroup.subgroupSize >= 4;
}

DeviceInfo device_info(const PhysInfo& pi, int index) {
    DeviceInfo d;
    d.name = "vulkan:" + std::to_string(index);
    d.api = Api::vulkan;
    d.vendor = vendor_name(pi.props.vendorID);
    d.device = pi.props.deviceName;
    if (pi.has_driver_props && pi.driver.driverName[0]) {
        d.driver = std::string(pi.driver.driverName) + (pi.driver.driverInfo[0] ? std::string(" ") + pi.driver.driverInfo : "");
    } else {
        const uint32_t v = pi.props.driverVersion;
        d.driver = "driver " + std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) + "." +
                   std::to_string(VK_API_VERSION_PATCH(v));
    }
    switch (pi.props.deviceType) {
        case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: d.type = TCA_DEVICE_DISCRETE_GPU; break;
        case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: d.type = TCA_DEVICE_INTEGRATED_GPU; break;
        case VK_PHYSICAL_DEVICE_TYPE_CPU: d.type = TCA_DEVICE_CPU_DRIVER; break;
        default: d.type = TCA_DEVICE_OTHER; break;
    }
    for (uint32_t h = 0; h < pi.mem.memoryHeapCount; ++h)
        if (pi.mem.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
            d.global_memory = std::max<uint64_t>(d.global_memory, pi.mem.memoryHeaps[h].size);
    d.max_allocation = max_allocation_of(pi);
    d.fp16_storage = pi.storage16;
    d.fp16_arithmetic = pi.float16;
    d.subgroup_size = pi.subgroup.subgroupSize;
    d.subgroup_ops = subgroups_usable(pi);
    return d;
}

}  // namespace tca::detail::vulkan
