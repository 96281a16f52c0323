// The Vulkan compute backend.
//
// Structure: a small facade (instance/device context, buffers, pipelines looked up by shader name
// plus specialization constants, one generic dispatch() helper with automatic barriers) and the
// eight ops on top of it, each a handful of dispatches of the shaders in shaders/*.comp.
//
// Execution model: ops are recorded into one command buffer; read()/finish()/write() submit it and
// wait. Buffers referenced by recorded commands are kept alive until that submit completes.
// Descriptors: one descriptor set per dispatch from pools that are reset after every submit.
// Every binding is a whole buffer; sub-buffer offsets travel as element offsets in push constants,
// so no minStorageBufferOffsetAlignment rules apply.
#include <vulkan/vulkan.h>

// Vulkan structs are initialised as {sType} with every other member zeroed; that is the intent.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <utility>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/vulkan_testing.h"
#include "core/checked.h"
#include "device/backends.h"
#include "device/embedded.h"
#include "device/fault_injection.h"
#include "device/interop.h"
#include "device/decode_tuning.h"
#include "iface/iface_copy.h"
#include "iface/iface_decode.h"

namespace tca::detail {

namespace {

// Validation-layer messages of severity warning or error seen by this process: the library's own
// messengers and those the tests install on their own instances (vulkan_testing::record_validation_message)
// add here, and the test harness fails the test during which the count grew. Texts are kept up to a cap.
struct ValidationLog {
    std::mutex mu;
    std::vector<std::string> texts;
};
ValidationLog& validation_log() {
    static auto* log = new ValidationLog;  // never destroyed: devices closed during exit may still report
    return *log;
}
std::atomic<uint64_t> g_validation_messages{0};
constexpr size_t kMaxValidationTexts = 1000;

void record_validation(const char* text) {
    ValidationLog& log = validation_log();
    std::lock_guard<std::mutex> lock(log.mu);
    if (log.texts.size() < kMaxValidationTexts) log.texts.emplace_back(text ? text : "(no message)");
    ++g_validation_messages;
}

const char* result_name(VkResult r) {
    switch (r) {
        case VK_SUCCESS: return "VK_SUCCESS";
        case VK_NOT_READY: return "VK_NOT_READY";
        case VK_TIMEOUT: return "VK_TIMEOUT";
        case VK_INCOMPLETE: return "VK_INCOMPLETE";
        case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
        case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
        case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
        case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
        case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
        case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
        case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
        case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
        case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
        case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
        case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
        case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
        case VK_ERROR_INVALID_SHADER_NV: return "VK_ERROR_INVALID_SHADER_NV";
        default: return "VkResult";
    }
}

tca_status status_of(VkResult r) {
    switch (r) {
        case VK_ERROR_OUT_OF_DEVICE_MEMORY:
        case VK_ERROR_OUT_OF_HOST_MEMORY: return TCA_ERROR_OUT_OF_MEMORY;
        case VK_ERROR_DEVICE_LOST: return TCA_ERROR_DEVICE_LOST;
        default: return TCA_ERROR_BACKEND;
    }
}

[[noreturn]] void fail(VkResult r, const char* what, tca_status code = TCA_ERROR_BACKEND) {
    // Memory exhaustion and device loss keep their own codes whatever the call was.
    const tca_status s = status_of(r) != TCA_ERROR_BACKEND ? status_of(r) : code;
    throw Error(s, std::string("vulkan: ") + what + " failed: " + result_name(r) + " (" + std::to_string(int(r)) + ")");
}

#define VK_CHECK(call)                            \
    do {                                          \
        const VkResult r_ = (call);               \
        if (r_ != VK_SUCCESS) fail(r_, #call);    \
    } while (0)

bool env_flag(const char* name) {
    const char* v = std::getenv(name);
    return v && std::string(v) == "1";
}

VKAPI_ATTR VkBool32 VKAPI_CALL debug_callback(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                              VkDebugUtilsMessageTypeFlagsEXT, const VkDebugUtilsMessengerCallbackDataEXT* data,
                                              void*) {
    if (severity & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)) {
        const char* text = data && data->pMessage ? data->pMessage : "(no message)";
        record_validation(text);
        std::fprintf(stderr, "[vulkan validation] %s\n", text);
    }
    return VK_FALSE;
}

std::string hex(uint64_t v, int width = 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%0*llx", width, static_cast<unsigned long long>(v));
    return buf;
}

std::string vendor_name(uint32_t id) {
    switch (id) {
        case 0x1002: return "AMD";
        case 0x10DE: return "NVIDIA";
        case 0x8086: return "Intel";
        case 0x13B5: return "ARM";
        case 0x5143: return "Qualcomm";
        case 0x1010: return "Imagination";
        case 0x106B: return "Apple";
        case 0x10005: return "Mesa";
        default: return "vendor 0x" + hex(id);
    }
}

bool has_extension(const std::vector<VkExtensionProperties>& exts, const char* name) {
    return std::any_of(exts.begin(), exts.end(), [&](const VkExtensionProperties& e) { return std::strcmp(e.extensionName, name) == 0; });
}

// ---- instance ----------------------------------------------------------------------------------

// The instance and, once opened, the logical device. Shared (shared_ptr) by the device object and
// every buffer it allocated, so handles outlive whichever of them goes last.
struct Context {
    VkInstance instance = VK_NULL_HANDLE;
    VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
    VkPhysicalDevice phys = VK_NULL_HANDLE;
    VkDevice device = VK_NULL_HANDLE;
    uint32_t api_version = VK_API_VERSION_1_1;  // instance version asked for
    bool external = false;  // the caller's instance and device (interop): never destroyed here
    bool sync_validation = false;  // our instance runs the layer's synchronization validation

    ~Context() {
        if (external) return;
        if (device) vkDestroyDevice(device, nullptr);
        if (messenger) {
            auto destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
                vkGetInstanceProcAddr(instance, "vkDestroyDebugUtilsMessengerEXT"));
            if (destroy) destroy(instance, messenger, nullptr);
        }
        if (instance) vkDestroyInstance(instance, nullptr);
    }
};

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

// ---- buffers -----------------------------------------------------------------------------------

struct VkBuf final : BufferImpl {
    std::shared_ptr<Context> ctx;
    VkBuffer buffer = VK_NULL_HANDLE;
    VkDeviceMemory memory = VK_NULL_HANDLE;
    unsigned char* mapped = nullptr;  // null: device-local only, reached through staging copies
    bool owned = true;                // false: the caller's VkBuffer (interop), never destroyed here
    fault::LiveBuffer live{Api::vulkan};
    ~VkBuf() override {
        if (!owned) return;
        if (buffer) vkDestroyBuffer(ctx->device, buffer, nullptr);
        if (memory) vkFreeMemory(ctx->device, memory, nullptr);
    }
};

VkBuf* vk(const Buffer& b) { return static_cast<VkBuf*>(b.get()); }

// ---- push-constant blocks (must match the layout(push_constant) blocks of the shaders) ----------

struct AttnPC {  // shaders/attn.glsl
    uint32_t q_off, k_off, v_off, o_off;
    uint32_t q_hs, q_ts, k_hs, k_ts;
    uint32_t v_hs, v_ts, o_hs, o_ts;
    uint32_t lq, lk, q_pos0, group;
    int32_t window;
    uint32_t idx_off, cnt_off, kept_stride;
    uint32_t stats_off, c_off, c_stride;
    float scale;
};

struct ScorePC {  // shaders/score.glsl
    uint32_t q_off, q_hs, q_ts, q_row;
    uint32_t k_off, k_hs, k_ts, n_keys;
    uint32_t group, nchunk, s_off, s_stride;
    uint32_t hq;
    float scale;
};

struct SelectPC {  // shaders/select.glsl
    uint32_t a_off, a_stride, heads, n;
    uint32_t block, nb, order_off, budget_off;
    uint32_t out_off, out_stride, cnt_off, scr_a, scr_b, scr_c;
    float alpha;
};

struct GatherPC {  // shaders/gather.comp
    uint32_t sk_off, sk_hs, sk_ts, sv_off, sv_hs, sv_ts;
    uint32_t dk_off, dk_hs, dk_ts, dv_off, dv_hs, dv_ts;
    uint32_t src_row0, idx_off, idx_stride, cnt_off, uniform_count, off_off, len_off, pos_off, pos_stride;
    int32_t pos_base;
    uint32_t flags;  // 1 idx, 2 count, 4 dst_off, 8 pos_out
    uint32_t dst_tokens, src_tokens, dim, heads;
};

struct GemmPC {  // shaders/gemm.comp
    uint32_t a_off, b_off, c_off, m, n, k;
};

static_assert(sizeof(GatherPC) <= 128 && sizeof(DecodeParams) <= 128 && sizeof(AttnPC) <= 128, "push constants over 128 bytes");

// A binding of one dispatch: a whole buffer, read or written. An empty view binds a slot of a dummy buffer.
struct Bind {
    BufView view;
    bool write = false;
};
Bind in(const BufView& v) { return {v, false}; }
Bind out(const BufView& v) { return {v, true}; }

uint32_t elem_off(const BufView& v, DType t) { return uint32_t(v.offset / dtype_size(t)); }
uint32_t int_off(const BufView& v) { return uint32_t(v.offset / 4); }

class VulkanDevice final : public Device {
public:
    VulkanDevice(int index, const BackendOptions& options) : options_(options) {
        ctx_ = create_instance(options.vulkan_validation);
        const auto pds = physical_devices(ctx_->instance);
        if (index < 0 || size_t(index) >= pds.size())
            throw Error(TCA_ERROR_DEVICE_NOT_FOUND, "no Vulkan device vulkan:" + std::to_string(index));
        ctx_->phys = pds[index];
        pi_ = query_phys(*ctx_, ctx_->phys);
        if (pi_.compute_family < 0) throw Error(TCA_ERROR_UNSUPPORTED, "vulkan: device has no compute queue");
        info_ = device_info(pi_, index);
        use_fp16_storage_ = pi_.storage16 && !env_flag("TCA_VULKAN_DISABLE_FP16_STORAGE");
        use_subgroups_ = subgroups_usable(pi_) && !env_flag("TCA_VULKAN_DISABLE_SUBGROUPS");
        decode_tuning_ = info_.type == TCA_DEVICE_CPU_DRIVER ? kDecodeCpuRow : kDecodeGpuRow;
        staging_only_ = env_flag("TCA_VULKAN_FORCE_STAGING");
        log_pipelines_ = env_flag("TCA_VULKAN_LOG_PIPELINES");
        create_device();
        create_pipeline_cache();
    }

    // On the caller's instance, device and queue (interop). Optional features are used only when the
    // caller says it enabled them; pipelines and pools are built as usual and are ours to destroy.
    VulkanDevice(const VulkanExternal& ext, const BackendOptions& options) : options_(options) {
        ctx_ = std::make_shared<Context>();
        ctx_->external = true;
        ctx_->instance = static_cast<VkInstance>(ext.instance);
        ctx_->phys = static_cast<VkPhysicalDevice>(ext.physical_device);
        ctx_->device = static_cast<VkDevice>(ext.device);
        ctx_->api_version = ext.api_version;
        const auto pds = physical_devices(ctx_->instance);
        require(std::find(pds.begin(), pds.end(), ctx_->phys) != pds.end(), TCA_ERROR_INVALID_ARGUMENT,
                "vulkan: the physical device is not one of the instance's");
        pi_ = query_phys(*ctx_, ctx_->phys);
        require(pi_.props.apiVersion >= VK_API_VERSION_1_1, TCA_ERROR_UNSUPPORTED,
                "vulkan: the physical device supports Vulkan 1.0 only; libtca needs 1.1");
        uint32_t nq = 0;
        vkGetPhysicalDeviceQueueFamilyProperties(ctx_->phys, &nq, nullptr);
        std::vector<VkQueueFamilyProperties> qf(nq);
        vkGetPhysicalDeviceQueueFamilyProperties(ctx_->phys, &nq, qf.data());
        require(ext.queue_family < nq, TCA_ERROR_INVALID_ARGUMENT,
                "vulkan: queue family " + std::to_string(ext.queue_family) + " does not exist (" + std::to_string(nq) +
                    " families)");
        require(qf[ext.queue_family].queueFlags & VK_QUEUE_COMPUTE_BIT, TCA_ERROR_INVALID_ARGUMENT,
                "vulkan: queue family " + std::to_string(ext.queue_family) + " has no compute support");
        pi_.compute_family = int(ext.queue_family);
        pi_.timestamp_bits = qf[ext.queue_family].timestampValidBits;
        info_ = device_info(pi_, 0);
        info_.name = "vulkan:external";
        use_fp16_storage_ = pi_.storage16 && ext.storage_buffer_16bit && !env_flag("TCA_VULKAN_DISABLE_FP16_STORAGE");
        use_subgroups_ = subgroups_usable(pi_) && !env_flag("TCA_VULKAN_DISABLE_SUBGROUPS");
        decode_tuning_ = info_.type == TCA_DEVICE_CPU_DRIVER ? kDecodeCpuRow : kDecodeGpuRow;
        staging_only_ = env_flag("TCA_VULKAN_FORCE_STAGING");
        log_pipelines_ = env_flag("TCA_VULKAN_LOG_PIPELINES");
        queue_ = static_cast<VkQueue>(ext.queue);
        create_queue_objects(ext.queue_family);
        create_pipeline_cache();
    }

    ~VulkanDevice() override {
        try {
            submit_and_wait();
        } catch (...) {
        }
        save_pipeline_cache();
        VkDevice d = ctx_->device;
        if (!ctx_->external) vkDeviceWaitIdle(d);  // the caller's device may be busy with its own work
        keep_alive_.clear();
        scratch_.clear();
        dummy_.reset();
        for (auto& [k, p] : pipelines_) vkDestroyPipeline(d, p, nullptr);
        for (auto& [n, l] : pipeline_layouts_) vkDestroyPipelineLayout(d, l, nullptr);
        for (auto& [n, l] : set_layouts_) vkDestroyDescriptorSetLayout(d, l, nullptr);
        for (auto& [n, m] : modules_) vkDestroyShaderModule(d, m, nullptr);
        for (auto p : desc_pools_) vkDestroyDescriptorPool(d, p, nullptr);
        if (cache_) vkDestroyPipelineCache(d, cache_, nullptr);
        if (query_pool_) vkDestroyQueryPool(d, query_pool_, nullptr);
        if (fence_) vkDestroyFence(d, fence_, nullptr);
        if (cmd_pool_) vkDestroyCommandPool(d, cmd_pool_, nullptr);
    }

    const DeviceInfo& info() const override { return info_; }

    // ---- memory ----------------------------------------------------------------------------------

    Buffer alloc(size_t bytes) override {
        require(bytes <= info_.max_allocation, TCA_ERROR_OUT_OF_MEMORY,
                "vulkan: allocation of " + std::to_string(bytes) + " bytes exceeds the device maximum of " +
                    std::to_string(info_.max_allocation));
        return make_buffer(bytes, false);
    }

    void write(const BufView& dst, const void* src, size_t bytes) override {
        require(range_fits(dst.offset, bytes, dst.buf->size), TCA_ERROR_SHAPE_MISMATCH, "write past the end of a buffer");
        if (!bytes) return;
        VkBuf* b = vk(dst.buf);
        if (b->mapped) {
            submit_and_wait();  // commands recorded earlier may still read the old contents
            std::memcpy(b->mapped + dst.offset, src, bytes);
            return;
        }
        Buffer staging = make_buffer(bytes, true);
        std::memcpy(vk(staging)->mapped, src, bytes);
        copy(BufView{staging, 0}, dst, bytes);
        submit_and_wait();
    }

    void read(const BufView& src, void* dst, size_t bytes) override {
        require(range_fits(src.offset, bytes, src.buf->size), TCA_ERROR_SHAPE_MISMATCH, "read past the end of a buffer");
        VkBuf* b = vk(src.buf);
        if (b->mapped) {
            submit_and_wait();
            if (bytes) std::memcpy(dst, b->mapped + src.offset, bytes);
            return;
        }
        if (!bytes) return submit_and_wait();
        Buffer staging = make_buffer(bytes, true);
        copy(src, BufView{staging, 0}, bytes);
        submit_and_wait();
        std::memcpy(dst, vk(staging)->mapped, bytes);
    }

    void fill_zero(const BufView& dst, size_t bytes) override {
        require(range_fits(dst.offset, bytes, dst.buf->size), TCA_ERROR_SHAPE_MISMATCH, "fill past the end of a buffer");
        if (!bytes) return;
        if (dst.offset % 4 || bytes % 4) {  // vkCmdFillBuffer works in words; odd ranges go through the host
            std::vector<unsigned char> zeros(bytes, 0);
            write(dst, zeros.data(), bytes);
            return;
        }
        VkBuf* b = vk(dst.buf);
        hazard({}, {b->buffer});
        vkCmdFillBuffer(cmd(), b->buffer, dst.offset, bytes, 0);
        keep_alive_.push_back(dst.buf);
    }

    void finish() override { submit_and_wait(); }

    std::vector<OpTiming> take_timings() override {
        submit_and_wait();
        return std::exchange(timings_, {});
    }

    // ---- ops -------------------------------------------------------------------------------------

    void prefill(const PrefillArgs& a) override;
    void decode(const DecodeArgs& a) override;
    int decode_splits(const DecodeArgs& a) const override;
    void score(const ScoreArgs& a) override;
    void metric(const MetricArgs& a) override;
    void rank(const RankArgs& a) override;
    void select(const SelectArgs& a) override;
    void gather(const GatherArgs& a) override;
    void colsum(const ColsumArgs& a) override;
    void stream_copy(const CopyArgs& a) override;
    void gemm(const GemmArgs& a) override;
    bool gemm_supported(DType t) const override { return t == DType::f32; }
    std::string gemm_engine(DType t) const override { return t == DType::f32 ? "tca gemm.comp (f32)" : ""; }

    // The caller's VkBuffer (interop) as one of our buffers: bound whole like ours, never destroyed.
    Buffer wrap(VkBuffer buffer, uint64_t size) {
        require(size <= info_.max_allocation, TCA_ERROR_UNSUPPORTED,
                "vulkan: a buffer of " + std::to_string(size) + " bytes exceeds the device's storage-buffer range of " +
                    std::to_string(info_.max_allocation) + " bytes (every binding is a whole buffer)");
        VkMemoryRequirements req;
        vkGetBufferMemoryRequirements(ctx_->device, buffer, &req);
        require(size <= req.size, TCA_ERROR_INVALID_ARGUMENT,
                "vulkan: buffer_size " + std::to_string(size) + " is larger than the VkBuffer (" + std::to_string(req.size) +
                    " bytes of memory requirements)");
        auto b = std::make_shared<VkBuf>();
        b->ctx = ctx_;
        b->buffer = buffer;
        b->size = size;
        b->owned = false;
        return b;
    }

    // ---- test hooks ------------------------------------------------------------------------------
    size_t cache_bytes_loaded() const { return cache_bytes_loaded_; }
    const std::string& cache_path() const { return cache_path_; }
    bool fp16_storage_on() const { return use_fp16_storage_; }
    bool subgroups_on() const { return use_subgroups_; }
    DecodeTuning set_decode_tuning(const DecodeTuning& t) { return std::exchange(decode_tuning_, t); }
    void build_broken_shader() {
        static const uint32_t garbage[] = {0x12345678u, 0x00010000u, 0, 5, 0};
        create_module("broken", reinterpret_cast<const unsigned char*>(garbage), sizeof garbage);
    }
    bool sync_validation_on() const { return ctx_->sync_validation; }
    void unsynchronised_writes() {
        Buffer b = make_buffer(256, false);
        keep_alive_.push_back(b);
        VkCommandBuffer c = cmd();
        vkCmdFillBuffer(c, vk(b)->buffer, 0, 256, 1);
        vkCmdFillBuffer(c, vk(b)->buffer, 0, 256, 2);  // on purpose without the barrier hazard() would add
        submit_and_wait();
    }
    void leak_buffer() {
        VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
        bci.size = 256;
        bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
        VkBuffer b = VK_NULL_HANDLE;
        VK_CHECK(vkCreateBuffer(ctx_->device, &bci, nullptr, &b));  // never destroyed, on purpose
    }
    void release_scratch() {
        submit_and_wait();  // recorded commands may use them
        scratch_.clear();
        dummy_.reset();
    }

private:
    // ---- device setup ----------------------------------------------------------------------------

    void create_device() {
        const float priority = 1.0f;
        VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
        qci.queueFamilyIndex = uint32_t(pi_.compute_family);
        qci.queueCount = 1;
        qci.pQueuePriorities = &priority;
        VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
        VkPhysicalDevice16BitStorageFeatures s16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
        s16.storageBuffer16BitAccess = use_fp16_storage_ ? VK_TRUE : VK_FALSE;
        f2.pNext = &s16;
        uint32_t n = 0;
        vkEnumerateDeviceExtensionProperties(ctx_->phys, nullptr, &n, nullptr);
        std::vector<VkExtensionProperties> exts(n);
        vkEnumerateDeviceExtensionProperties(ctx_->phys, nullptr, &n, exts.data());
        std::vector<const char*> enabled;
        // Required on portability (non-conformant) implementations when they advertise it.
        if (has_extension(exts, "VK_KHR_portability_subset")) enabled.push_back("VK_KHR_portability_subset");
        VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
        dci.pNext = &f2;
        dci.queueCreateInfoCount = 1;
        dci.pQueueCreateInfos = &qci;
        dci.enabledExtensionCount = uint32_t(enabled.size());
        dci.ppEnabledExtensionNames = enabled.data();
        VK_CHECK(vkCreateDevice(ctx_->phys, &dci, nullptr, &ctx_->device));
        vkGetDeviceQueue(ctx_->device, qci.queueFamilyIndex, 0, &queue_);
        create_queue_objects(qci.queueFamilyIndex);
    }

    // Command pool and buffer, fence and timestamp pool for the queue of `family`.
    void create_queue_objects(uint32_t family) {
        VkCommandPoolCreateInfo cpi{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
        cpi.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
        cpi.queueFamilyIndex = family;
        VK_CHECK(vkCreateCommandPool(ctx_->device, &cpi, nullptr, &cmd_pool_));
        VkCommandBufferAllocateInfo cai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
        cai.commandPool = cmd_pool_;
        cai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
        cai.commandBufferCount = 1;
        VK_CHECK(vkAllocateCommandBuffers(ctx_->device, &cai, &cb_));
        VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        VK_CHECK(vkCreateFence(ctx_->device, &fci, nullptr, &fence_));
        if (pi_.timestamp_bits > 0) {
            VkQueryPoolCreateInfo qpi{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
            qpi.queryType = VK_QUERY_TYPE_TIMESTAMP;
            qpi.queryCount = kMaxQueries;
            VK_CHECK(vkCreateQueryPool(ctx_->device, &qpi, nullptr, &query_pool_));
        }
    }

    // ---- buffers ---------------------------------------------------------------------------------

    Buffer make_buffer(size_t bytes, bool host_staging) {
        auto b = std::make_shared<VkBuf>();
        b->ctx = ctx_;
        b->size = bytes;
        VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
        bci.size = std::max<size_t>((bytes + 3) & ~size_t(3), 16);  // zero-sized buffers are invalid
        bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
        bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
        // Both calls may fail as a test injects (device/fault_injection.h); b's destructor frees what exists.
        VK_CHECK(fault::inject(fault::Kind::alloc) ? VK_ERROR_OUT_OF_DEVICE_MEMORY
                                                   : vkCreateBuffer(ctx_->device, &bci, nullptr, &b->buffer));
        VkMemoryRequirements req;
        vkGetBufferMemoryRequirements(ctx_->device, b->buffer, &req);
        const VkMemoryPropertyFlags DL = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                    HV = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        int type = -1;
        // Staging buffers want host-visible memory; data buffers want device-local memory that the host
        // can also map (lavapipe, iGPUs, ReBAR), else plain device-local reached through staging.
        const std::vector<VkMemoryPropertyFlags> prefs =
            host_staging ? std::vector<VkMemoryPropertyFlags>{HV}
            : staging_only_ ? std::vector<VkMemoryPropertyFlags>{DL, 0}
                            : std::vector<VkMemoryPropertyFlags>{DL | HV, DL, HV};
        for (VkMemoryPropertyFlags want : prefs) {
            type = find_memory_type(req.memoryTypeBits, want);
            if (type >= 0) break;
        }
        if (type < 0) throw Error(TCA_ERROR_BACKEND, "vulkan: no memory type for a storage buffer");
        VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
        mai.allocationSize = req.size;
        mai.memoryTypeIndex = uint32_t(type);
        VkResult r = fault::inject(fault::Kind::alloc) ? VK_ERROR_OUT_OF_DEVICE_MEMORY
                                                       : vkAllocateMemory(ctx_->device, &mai, nullptr, &b->memory);
        if (r != VK_SUCCESS) fail(r, "vkAllocateMemory", TCA_ERROR_OUT_OF_MEMORY);
        VK_CHECK(vkBindBufferMemory(ctx_->device, b->buffer, b->memory, 0));
        const bool visible = pi_.mem.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT;
        if (visible && (host_staging || !staging_only_)) {
            void* p = nullptr;
            VK_CHECK(vkMapMemory(ctx_->device, b->memory, 0, VK_WHOLE_SIZE, 0, &p));
            b->mapped = static_cast<unsigned char*>(p);
        }
        return b;
    }

    int find_memory_type(uint32_t bits, VkMemoryPropertyFlags want) const {
        for (uint32_t i = 0; i < pi_.mem.memoryTypeCount; ++i)
            if ((bits & (1u << i)) && (pi_.mem.memoryTypes[i].propertyFlags & want) == want) return int(i);
        return -1;
    }

    void copy(const BufView& src, const BufView& dst, size_t bytes) {
        hazard({vk(src.buf)->buffer}, {vk(dst.buf)->buffer});
        VkBufferCopy region{src.offset, dst.offset, bytes};
        vkCmdCopyBuffer(cmd(), vk(src.buf)->buffer, vk(dst.buf)->buffer, 1, &region);
        keep_alive_.push_back(src.buf);
        keep_alive_.push_back(dst.buf);
    }

    // Internal scratch (split-K partials, softmax statistics, selection counters): one grow-only buffer
    // per slot. Reuse across ops is ordered by the same hazard tracking as user buffers.
    BufView scratch(int slot, size_t bytes) {
        Buffer& b = scratch_[slot];
        if (!b || b->size < bytes) {
            if (b) keep_alive_.push_back(b);  // recorded commands may still use the old one
            require(bytes <= info_.max_allocation, TCA_ERROR_OUT_OF_MEMORY, "vulkan: scratch buffer past the device maximum");
            b = make_buffer(std::max<size_t>(bytes, 256), false);
        }
        return BufView{b, 0};
    }

    // What an absent optional binding points at: a slot of the dummy buffer that no other dispatch since
    // the last barrier was given. Shaders statically write some optional bindings (behind a branch that
    // is not taken when the buffer is absent), and the validation layer counts static use as access:
    // one dummy shared by consecutive dispatches read as RAW/WAR/WAW hazards on it. A barrier would
    // order accesses that never happen; distinct slots leave nothing to order. When every slot is
    // taken, one barrier frees them all: hazard(..., true) records it before the dispatch asks for a slot.
    VkDescriptorBufferInfo dummy_slot() {
        const VkDeviceSize align = std::max<VkDeviceSize>(pi_.props.limits.minStorageBufferOffsetAlignment, 4);
        const VkDeviceSize slot = (16 + align - 1) / align * align;
        if (!dummy_) dummy_ = make_buffer(size_t(slot) * kDummySlots, false);
        if (dummy_slots_used_ == kDummySlots) throw Error(TCA_ERROR_INTERNAL, "vulkan: no free dummy slot");
        return {vk(dummy_)->buffer, slot * dummy_slots_used_++, slot};
    }

    // ---- command recording and synchronisation ---------------------------------------------------

    VkCommandBuffer cmd() {
        if (!recording_) {
            VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
            bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
            VK_CHECK(vkBeginCommandBuffer(cb_, &bi));
            recording_ = true;
            queries_used_ = 0;
            if (query_pool_) vkCmdResetQueryPool(cb_, query_pool_, 0, kMaxQueries);
            if (ctx_->external) {
                // The caller's earlier submissions to this queue (which may have written our inputs)
                // complete, and their writes become visible, before anything of ours runs.
                VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
                mb.srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT;
                mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                                   VK_ACCESS_TRANSFER_WRITE_BIT;
                vkCmdPipelineBarrier(cb_, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                                     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0,
                                     nullptr, 0, nullptr);
            }
        }
        return cb_;
    }

    // Inserts a barrier when a command about to be recorded reads or writes a buffer written since the
    // last barrier (RAW, WAW), or writes one read since then (WAR), or needs a dummy slot and none is
    // free (see dummy_slot). Tracking is per VkBuffer.
    void hazard(const std::vector<VkBuffer>& reads, const std::vector<VkBuffer>& writes, bool takes_dummy_slot = false) {
        bool need = takes_dummy_slot && dummy_slots_used_ == kDummySlots;
        for (VkBuffer b : reads) need = need || written_.count(b);
        for (VkBuffer b : writes) need = need || written_.count(b) || read_.count(b);
        if (need) barrier();
        read_.insert(reads.begin(), reads.end());
        written_.insert(writes.begin(), writes.end());
    }

    // Orders every compute and transfer access recorded so far before every later one.
    void barrier() {
        VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
        mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
        mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                           VK_ACCESS_TRANSFER_WRITE_BIT;
        const VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
        vkCmdPipelineBarrier(cmd(), stages, stages, 0, 1, &mb, 0, nullptr, 0, nullptr);
        written_.clear();
        read_.clear();
        dummy_slots_used_ = 0;
    }

    void submit_and_wait() {
        if (!recording_) {
            keep_alive_.clear();
            return;
        }
        // Make device writes visible to host reads of mapped memory after the fence.
        VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
        mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
        mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
        vkCmdPipelineBarrier(cb_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr, 0, nullptr);
        if (ctx_->external) {
            // The caller's later submissions to this queue see our writes without barriers of their own.
            mb.dstAccessMask = VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT;
            vkCmdPipelineBarrier(cb_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                                 VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, 0, 1, &mb, 0, nullptr, 0, nullptr);
        }
        recording_ = false;
        written_.clear();
        read_.clear();
        dummy_slots_used_ = 0;
        VK_CHECK(vkEndCommandBuffer(cb_));
        VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
        si.commandBufferCount = 1;
        si.pCommandBuffers = &cb_;
        VK_CHECK(vkQueueSubmit(queue_, 1, &si, fence_));
        VK_CHECK(vkWaitForFences(ctx_->device, 1, &fence_, VK_TRUE, UINT64_MAX));
        VK_CHECK(vkResetFences(ctx_->device, 1, &fence_));
        collect_timings();
        VK_CHECK(vkResetCommandBuffer(cb_, 0));
        for (auto p : desc_pools_) VK_CHECK(vkResetDescriptorPool(ctx_->device, p, 0));
        pool_index_ = 0;
        keep_alive_.clear();
    }

    // ---- profiling -------------------------------------------------------------------------------

    struct PendingTiming {
        std::string op;
        uint32_t q0;  // begin query; end is q0 + 1
    };

    // Brackets one op with timestamps when profiling is on.
    class OpScope {
    public:
        OpScope(VulkanDevice* d, const char* op) : d_(d) {
            if (!d_->profiling_) return;
            if (!d_->query_pool_) {  // no timestamps on this queue: record the op with 0 ms
                d_->timings_.push_back({op, 0.0});
                return;
            }
            if (d_->queries_used_ + 2 > kMaxQueries) d_->submit_and_wait();
            VkCommandBuffer c = d_->cmd();
            q0_ = d_->queries_used_;
            d_->queries_used_ += 2;
            // BOTTOM_OF_PIPE: written once every earlier command has completed.
            vkCmdWriteTimestamp(c, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, d_->query_pool_, q0_);
            d_->pending_timings_.push_back({op, q0_});
            active_ = true;
        }
        ~OpScope() {
            if (active_) vkCmdWriteTimestamp(d_->cmd(), VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, d_->query_pool_, q0_ + 1);
        }

    private:
        VulkanDevice* d_;
        uint32_t q0_ = 0;
        bool active_ = false;
    };

    void collect_timings() {
        if (pending_timings_.empty()) return;
        std::vector<uint64_t> ts(queries_used_);
        VK_CHECK(vkGetQueryPoolResults(ctx_->device, query_pool_, 0, queries_used_, ts.size() * 8, ts.data(), 8,
                                       VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
        const uint64_t mask = pi_.timestamp_bits >= 64 ? ~0ull : ((1ull << pi_.timestamp_bits) - 1);
        for (const auto& p : pending_timings_) {
            const uint64_t ticks = (ts[p.q0 + 1] - ts[p.q0]) & mask;
            timings_.push_back({p.op, double(ticks) * pi_.props.limits.timestampPeriod * 1e-6});
        }
        pending_timings_.clear();
    }

    // ---- pipelines -------------------------------------------------------------------------------

    VkShaderModule module(const std::string& name) {
        auto it = modules_.find(name);
        if (it != modules_.end()) return it->second;
        const EmbeddedFile* f = embedded_spirv(name);
        if (!f) throw Error(TCA_ERROR_INTERNAL, "vulkan: shader " + name + " was not embedded in this build");
        return modules_[name] = create_module(name, f->data, f->size);
    }

    VkShaderModule create_module(const std::string& name, const unsigned char* data, size_t size) {
        // Reject what is plainly not SPIR-V ourselves: drivers may crash on it rather than fail.
        uint32_t magic = 0;
        if (size >= 4) std::memcpy(&magic, data, 4);
        if (size < 20 || size % 4 || magic != 0x07230203u)
            throw Error(TCA_ERROR_KERNEL_BUILD, "vulkan: shader " + name + " is not a valid SPIR-V module");
        std::vector<uint32_t> words(size / 4);
        std::memcpy(words.data(), data, size);
        VkShaderModuleCreateInfo ci{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
        ci.codeSize = size;
        ci.pCode = words.data();
        VkShaderModule m = VK_NULL_HANDLE;
        // A driver's rejection, or a test's injected build failure (device/fault_injection.h).
        const VkResult r = fault::inject(fault::Kind::build) ? VK_ERROR_INVALID_SHADER_NV
                                                             : vkCreateShaderModule(ctx_->device, &ci, nullptr, &m);
        if (r != VK_SUCCESS) fail(r, ("vkCreateShaderModule(" + name + ")").c_str(), TCA_ERROR_KERNEL_BUILD);
        return m;
    }

    VkPipelineLayout layout_for(uint32_t n_bindings, VkDescriptorSetLayout* set_layout) {
        auto& sl = set_layouts_[n_bindings];
        if (!sl) {
            std::vector<VkDescriptorSetLayoutBinding> b(n_bindings);
            for (uint32_t i = 0; i < n_bindings; ++i)
                b[i] = {i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
            VkDescriptorSetLayoutCreateInfo ci{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
            ci.bindingCount = n_bindings;
            ci.pBindings = b.data();
            VK_CHECK(vkCreateDescriptorSetLayout(ctx_->device, &ci, nullptr, &sl));
        }
        *set_layout = sl;
        auto& pl = pipeline_layouts_[n_bindings];
        if (!pl) {
            VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, 128};  // 128: the guaranteed minimum
            VkPipelineLayoutCreateInfo ci{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
            ci.setLayoutCount = 1;
            ci.pSetLayouts = &sl;
            ci.pushConstantRangeCount = 1;
            ci.pPushConstantRanges = &range;
            VK_CHECK(vkCreatePipelineLayout(ctx_->device, &ci, nullptr, &pl));
        }
        return pl;
    }

    // The pipeline for a shader and its specialization constants (constant_id i = spec[i]).
    VkPipeline pipeline(const std::string& shader, const std::vector<uint32_t>& spec, uint32_t n_bindings) {
        std::string key = shader + "/" + std::to_string(n_bindings);
        for (uint32_t v : spec) key += ":" + std::to_string(v);
        auto it = pipelines_.find(key);
        if (it != pipelines_.end()) return it->second;
        VkDescriptorSetLayout sl;
        VkPipelineLayout pl = layout_for(n_bindings, &sl);
        std::vector<VkSpecializationMapEntry> entries(spec.size());
        for (size_t i = 0; i < spec.size(); ++i) entries[i] = {uint32_t(i), uint32_t(i * 4), 4};
        VkSpecializationInfo si{uint32_t(entries.size()), entries.data(), spec.size() * 4, spec.data()};
        VkComputePipelineCreateInfo ci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
        ci.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
        ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
        ci.stage.module = module(shader);
        ci.stage.pName = "main";
        ci.stage.pSpecializationInfo = &si;
        ci.layout = pl;
        VkPipeline p = VK_NULL_HANDLE;
        const auto t0 = std::chrono::steady_clock::now();
        // Injected failures fire whether or not the pipeline cache holds this pipeline.
        const VkResult r = fault::inject(fault::Kind::build) ? VK_ERROR_INVALID_SHADER_NV
                                                             : vkCreateComputePipelines(ctx_->device, cache_, 1, &ci, nullptr, &p);
        if (r != VK_SUCCESS) fail(r, ("vkCreateComputePipelines(" + key + ")").c_str(), TCA_ERROR_KERNEL_BUILD);
        if (log_pipelines_)  // driver compile times matter on CPU drivers: TCA_VULKAN_LOG_PIPELINES=1
            std::fprintf(stderr, "tca: vulkan pipeline %s built in %.0f ms\n", key.c_str(),
                         std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        cache_dirty_ = true;
        return pipelines_[key] = p;
    }

    VkDescriptorSet descriptor_set(VkDescriptorSetLayout layout) {
        for (;; ++pool_index_) {
            if (pool_index_ == desc_pools_.size()) {
                VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kSetsPerPool * 12};
                VkDescriptorPoolCreateInfo ci{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
                ci.maxSets = kSetsPerPool;
                ci.poolSizeCount = 1;
                ci.pPoolSizes = &size;
                VkDescriptorPool pool;
                VK_CHECK(vkCreateDescriptorPool(ctx_->device, &ci, nullptr, &pool));
                desc_pools_.push_back(pool);
            }
            VkDescriptorSetAllocateInfo ai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
            ai.descriptorPool = desc_pools_[pool_index_];
            ai.descriptorSetCount = 1;
            ai.pSetLayouts = &layout;
            VkDescriptorSet set;
            const VkResult r = vkAllocateDescriptorSets(ctx_->device, &ai, &set);
            if (r == VK_SUCCESS) return set;
            if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL) fail(r, "vkAllocateDescriptorSets");
        }
    }

    // The one way kernels run: pipeline by name + specialization, push constants, whole-buffer
    // bindings 0..n-1 (barriers derived from their read/write flags), and a grid of workgroups.
    template <class PC>
    void dispatch(const std::string& shader, const std::vector<uint32_t>& spec, const PC& pc,
                  const std::vector<Bind>& binds, uint32_t gx, uint32_t gy = 1, uint32_t gz = 1) {
        static_assert(sizeof(PC) <= 128, "push constants over 128 bytes");
        if (gx == 0 || gy == 0 || gz == 0) return;
        const uint32_t max_x = pi_.props.limits.maxComputeWorkGroupCount[0], max_y = pi_.props.limits.maxComputeWorkGroupCount[1];
        require(gx <= max_x && gy <= max_y, TCA_ERROR_UNSUPPORTED, "vulkan: problem too large for one dispatch grid");
        const uint32_t n = uint32_t(binds.size());
        VkPipeline p = pipeline(shader, spec, n);
        VkDescriptorSetLayout sl;
        VkPipelineLayout pl = layout_for(n, &sl);
        VkDescriptorSet set = descriptor_set(sl);
        std::vector<VkBuffer> reads, wrs;
        bool any_absent = false;
        for (const Bind& b : binds) {
            if (!b.view) {  // never accessed: not tracked for barriers (see dummy_slot)
                any_absent = true;
                continue;
            }
            keep_alive_.push_back(b.view.buf);
            (b.write ? wrs : reads).push_back(vk(b.view.buf)->buffer);
        }
        // The barrier, if any, comes first: it frees the dummy slots, and this dispatch's comes after it.
        hazard(reads, wrs, any_absent);
        const VkDescriptorBufferInfo absent = any_absent ? dummy_slot() : VkDescriptorBufferInfo{};
        std::vector<VkDescriptorBufferInfo> infos(n);
        std::vector<VkWriteDescriptorSet> writes(n);
        for (uint32_t i = 0; i < n; ++i) {
            infos[i] = binds[i].view ? VkDescriptorBufferInfo{vk(binds[i].view.buf)->buffer, 0, VK_WHOLE_SIZE} : absent;
            writes[i] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
            writes[i].dstSet = set;
            writes[i].dstBinding = i;
            writes[i].descriptorCount = 1;
            writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
            writes[i].pBufferInfo = &infos[i];
        }
        vkUpdateDescriptorSets(ctx_->device, n, writes.data(), 0, nullptr);
        VkCommandBuffer c = cmd();
        vkCmdBindPipeline(c, VK_PIPELINE_BIND_POINT_COMPUTE, p);
        vkCmdBindDescriptorSets(c, VK_PIPELINE_BIND_POINT_COMPUTE, pl, 0, 1, &set, 0, nullptr);
        vkCmdPushConstants(c, pl, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(PC), &pc);
        vkCmdDispatch(c, gx, gy, gz);
    }

    // Shader of a K/V-reading family: the native-fp16-storage module only when it is needed and usable
    // (it declares the StorageBuffer16BitAccess capability, which a specialization constant cannot remove).
    std::string kv_shader(const char* family, DType kv) const {
        return std::string(family) + (kv == DType::f16 && use_fp16_storage_ ? "_f16.comp" : ".comp");
    }
    uint32_t sg() const { return use_subgroups_ ? 1u : 0u; }

    // ---- pipeline cache --------------------------------------------------------------------------

    // File layout: magic, payload size, FNV-1a hash of the payload, payload (vkGetPipelineCacheData).
    static constexpr uint32_t kCacheMagic = 0x54434156;  // "VACT"

    static uint64_t fnv1a(const unsigned char* p, size_t n) {
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
        return h;
    }

    void create_pipeline_cache() {
        std::vector<unsigned char> payload;
        if (!options_.cache_dir.empty()) {
            std::string uuid;
            for (uint8_t b : pi_.props.pipelineCacheUUID) uuid += hex(b, 2);
            cache_path_ = options_.cache_dir + "/vulkan-" + hex(pi_.props.vendorID, 4) + "-" + hex(pi_.props.deviceID, 4) +
                          "-" + hex(pi_.props.driverVersion, 8) + "-" + uuid + ".pipelines";
            payload = load_cache_file(cache_path_);
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

    // The payload of a cache file, or nothing when it is missing, truncated, corrupt or for another device.
    std::vector<unsigned char> load_cache_file(const std::string& path) const {
        std::ifstream f(path, std::ios::binary);
        if (!f) return {};
        std::vector<unsigned char> all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        const size_t head = 16;
        if (all.size() < head) return {};
        uint32_t magic, size;
        uint64_t hash;
        std::memcpy(&magic, all.data(), 4);
        std::memcpy(&size, all.data() + 4, 4);
        std::memcpy(&hash, all.data() + 8, 8);
        if (magic != kCacheMagic || size != all.size() - head || fnv1a(all.data() + head, size) != hash) return {};
        std::vector<unsigned char> payload(all.begin() + head, all.end());
        // The driver's own header (VkPipelineCacheHeaderVersionOne) must name this device.
        if (payload.size() < 32) return {};
        uint32_t hlen, hver, vendor, device;
        std::memcpy(&hlen, payload.data(), 4);
        std::memcpy(&hver, payload.data() + 4, 4);
        std::memcpy(&vendor, payload.data() + 8, 4);
        std::memcpy(&device, payload.data() + 12, 4);
        if (hlen < 32 || hver != VK_PIPELINE_CACHE_HEADER_VERSION_ONE || vendor != pi_.props.vendorID ||
            device != pi_.props.deviceID || std::memcmp(payload.data() + 16, pi_.props.pipelineCacheUUID, VK_UUID_SIZE) != 0)
            return {};
        return payload;
    }

    void save_pipeline_cache() {
        if (cache_path_.empty() || !cache_ || !cache_dirty_) return;
        size_t n = 0;
        if (vkGetPipelineCacheData(ctx_->device, cache_, &n, nullptr) != VK_SUCCESS || n == 0) return;
        std::vector<unsigned char> all(16 + n);
        if (vkGetPipelineCacheData(ctx_->device, cache_, &n, all.data() + 16) != VK_SUCCESS) return;
        all.resize(16 + n);
        const uint32_t magic = kCacheMagic, size = uint32_t(n);
        const uint64_t hash = fnv1a(all.data() + 16, n);
        std::memcpy(all.data(), &magic, 4);
        std::memcpy(all.data() + 4, &size, 4);
        std::memcpy(all.data() + 8, &hash, 8);
        // Written to a temporary and renamed, so a concurrent reader never sees half a file.
        make_dirs(options_.cache_dir);
        const std::string tmp = cache_path_ + ".tmp." + std::to_string(::getpid());
        {
            std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
            if (!f) return;
            f.write(reinterpret_cast<const char*>(all.data()), std::streamsize(all.size()));
            if (!f) {
                std::remove(tmp.c_str());
                return;
            }
        }
        if (std::rename(tmp.c_str(), cache_path_.c_str()) != 0) std::remove(tmp.c_str());
        cache_dirty_ = false;
    }

    static void make_dirs(const std::string& dir) {
        for (size_t i = 1; i <= dir.size(); ++i)
            if (i == dir.size() || dir[i] == '/') ::mkdir(dir.substr(0, i).c_str(), 0755);
    }

    // ---- state -----------------------------------------------------------------------------------

    static constexpr uint32_t kMaxQueries = 512;
    static constexpr uint32_t kSetsPerPool = 256;
    static constexpr uint32_t kDummySlots = 64;  // dispatches with absent bindings between two barriers

    BackendOptions options_;
    std::shared_ptr<Context> ctx_;
    PhysInfo pi_;
    DeviceInfo info_;
    bool use_fp16_storage_ = false, use_subgroups_ = false, staging_only_ = false, log_pipelines_ = false;
    DecodeTuning decode_tuning_{};  // the device class's row (device/decode_tuning.h), or a test's
    std::vector<uint32_t> decode_spec(const DecodeArgs& a, uint32_t mode);

    VkQueue queue_ = VK_NULL_HANDLE;
    VkCommandPool cmd_pool_ = VK_NULL_HANDLE;
    VkCommandBuffer cb_ = VK_NULL_HANDLE;
    VkFence fence_ = VK_NULL_HANDLE;
    bool recording_ = false;
    std::set<VkBuffer> written_, read_;
    std::vector<Buffer> keep_alive_;

    std::vector<VkDescriptorPool> desc_pools_;
    size_t pool_index_ = 0;

    std::map<std::string, VkShaderModule> modules_;
    std::map<uint32_t, VkDescriptorSetLayout> set_layouts_;
    std::map<uint32_t, VkPipelineLayout> pipeline_layouts_;
    std::map<std::string, VkPipeline> pipelines_;
    VkPipelineCache cache_ = VK_NULL_HANDLE;
    std::string cache_path_;
    size_t cache_bytes_loaded_ = 0;
    bool cache_dirty_ = false;

    VkQueryPool query_pool_ = VK_NULL_HANDLE;
    uint32_t queries_used_ = 0;
    std::vector<PendingTiming> pending_timings_;
    std::vector<OpTiming> timings_;

    std::map<int, Buffer> scratch_;
    Buffer dummy_;
    uint32_t dummy_slots_used_ = 0;  // since the last barrier

    // Tile shape of the flash-attention family for head dim d (see shaders/attn.glsl).
    struct AttnTiles {
        uint32_t br, bc, tpr;
        bool sg;
    };
    AttnTiles attn_tiles(int dim) const;
    std::vector<uint32_t> attn_spec(const AttnTiles& t, int dim, DType kv, uint32_t mode, bool sparse) const {
        return {t.br * t.tpr, t.br, t.bc, uint32_t(dim), t.tpr, kv == DType::f16 ? 1u : 0u, t.sg ? 1u : 0u, mode, sparse ? 1u : 0u};
    }
};

// ---- the ops ------------------------------------------------------------------------------------

// Workgroup scratch slots.
enum Slot { kSlotPartials = 0, kSlotStats = 1, kSlotSelect = 2 };

constexpr uint32_t kSmallWG = 64;  // decode / score / select / gather workgroups

uint32_t ceil_div(uint64_t a, uint64_t b) { return uint32_t((a + b - 1) / b); }

VulkanDevice::AttnTiles VulkanDevice::attn_tiles(int dim) const {
    AttnTiles t{};
    const uint32_t d4 = uint32_t(dim) / 4;
    // Threads per query row split the head dim. GPUs: 4 keeps per-thread state (q slice, o slice)
    // small. CPU drivers: 1, so all SIMD lanes of an invocation group read the same K/V address.
    t.tpr = info_.type == TCA_DEVICE_CPU_DRIVER ? 1 : 4;
    t.br = 32;
    if (const char* e = std::getenv("TCA_VULKAN_ATTN_TPR")) t.tpr = uint32_t(std::atoi(e));  // tuning knobs
    if (const char* e = std::getenv("TCA_VULKAN_ATTN_BR")) t.br = uint32_t(std::atoi(e));
    if (t.tpr != 1 && t.tpr != 2 && t.tpr != 4) t.tpr = 4;
    t.br = std::clamp<uint32_t>(t.br, 32 / t.tpr, 256 / t.tpr);  // WG >= BC (column staging), <= 256
    while (t.tpr > 1 && t.tpr > d4) t.tpr /= 2;
    t.sg = use_subgroups_ && pi_.subgroup.subgroupSize >= t.tpr && (t.br * t.tpr) % pi_.subgroup.subgroupSize == 0;
    const uint32_t shared = pi_.props.limits.maxComputeSharedMemorySize;
    // Largest key tile whose shared footprint (K or V tile, positions, stats, per-row scores, and the
    // partial-dot reduction area when subgroups are off) fits; 32 at most (one mask word per tile).
    for (t.bc = 32; t.bc > 4; t.bc /= 2) {
        const uint32_t bytes = t.bc * d4 * 16 + t.bc * 12 + t.br * t.bc * 4 + (t.sg || t.tpr == 1 ? 0 : t.br * t.tpr * t.bc * 4);
        if (bytes + 256 <= shared) break;
    }
    return t;
}

void VulkanDevice::prefill(const PrefillArgs& a) {
    validate(a);
    OpScope op(this, a.sparse() ? "attend_sparse" : "attend_dense");
    const AttnTiles t = attn_tiles(a.q.dim);
    AttnPC pc{};
    pc.q_off = elem_off(a.q.data, DType::f32), pc.q_hs = uint32_t(a.q.head_stride), pc.q_ts = uint32_t(a.q.token_stride);
    pc.k_off = elem_off(a.k.data, a.k.dtype), pc.k_hs = uint32_t(a.k.head_stride), pc.k_ts = uint32_t(a.k.token_stride);
    pc.v_off = elem_off(a.v.data, a.v.dtype), pc.v_hs = uint32_t(a.v.head_stride), pc.v_ts = uint32_t(a.v.token_stride);
    pc.o_off = elem_off(a.o.data, DType::f32), pc.o_hs = uint32_t(a.o.head_stride), pc.o_ts = uint32_t(a.o.token_stride);
    pc.lq = uint32_t(a.q.tokens), pc.lk = uint32_t(a.k.tokens), pc.q_pos0 = uint32_t(a.q_pos0);
    pc.group = uint32_t(a.q.heads / a.k.heads);
    pc.scale = default_scale(a.scale, a.q.dim);
    if (a.sparse()) {
        pc.window = a.window;
        pc.idx_off = int_off(a.kept_idx), pc.cnt_off = int_off(a.kept_count), pc.kept_stride = uint32_t(a.kept_stride);
    }
    dispatch(kv_shader("attn", a.k.dtype), attn_spec(t, a.q.dim, a.k.dtype, 0, a.sparse()), pc,
             {in(a.q.data), in(a.k.data), in(a.v.data), out(a.o.data), in(a.kept_idx), in(a.kept_count), {}, {}},
             ceil_div(a.q.tokens, t.br), uint32_t(a.q.heads));
}

void VulkanDevice::colsum(const ColsumArgs& a) {
    validate(a);
    OpScope op(this, "colsum");
    const AttnTiles t = attn_tiles(a.q.dim);
    const uint32_t L = uint32_t(a.q.tokens);
    AttnPC pc{};
    pc.q_off = elem_off(a.q.data, DType::f32), pc.q_hs = uint32_t(a.q.head_stride), pc.q_ts = uint32_t(a.q.token_stride);
    pc.k_off = elem_off(a.k.data, a.k.dtype), pc.k_hs = uint32_t(a.k.head_stride), pc.k_ts = uint32_t(a.k.token_stride);
    pc.lq = L, pc.lk = L, pc.group = uint32_t(a.q.heads / a.k.heads);
    pc.c_off = int_off(a.c), pc.c_stride = uint32_t(a.c_stride);
    pc.scale = default_scale(a.scale, a.q.dim);
    // Pass 1: each query row's softmax max and sum (flash-style, no V). Pass 2: per key tile, the sum
    // over query rows of the normalised probabilities, recomputing q.k; nothing L x L is stored.
    BufView stats = scratch(kSlotStats, checked_product({a.q.heads, L, 8}, "colsum statistics"));
    dispatch(kv_shader("attn", a.k.dtype), attn_spec(t, a.q.dim, a.k.dtype, 1, false), pc,
             {in(a.q.data), in(a.k.data), {}, {}, {}, {}, out(stats), {}}, ceil_div(L, t.br), uint32_t(a.q.heads));
    dispatch(kv_shader("attn", a.k.dtype), attn_spec(t, a.q.dim, a.k.dtype, 2, false), pc,
             {in(a.q.data), in(a.k.data), {}, {}, {}, {}, in(stats), out(a.c)}, ceil_div(L, t.br), uint32_t(a.k.heads));
}

// Specialization constants of shaders/decode.glsl for `a`, in id order (iface_decode.h): lanes per
// row, subgroup width of the partial-dot reduction, and the largest tile (<= the tuning's) whose
// shared memory fits.
std::vector<uint32_t> VulkanDevice::decode_spec(const DecodeArgs& a, uint32_t mode) {
    const DecodeTuning& t = decode_tuning_;
    const uint32_t wg = uint32_t(std::clamp(t.wg, 8, int(pi_.props.limits.maxComputeWorkGroupSize[0])));
    const uint32_t d4 = uint32_t(a.q.dim) / 4, group = uint32_t(a.q.heads / a.k1.heads);
    uint32_t tpr = t.tpr > 0 ? std::min<uint32_t>(uint32_t(t.tpr), d4) : d4;
    while (tpr > 1 && (d4 % tpr != 0 || wg % tpr != 0)) tpr /= 2;  // a power of two dividing both
    uint32_t sgw = 1;
    if (t.subgroups && use_subgroups_) sgw = std::min<uint32_t>(tpr, pi_.subgroup.subgroupSize);
    while (sgw > 1 && tpr % sgw != 0) sgw /= 2;
    const uint32_t rp = wg / tpr, ppr = tpr / sgw;
    auto bytes = [&](uint32_t tl) { return group * (2 * d4 * 16 + tl * 4 + tl * ppr * 4 + 8); };
    uint32_t tile = std::max<uint32_t>(uint32_t(std::max(1, t.tile)), rp);
    while (tile > rp && bytes(tile) + 256 > pi_.props.limits.maxComputeSharedMemorySize) tile /= 2;
    tile = std::max(rp, tile / rp * rp);
    return {wg, uint32_t(a.q.dim), a.k1.dtype == DType::f16, sgw, mode, group, tpr, tile};
}

// Enough split-K partitions to fill the device, planned over the live rows (planned_rows), so the
// choice depends on the number of heads.
int VulkanDevice::decode_splits(const DecodeArgs& a) const {
    const DecodeTuning& t = decode_tuning_;
    const int64_t n_max = std::max<int64_t>(1, a.planned_rows());
    const int64_t by_work = (n_max + t.min_keys - 1) / std::max(1, t.min_keys);
    // Vulkan reports no compute-unit count: a CPU driver runs one workgroup per host thread; for a
    // GPU, 128 stands for a large GPU's multiprocessors (splits past the work are not made anyway).
    const int cus = info_.type == TCA_DEVICE_CPU_DRIVER ? std::max(1, int(std::thread::hardware_concurrency())) : 128;
    const int by_occupancy = std::max(1, cus * t.wgs_per_cu / std::max(1, a.k1.heads));
    return int(std::max<int64_t>(1, std::min<int64_t>(by_work, by_occupancy)));
}

void VulkanDevice::decode(const DecodeArgs& a) {
    validate(a);
    OpScope op(this, "decode");
    const bool has2 = static_cast<bool>(a.k2.data);
    const DType kv = a.k1.dtype;
    auto u32 = [](int64_t v, const char* what) { return checked_narrow<uint32_t>(v, what); };
    DecodeParams pc{};
    pc.q_off = elem_off(a.q.data, DType::f32), pc.q_hs = u32(a.q.head_stride, "q head stride");
    pc.o_off = elem_off(a.o.data, DType::f32), pc.o_hs = u32(a.o.head_stride, "o head stride");
    pc.k1_off = elem_off(a.k1.data, kv), pc.k1_hs = u32(a.k1.head_stride, "k1 head stride"), pc.k1_ts = u32(a.k1.token_stride, "k1 token stride");
    pc.v1_off = elem_off(a.v1.data, kv), pc.v1_hs = u32(a.v1.head_stride, "v1 head stride"), pc.v1_ts = u32(a.v1.token_stride, "v1 token stride");
    if (has2) {
        pc.k2_off = elem_off(a.k2.data, kv), pc.k2_hs = u32(a.k2.head_stride, "k2 head stride"), pc.k2_ts = u32(a.k2.token_stride, "k2 token stride");
        pc.v2_off = elem_off(a.v2.data, kv), pc.v2_hs = u32(a.v2.head_stride, "v2 head stride"), pc.v2_ts = u32(a.v2.token_stride, "v2 token stride");
        pc.n2_off = int_off(a.n2), pc.k2_rows = u32(a.k2.tokens, "k2 rows");
    }
    pc.n1 = u32(a.n1, "n1"), pc.has2 = has2 ? 1 : 0;
    pc.scale = default_scale(a.scale, a.q.dim);
    // Split-K over the virtual key sequence (segment 1 then segment 2), planned over the live rows.
    const int64_t n_max = std::max<int64_t>(1, a.planned_rows());
    const int64_t splits_hint = a.splits > 0 ? a.splits : decode_splits(a);
    const int64_t split_len = (n_max + std::clamp<int64_t>(splits_hint, 1, n_max) - 1) / std::clamp<int64_t>(splits_hint, 1, n_max);
    const int64_t splits = (n_max + split_len - 1) / split_len;
    pc.split_len = u32(split_len, "decode split length"), pc.nsplit = u32(splits, "decode splits");
    if (a.probs) pc.probs_off = int_off(a.probs), pc.probs_n = u32(a.probs_n, "probs_n");
    const size_t ml_floats = checked_product({a.q.heads, splits, 2}, "decode partials");
    const size_t o_floats = checked_product({a.q.heads, splits, a.q.dim}, "decode partial outputs");
    pc.part_o = u32(int64_t(ml_floats), "decode partials");
    pc.part_merged = u32(int64_t(checked_add(ml_floats, o_floats, "decode partials")), "decode partials");
    BufView part = scratch(kSlotPartials, checked_mul(size_t(pc.part_merged) + size_t(a.q.heads) * 2, 4, "decode partials"));
    const std::string shader = kv_shader("decode", kv);
    static_assert(TCA_DECODE_BIND_Q == 0 && TCA_DECODE_BIND_PROBS == 8 && TCA_DECODE_SPEC_WG == 0 && TCA_DECODE_SPEC_TILE == 7,
                  "dispatch() binds buffers and specialization constants in list order");
    const BufView k2 = has2 ? a.k2.data : a.k1.data, v2 = has2 ? a.v2.data : a.v1.data;
    dispatch(shader, decode_spec(a, 0), pc, {in(a.q.data), in(a.k1.data), in(a.v1.data), in(k2), in(v2), {}, in(a.n2), out(part), {}},
             uint32_t(splits), uint32_t(a.k1.heads));
    dispatch(shader, decode_spec(a, 1), pc, {{}, {}, {}, {}, {}, out(a.o.data), {}, out(part), {}}, 1, uint32_t(a.q.heads));
    if (a.probs) {
        const uint32_t wg = decode_spec(a, 2)[0];
        dispatch(shader, decode_spec(a, 2), pc, {in(a.q.data), in(a.k1.data), {}, {}, {}, {}, {}, in(part), out(a.probs)},
                 ceil_div(a.probs_n, wg), uint32_t(a.k1.heads));
    }
}

void VulkanDevice::score(const ScoreArgs& a) {
    validate(a);
    OpScope op(this, "score");
    constexpr uint32_t kChunk = kSmallWG * 4;  // keys per workgroup (see shaders/score.glsl)
    ScorePC pc{};
    pc.q_off = elem_off(a.q.data, DType::f32), pc.q_hs = uint32_t(a.q.head_stride), pc.q_ts = uint32_t(a.q.token_stride);
    pc.q_row = uint32_t(a.q_row);
    pc.k_off = elem_off(a.k.data, a.k.dtype), pc.k_hs = uint32_t(a.k.head_stride), pc.k_ts = uint32_t(a.k.token_stride);
    pc.n_keys = uint32_t(a.n_keys), pc.group = uint32_t(a.q.heads / a.k.heads), pc.hq = uint32_t(a.q.heads);
    pc.nchunk = ceil_div(a.n_keys, kChunk);
    pc.s_off = int_off(a.s), pc.s_stride = uint32_t(a.s_stride);
    pc.scale = default_scale(a.scale, a.q.dim);
    // stats: per (query head, chunk) softmax (max, sum), then per query head the merged (max, sum).
    BufView stats = scratch(kSlotStats, checked_product({a.q.heads, int64_t(pc.nchunk) + 1, 8}, "score statistics"));
    const std::string shader = kv_shader("score", a.k.dtype);
    auto spec = [&](uint32_t mode) { return std::vector<uint32_t>{kSmallWG, uint32_t(a.q.dim), a.k.dtype == DType::f16, sg(), mode}; };
    dispatch(shader, spec(0), pc, {in(a.q.data), in(a.k.data), out(stats), {}}, pc.nchunk, uint32_t(a.k.heads));
    dispatch(shader, spec(1), pc, {{}, {}, out(stats), {}}, uint32_t(a.q.heads));
    dispatch(shader, spec(2), pc, {in(a.q.data), in(a.k.data), in(stats), out(a.s)}, pc.nchunk, uint32_t(a.k.heads));
}

void VulkanDevice::metric(const MetricArgs& a) {
    validate(a);
    OpScope op(this, "metric");
    SelectPC pc{};
    pc.a_off = int_off(a.s), pc.a_stride = uint32_t(a.s_stride), pc.heads = uint32_t(a.heads), pc.n = uint32_t(a.n_global);
    pc.block = uint32_t(a.block), pc.nb = uint32_t(n_blocks_of(a.n_global, a.block));
    pc.out_off = int_off(a.h), pc.alpha = a.alpha;
    dispatch("select.comp", {kSmallWG, sg(), 0}, pc, {in(a.s), {}, {}, {}, {}, {}, out(a.h)}, pc.nb, uint32_t(a.heads));
}

void VulkanDevice::rank(const RankArgs& a) {
    validate(a);
    OpScope op(this, "sort");
    SelectPC pc{};
    pc.a_off = int_off(a.h), pc.heads = uint32_t(a.heads), pc.nb = uint32_t(a.n_blocks), pc.out_off = int_off(a.order);
    dispatch("select.comp", {kSmallWG, sg(), 1}, pc, {in(a.h), {}, {}, out(a.order), {}, {}, {}},
             ceil_div(a.n_blocks, kSmallWG), uint32_t(a.heads));
}

void VulkanDevice::select(const SelectArgs& a) {
    validate(a);
    OpScope op(this, "select");
    const uint32_t nb = uint32_t(n_blocks_of(a.n_global, a.block));
    SelectPC pc{};
    pc.a_off = int_off(a.s), pc.a_stride = uint32_t(a.s_stride), pc.heads = uint32_t(a.heads), pc.n = uint32_t(a.n_global);
    pc.block = uint32_t(a.block), pc.nb = nb, pc.order_off = int_off(a.order), pc.budget_off = int_off(a.budget);
    pc.out_off = int_off(a.idx), pc.out_stride = uint32_t(a.idx_stride), pc.cnt_off = int_off(a.count);
    // Scratch: [A] kept count per block, [B] exclusive prefix sums (output offset per block),
    // [C] keep flag per token.
    pc.scr_a = 0, pc.scr_b = checked_narrow<uint32_t>(checked_product({a.heads, nb}, "select scratch"), "select scratch");
    pc.scr_c = checked_narrow<uint32_t>(checked_product({2, a.heads, nb}, "select scratch"), "select scratch");
    BufView scr = scratch(kSlotSelect, checked_mul(checked_add(pc.scr_c, checked_product({a.heads, a.n_global}, "select scratch"), "select scratch"), 4, "select scratch"));
    const std::vector<Bind> binds = {in(a.s), in(a.order), in(a.budget), out(a.idx), out(a.count), out(scr), {}};
    dispatch("select.comp", {kSmallWG, sg(), 2}, pc, binds, ceil_div(nb, kSmallWG), uint32_t(a.heads));
    dispatch("select.comp", {kSmallWG, sg(), 3}, pc, binds, 1, uint32_t(a.heads));
    dispatch("select.comp", {kSmallWG, sg(), 4}, pc, binds, nb, uint32_t(a.heads));
}

void VulkanDevice::gather(const GatherArgs& a) {
    validate(a);
    OpScope op(this, "gather");
    const DType t = a.src_k.dtype;
    GatherPC pc{};
    pc.sk_off = elem_off(a.src_k.data, t), pc.sk_hs = uint32_t(a.src_k.head_stride), pc.sk_ts = uint32_t(a.src_k.token_stride);
    pc.sv_off = elem_off(a.src_v.data, t), pc.sv_hs = uint32_t(a.src_v.head_stride), pc.sv_ts = uint32_t(a.src_v.token_stride);
    pc.dk_off = elem_off(a.dst_k.data, t), pc.dk_hs = uint32_t(a.dst_k.head_stride), pc.dk_ts = uint32_t(a.dst_k.token_stride);
    pc.dv_off = elem_off(a.dst_v.data, t), pc.dv_hs = uint32_t(a.dst_v.head_stride), pc.dv_ts = uint32_t(a.dst_v.token_stride);
    pc.src_row0 = uint32_t(a.src_row0);
    pc.flags = (a.idx ? 1u : 0u) | (a.count ? 2u : 0u) | (a.dst_off ? 4u : 0u) | (a.pos_out ? 8u : 0u);
    if (a.idx) pc.idx_off = int_off(a.idx), pc.idx_stride = uint32_t(a.idx_stride);
    if (a.count) pc.cnt_off = int_off(a.count);
    pc.uniform_count = uint32_t(a.uniform_count);
    if (a.dst_off) pc.off_off = int_off(a.dst_off);
    if (a.dst_len) pc.len_off = int_off(a.dst_len);
    if (a.pos_out) pc.pos_off = int_off(a.pos_out), pc.pos_stride = uint32_t(a.pos_stride);
    pc.pos_base = a.pos_base;
    pc.dst_tokens = uint32_t(a.dst_k.tokens), pc.src_tokens = uint32_t(a.src_k.tokens), pc.dim = uint32_t(a.src_k.dim);
    pc.heads = uint32_t(a.src_k.heads);
    // fp16 rows copy as whole 32-bit words when every row starts on an even element; otherwise
    // halves are merged into destination words atomically (neighbouring rows may share a word).
    bool aligned = true;
    if (t == DType::f16)
        for (const Tensor* x : {&a.src_k, &a.src_v, &a.dst_k, &a.dst_v})
            aligned = aligned && (elem_off(x->data, t) % 2 == 0) && x->head_stride % 2 == 0 && x->token_stride % 2 == 0;
    const std::vector<uint32_t> spec0 = {kSmallWG, t == DType::f16, aligned, 0};
    constexpr uint32_t kRowsPerGroup = 16;
    dispatch("gather.comp", spec0, pc,
             {in(a.src_k.data), in(a.src_v.data), out(a.dst_k.data), out(a.dst_v.data), in(a.idx), in(a.count),
              in(a.dst_off), {}, out(a.pos_out)},
             ceil_div(a.dst_k.tokens, kRowsPerGroup), uint32_t(a.src_k.heads));
    if (a.dst_len) {
        // A separate pass after the copies: dst_len may alias dst_off, which every copy reads.
        const std::vector<uint32_t> spec1 = {kSmallWG, t == DType::f16, aligned, 1};
        dispatch("gather.comp", spec1, pc, {{}, {}, {}, {}, {}, in(a.count), in(a.dst_off), out(a.dst_len), {}},
                 ceil_div(a.src_k.heads, kSmallWG));
    }
}

// ---- roofline probes --------------------------------------------------------------------------

void VulkanDevice::stream_copy(const CopyArgs& a) {
    validate(a);
    OpScope op(this, "copy");
    CopyParams pc{};
    pc.src_off = checked_narrow<uint32_t>(a.src.offset / 16, "copy source offset");
    pc.dst_off = checked_narrow<uint32_t>(a.dst.offset / 16, "copy destination offset");
    pc.n = checked_narrow<uint32_t>(a.bytes / 16, "copy size");
    constexpr uint32_t kWG = 256;
    const uint32_t groups = ceil_div(pc.n, kWG);
    pc.gx = std::min<uint32_t>(groups, 32768);
    static_assert(TCA_COPY_BIND_SRC == 0 && TCA_COPY_BIND_DST == 1 && TCA_COPY_SPEC_WG == 0,
                  "dispatch() binds buffers and specialization constants in list order");
    dispatch("copy.comp", {kWG}, pc, {in(a.src), out(a.dst)}, pc.gx, ceil_div(groups, pc.gx));
}

// Register-blocked tiles of shaders/gemm.comp: GPUs take 64x64 tiles of 4x4 blocks (256
// invocations); CPU drivers run a workgroup's invocations as SIMD lanes in a loop, so fewer,
// fatter invocations (8x8 blocks) keep more of the work in registers, and skip the shared-memory
// staging (see shaders/gemm.comp). TCA_VULKAN_GEMM_TILES="BM,BN,BK,TM,TN[,STAGE]" overrides.
void VulkanDevice::gemm(const GemmArgs& a) {
    validate(a);
    require(gemm_supported(a.dtype), TCA_ERROR_UNSUPPORTED, "vulkan: the GEMM probe is f32 only");
    OpScope op(this, "gemm");
    uint32_t bm = 64, bn = 64, bk = 16, tm = 4, tn = 4, stage = 1;
    if (info_.type == TCA_DEVICE_CPU_DRIVER) tm = tn = 8, stage = 0;
    if (const char* e = std::getenv("TCA_VULKAN_GEMM_TILES"))
        std::sscanf(e, "%u,%u,%u,%u,%u,%u", &bm, &bn, &bk, &tm, &tn, &stage);
    const auto& lim = pi_.props.limits;
    require(tm > 0 && tn > 0 && bk > 0 && bm % tm == 0 && bn % tn == 0 &&
                (bm / tm) * (bn / tn) <= lim.maxComputeWorkGroupInvocations && (bm + bn) * bk * 4 <= lim.maxComputeSharedMemorySize,
            TCA_ERROR_INVALID_ARGUMENT, "vulkan: GEMM tiles do not fit this device");
    GemmPC pc{};
    pc.a_off = elem_off(a.a, DType::f32), pc.b_off = elem_off(a.b, DType::f32), pc.c_off = elem_off(a.c, DType::f32);
    pc.m = uint32_t(a.m), pc.n = uint32_t(a.n), pc.k = uint32_t(a.k);
    dispatch("gemm.comp", {bn / tn, bm / tm, bm, bn, bk, tm, tn, stage ? 1u : 0u}, pc, {in(a.a), in(a.b), out(a.c)}, ceil_div(a.n, bn),
             ceil_div(a.m, bm));
}

}  // namespace

// ---- exported -----------------------------------------------------------------------------------

std::vector<DeviceInfo> vulkan_devices() {
    try {
        auto ctx = create_instance(false);
        std::vector<DeviceInfo> out;
        const auto pds = physical_devices(ctx->instance);
        for (size_t i = 0; i < pds.size(); ++i) {
            const PhysInfo pi = query_phys(*ctx, pds[i]);
            if (pi.compute_family < 0 || pi.props.apiVersion < VK_API_VERSION_1_1) continue;
            out.push_back(device_info(pi, int(i)));
        }
        return out;
    } catch (...) {
        return {};  // no loader, no driver, or a driver that fails to initialise: no Vulkan devices
    }
}

std::unique_ptr<Device> make_vulkan_device(int index, const BackendOptions& options) {
    return std::make_unique<VulkanDevice>(index, options);
}

uint64_t vulkan_validation_message_count() { return g_validation_messages.load(); }

std::unique_ptr<Device> make_vulkan_device_external(const VulkanExternal& ext, const BackendOptions& options) {
    require(ext.instance && ext.physical_device && ext.device && ext.queue, TCA_ERROR_INVALID_ARGUMENT,
            "vulkan: null VkInstance, VkPhysicalDevice, VkDevice or VkQueue");
    require(ext.api_version >= VK_API_VERSION_1_1, TCA_ERROR_UNSUPPORTED,
            "vulkan: api_version must be the instance's apiVersion, at least 1.1 (VK_API_VERSION_1_1)");
    return std::make_unique<VulkanDevice>(ext, options);
}

Buffer vulkan_wrap_buffer(Device& dev, uint64_t buffer, uint64_t size) {
    auto* d = dynamic_cast<VulkanDevice*>(&dev);
    require(d != nullptr, TCA_ERROR_INVALID_ARGUMENT, dev.info().name + " is not a Vulkan context: cannot wrap a VkBuffer");
    require(buffer != 0, TCA_ERROR_INVALID_ARGUMENT, "vulkan: null VkBuffer");
    require(size > 0, TCA_ERROR_INVALID_ARGUMENT, "vulkan: buffer_size is 0");
    VkBuffer b;
    static_assert(sizeof(VkBuffer) <= sizeof(uint64_t), "VkBuffer wider than 64 bits");
#if VK_USE_64_BIT_PTR_DEFINES
    b = reinterpret_cast<VkBuffer>(static_cast<uintptr_t>(buffer));
#else
    b = static_cast<VkBuffer>(buffer);
#endif
    return d->wrap(b, size);
}

namespace vulkan_testing {

namespace {
VulkanDevice& as_vulkan(Device& d) {
    auto* v = dynamic_cast<VulkanDevice*>(&d.backend());
    if (!v) throw Error(TCA_ERROR_INVALID_ARGUMENT, "not a Vulkan device");
    return *v;
}
}  // namespace

size_t pipeline_cache_bytes_loaded(Device& d) { return as_vulkan(d).cache_bytes_loaded(); }
std::string pipeline_cache_path(Device& d) { return as_vulkan(d).cache_path(); }
void build_broken_shader(Device& d) { as_vulkan(d).build_broken_shader(); }
bool uses_fp16_storage(Device& d) { return as_vulkan(d).fp16_storage_on(); }
bool uses_subgroups(Device& d) { return as_vulkan(d).subgroups_on(); }
bool synchronization_validation_on(Device& d) { return as_vulkan(d).sync_validation_on(); }
void record_unsynchronised_writes(Device& d) { as_vulkan(d).unsynchronised_writes(); }
void leak_buffer(Device& d) { as_vulkan(d).leak_buffer(); }

uint64_t validation_message_count() { return g_validation_messages.load(); }
std::vector<std::string> validation_messages(uint64_t from) {
    ValidationLog& log = validation_log();
    std::lock_guard<std::mutex> lock(log.mu);
    if (from >= log.texts.size()) return {};
    return std::vector<std::string>(log.texts.begin() + std::ptrdiff_t(from), log.texts.end());
}
void record_validation_message(const char* text) { record_validation(text); }
void release_scratch(Device& d) { as_vulkan(d).release_scratch(); }
DecodeTuning set_decode_tuning(Device& d, const DecodeTuning& t) { return as_vulkan(d).set_decode_tuning(t); }

}  // namespace vulkan_testing

}  // namespace tca::detail
