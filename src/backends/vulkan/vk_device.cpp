// The Vulkan backend: construction (instance, device, queue), teardown, test hooks and the entry
// points the registry and the interop API call. The class is declared in vk_device.h.
#include <algorithm>
#include <utility>

#include "backends/vulkan/vk_device.h"
#include "backends/vulkan/vulkan_testing.h"

namespace tca::detail::vulkan {

VulkanDevice::VulkanDevice(int index, const BackendOptions& options) : options_(options) {
    ctx_ = create_instance(options.vulkan_validation);
    const auto pds = physical_devices(ctx_->instance);
    if (index < 0 || size_t(index) >= pds.size())
        throw Error(TCA_ERROR_DEVICE_NOT_FOUND, "no Vulkan device vulkan:" + std::to_string(index));
    ctx_->phys = pds[index];
    pi_ = query_phys(*ctx_, ctx_->phys);
    if (pi_.compute_family < 0) throw Error(TCA_ERROR_UNSUPPORTED, "vulkan: device has no compute queue");
    info_ = device_info(pi_, index);
    tuning_ = choose_tuning(info_, options.tuning);
    use_fp16_storage_ = pi_.storage16 && !env_flag("TCA_VULKAN_DISABLE_FP16_STORAGE");
    use_float16_ = pi_.float16;  // f16 arithmetic: the f16 roofline probe only
    use_subgroups_ = subgroups_usable(pi_) && !env_flag("TCA_VULKAN_DISABLE_SUBGROUPS");
    staging_only_ = env_flag("TCA_VULKAN_FORCE_STAGING");
    log_pipelines_ = env_flag("TCA_VULKAN_LOG_PIPELINES");
    create_device();
    init_memory();
    create_pipeline_cache();
}

VulkanDevice::VulkanDevice(const VulkanExternal& ext, const BackendOptions& options) : options_(options) {
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
    tuning_ = choose_tuning(info_, options.tuning);
    use_fp16_storage_ = pi_.storage16 && ext.storage_buffer_16bit && !env_flag("TCA_VULKAN_DISABLE_FP16_STORAGE");
    use_float16_ = pi_.float16 && ext.shader_float16;
    use_subgroups_ = subgroups_usable(pi_) && !env_flag("TCA_VULKAN_DISABLE_SUBGROUPS");
    staging_only_ = env_flag("TCA_VULKAN_FORCE_STAGING");
    log_pipelines_ = env_flag("TCA_VULKAN_LOG_PIPELINES");
    queue_ = static_cast<VkQueue>(ext.queue);
    create_queue_objects(ext.queue_family);
    init_memory();
    create_pipeline_cache();
}

VulkanDevice::~VulkanDevice() {
    // A recording still open is dropped (its commands stay in the caller's command buffer, which must
    // then not be submitted: tca.h); it and unreleased tickets are freed with the rest below.
    // Nothing more goes into the caller's command buffer (it may no longer be recording).
    if (rec_) {
        rec_->keep_alive = std::move(keep_alive_);
        rec_->cb = VK_NULL_HANDLE;
        tickets_[next_ticket_++] = std::move(rec_);
        recording_ = false;
        cb_ = VK_NULL_HANDLE;
    }
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
    for (auto& [t, f] : tickets_) {
        f->keep_alive.clear();
        for (auto p : f->pools) vkDestroyDescriptorPool(d, p, nullptr);
    }
    tickets_.clear();
    for (auto p : spare_pools_) vkDestroyDescriptorPool(d, p, nullptr);
    for (auto& f : frames_) {
        f->keep_alive.clear();
        for (auto p : f->pools) vkDestroyDescriptorPool(d, p, nullptr);
        if (f->fence) vkDestroyFence(d, f->fence, nullptr);
    }
    if (cache_) vkDestroyPipelineCache(d, cache_, nullptr);
    if (query_pool_) vkDestroyQueryPool(d, query_pool_, nullptr);
    if (cmd_pool_) vkDestroyCommandPool(d, cmd_pool_, nullptr);
}
// ---- device setup ----------------------------------------------------------------------------

void VulkanDevice::create_device() {
    const float priority = 1.0f;
    VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
    qci.queueFamilyIndex = uint32_t(pi_.compute_family);
    qci.queueCount = 1;
    qci.pQueuePriorities = &priority;
    VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    VkPhysicalDevice16BitStorageFeatures s16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    s16.storageBuffer16BitAccess = use_fp16_storage_ ? VK_TRUE : VK_FALSE;
    f2.pNext = &s16;
    VkPhysicalDeviceShaderFloat16Int8Features f16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
    if (use_float16_) {  // pi_.float16 implies Vulkan 1.2, where the structure is core
        f16.shaderFloat16 = VK_TRUE;
        s16.pNext = &f16;
    }
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

// Command pool, the submission ring's first frame and the timestamp pool for the queue of `family`.
void VulkanDevice::create_queue_objects(uint32_t family) {
    VkCommandPoolCreateInfo cpi{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    cpi.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    cpi.queueFamilyIndex = family;
    VK_CHECK(vkCreateCommandPool(ctx_->device, &cpi, nullptr, &cmd_pool_));
    add_frame();  // the ring's first frame (vk_commands.cpp adds more while the device is behind)
    if (pi_.timestamp_bits > 0) {
        VkQueryPoolCreateInfo qpi{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
        qpi.queryType = VK_QUERY_TYPE_TIMESTAMP;
        qpi.queryCount = kMaxQueries;
        VK_CHECK(vkCreateQueryPool(ctx_->device, &qpi, nullptr, &query_pool_));
    }
}

// The blocks buffers are sub-allocated from: 64 MiB, or less where the device allows less in one
// allocation or has little memory (an eighth of its largest heap at most).
void VulkanDevice::init_memory() {
    uint64_t heap = 0;
    for (uint32_t h = 0; h < pi_.mem.memoryHeapCount; ++h) heap = std::max<uint64_t>(heap, pi_.mem.memoryHeaps[h].size);
    uint64_t block = uint64_t(64) << 20;
    if (pi_.maint3.maxMemoryAllocationSize > 0) block = std::min<uint64_t>(block, pi_.maint3.maxMemoryAllocationSize);
    if (heap > 0) block = std::min<uint64_t>(block, std::max<uint64_t>(heap / 8, uint64_t(1) << 20));
    pools_ = std::make_shared<MemoryPools>(ctx_, block);
}

std::vector<OpTiming> VulkanDevice::take_timings() {
    submit_and_wait();
    return std::exchange(timings_, {});
}


// ---- test hooks ----

void VulkanDevice::build_broken_shader() {
    static const uint32_t garbage[] = {0x12345678u, 0x00010000u, 0, 5, 0};
    create_module("broken", reinterpret_cast<const unsigned char*>(garbage), sizeof garbage);
}
void VulkanDevice::unsynchronised_writes() {
    Buffer b = make_buffer(256, false);
    keep_alive_.push_back(b);
    VkCommandBuffer c = cmd();
    vkCmdFillBuffer(c, vk(b)->buffer, 0, 256, 1);
    vkCmdFillBuffer(c, vk(b)->buffer, 0, 256, 2);  // on purpose without the barrier hazard() would add
    submit_and_wait();
}
void VulkanDevice::leak_buffer() {
    VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bci.size = 256;
    bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
    VkBuffer b = VK_NULL_HANDLE;
    VK_CHECK(vkCreateBuffer(ctx_->device, &bci, nullptr, &b));  // never destroyed, on purpose
}
void VulkanDevice::release_scratch() {
    submit_and_wait();  // recorded commands may use them
    scratch_.clear();
    dummy_.reset();
}


}  // namespace tca::detail::vulkan

namespace tca::detail {

using vulkan::VulkanDevice;

// ---- exported -----------------------------------------------------------------------------------

std::vector<DeviceInfo> vulkan_devices() {
    try {
        auto ctx = vulkan::create_instance(false);
        std::vector<DeviceInfo> out;
        const auto pds = vulkan::physical_devices(ctx->instance);
        for (size_t i = 0; i < pds.size(); ++i) {
            const vulkan::PhysInfo pi = vulkan::query_phys(*ctx, pds[i]);
            if (pi.compute_family < 0 || pi.props.apiVersion < VK_API_VERSION_1_1) continue;
            out.push_back(vulkan::device_info(pi, int(i)));
        }
        return out;
    } catch (...) {
        return {};  // no loader, no driver, or a driver that fails to initialise: no Vulkan devices
    }
}

std::unique_ptr<Device> make_vulkan_device(int index, const BackendOptions& options) {
    return std::make_unique<VulkanDevice>(index, options);
}

uint64_t vulkan_validation_message_count() { return vulkan::validation_count(); }

namespace {
VulkanDevice& recording_device(Device& dev) {
    auto* d = dynamic_cast<VulkanDevice*>(&dev);
    require(d != nullptr, TCA_ERROR_INVALID_ARGUMENT,
            dev.info().name + " is not a Vulkan context: it cannot record into a VkCommandBuffer");
    return *d;
}
}  // namespace

void vulkan_begin_recording(Device& dev, void* command_buffer) {
    recording_device(dev).begin_recording(static_cast<VkCommandBuffer>(command_buffer));
}
uint64_t vulkan_end_recording(Device& dev) { return recording_device(dev).end_recording(); }
void vulkan_release_recording(Device& dev, uint64_t ticket) { recording_device(dev).release_recording(ticket); }
bool vulkan_recording_open(Device& dev) {
    auto* d = dynamic_cast<VulkanDevice*>(&dev);
    return d != nullptr && d->recording_open();
}

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

uint64_t validation_message_count() { return vulkan::validation_count(); }
std::vector<std::string> validation_messages(uint64_t from) { return vulkan::validation_texts(from); }
void record_validation_message(const char* text) { vulkan::record_validation(text); }
void release_scratch(Device& d) { as_vulkan(d).release_scratch(); }
DecodeTuning set_decode_tuning(Device& d, const DecodeTuning& t) { return as_vulkan(d).set_decode_tuning(t); }
size_t memory_blocks(Device& d) { return as_vulkan(d).memory_blocks().blocks(); }
size_t dedicated_memory_blocks(Device& d) { return as_vulkan(d).memory_blocks().dedicated_blocks(); }
uint64_t memory_block_size(Device& d) { return as_vulkan(d).memory_blocks().block_size(); }

}  // namespace vulkan_testing

}  // namespace tca::detail