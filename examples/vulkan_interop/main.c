/* Zero-copy from a runtime's own Vulkan device: this program creates its VkInstance, VkDevice and
 * queue, puts Q, K, V and O into ONE VkBuffer of its own (sub-allocated at offsets, as runtimes
 * do), uploads Q/K/V with its own staging copy on its own queue (not waited for), and hands the
 * regions to libtca with tca_tensor_wrap_vulkan.  It runs dense attention and a TCA cache's prompt
 * on them, reads O back with its own copy submitted after the call, and checks the result against
 * the library's copying path (tca_tensor_create + upload) on the same context.
 *
 * Synchronisation (tca.h): the library's command buffers begin with a barrier that waits for
 * everything submitted earlier to the queue and end with one that makes their writes visible to
 * everything submitted later, so neither side needs semaphores on a shared queue.
 *
 * With TCA_VULKAN_VALIDATION=1 the Khronos validation layer is enabled (when installed) and any
 * warning or error fails the run.
 *
 * Build:  cc main.c $(pkg-config --cflags --libs tca vulkan) -lm */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tca/tca.h>
#include <vulkan/vulkan.h>

#define TCA(call)                                                                                 \
    do {                                                                                          \
        tca_status s_ = (call);                                                                   \
        if (s_ != TCA_OK) {                                                                       \
            fprintf(stderr, "%s failed: %s: %s\n", #call, tca_status_name(s_), tca_last_error()); \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)
#define VK(call)                                                         \
    do {                                                                 \
        VkResult r_ = (call);                                            \
        if (r_ != VK_SUCCESS) {                                          \
            fprintf(stderr, "%s failed: VkResult %d\n", #call, (int)r_); \
            exit(1);                                                     \
        }                                                                \
    } while (0)

enum { HQ = 4, HKV = 2, L = 256, D = 64 };

static int validation_messages = 0;
static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT* data, void* user) {
    (void)type, (void)user;
    if (severity & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)) {
        ++validation_messages;
        fprintf(stderr, "[validation] %s\n", data->pMessage);
    }
    return VK_FALSE;
}

typedef struct {
    VkBuffer buffer;
    VkDeviceMemory memory;
    void* mapped; /* non-null for host-visible buffers */
} Buffer;

static VkPhysicalDevice phys;
static VkDevice device;
static VkQueue queue;
static VkCommandPool pool;

static Buffer make_buffer(VkDeviceSize size, int host_visible) {
    Buffer b = {0};
    VkBufferCreateInfo bci = {VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bci.size = size;
    /* STORAGE for the library's shaders; TRANSFER for our own copies in and out. */
    bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    VK(vkCreateBuffer(device, &bci, NULL, &b.buffer));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(device, b.buffer, &req);
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(phys, &mp);
    const VkMemoryPropertyFlags want = host_visible
                                           ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
                                           : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    uint32_t type = 0;
    while (type < mp.memoryTypeCount &&
           !((req.memoryTypeBits >> type & 1u) && (mp.memoryTypes[type].propertyFlags & want) == want))
        ++type;
    if (type == mp.memoryTypeCount) {
        fprintf(stderr, "no suitable memory type\n");
        exit(1);
    }
    VkMemoryAllocateInfo mai = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    mai.allocationSize = req.size;
    mai.memoryTypeIndex = type;
    VK(vkAllocateMemory(device, &mai, NULL, &b.memory));
    VK(vkBindBufferMemory(device, b.buffer, b.memory, 0));
    if (host_visible) VK(vkMapMemory(device, b.memory, 0, VK_WHOLE_SIZE, 0, &b.mapped));
    return b;
}

static void free_buffer(Buffer* b) {
    vkDestroyBuffer(device, b->buffer, NULL);
    vkFreeMemory(device, b->memory, NULL);
}

/* One copy on our queue. wait = 0: submitted and left running (the library orders itself after it). */
static void copy(VkBuffer src, VkDeviceSize src_off, VkBuffer dst, VkDeviceSize dst_off, VkDeviceSize size, int wait) {
    VkCommandBufferAllocateInfo ai = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = pool;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    VkCommandBuffer cb;
    VK(vkAllocateCommandBuffers(device, &ai, &cb));
    VkCommandBufferBeginInfo bi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    VK(vkBeginCommandBuffer(cb, &bi));
    VkBufferCopy region = {src_off, dst_off, size};
    vkCmdCopyBuffer(cb, src, dst, 1, &region);
    /* Our copy's writes, read by the host through mapped memory once the queue is idle. */
    VkMemoryBarrier mb = {VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    VK(vkEndCommandBuffer(cb));
    VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cb;
    VK(vkQueueSubmit(queue, 1, &si, VK_NULL_HANDLE));
    if (wait) VK(vkQueueWaitIdle(queue));
}

static float frand(uint32_t* s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f - 0.5f;
}

int main(void) {
    const char* env = getenv("TCA_VULKAN_VALIDATION");
    const int want_validation = env && strcmp(env, "1") == 0;

    /* ---- the runtime's own Vulkan objects ---- */
    uint32_t n = 0;
    vkEnumerateInstanceLayerProperties(&n, NULL);
    VkLayerProperties* layers = calloc(n + 1, sizeof *layers);
    vkEnumerateInstanceLayerProperties(&n, layers);
    int have_layer = 0;
    for (uint32_t i = 0; i < n; ++i) have_layer |= strcmp(layers[i].layerName, "VK_LAYER_KHRONOS_validation") == 0;
    free(layers);
    const int validate = want_validation && have_layer;
    const char* layer = "VK_LAYER_KHRONOS_validation";
    const char* ext = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    VkDebugUtilsMessengerCreateInfoEXT dbg = {VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
    dbg.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    dbg.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT;
    dbg.pfnUserCallback = on_message;
    VkApplicationInfo app = {VK_STRUCTURE_TYPE_APPLICATION_INFO};
    app.pApplicationName = "tca vulkan_interop example";
    app.apiVersion = VK_API_VERSION_1_1;
    VkInstanceCreateInfo ici = {VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    ici.pApplicationInfo = &app;
    if (validate) {
        ici.pNext = &dbg;
        ici.enabledLayerCount = 1, ici.ppEnabledLayerNames = &layer;
        ici.enabledExtensionCount = 1, ici.ppEnabledExtensionNames = &ext;
    }
    VkInstance instance;
    VK(vkCreateInstance(&ici, NULL, &instance));
    VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
    if (validate) {
        PFN_vkCreateDebugUtilsMessengerEXT create =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(instance, "vkCreateDebugUtilsMessengerEXT");
        VK(create(instance, &dbg, NULL, &messenger));
    }

    VK(vkEnumeratePhysicalDevices(instance, &n, NULL));
    VkPhysicalDevice* pds = calloc(n + 1, sizeof *pds);
    VK(vkEnumeratePhysicalDevices(instance, &n, pds));
    uint32_t family = UINT32_MAX;
    for (uint32_t d = 0; d < n && family == UINT32_MAX; ++d) {
        VkPhysicalDeviceProperties props;
        vkGetPhysicalDeviceProperties(pds[d], &props);
        if (props.apiVersion < VK_API_VERSION_1_1) continue;
        uint32_t nq = 0;
        vkGetPhysicalDeviceQueueFamilyProperties(pds[d], &nq, NULL);
        VkQueueFamilyProperties* qf = calloc(nq + 1, sizeof *qf);
        vkGetPhysicalDeviceQueueFamilyProperties(pds[d], &nq, qf);
        for (uint32_t i = 0; i < nq && family == UINT32_MAX; ++i)
            if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) phys = pds[d], family = i;
        free(qf);
    }
    free(pds);
    if (family == UINT32_MAX) {
        fprintf(stderr, "no Vulkan 1.1 device with a compute queue\n");
        return 1;
    }
    VkPhysicalDeviceProperties props;
    vkGetPhysicalDeviceProperties(phys, &props);

    /* Enable 16-bit storage when the device has it, and tell the library we did. */
    VkPhysicalDevice16BitStorageFeatures s16 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    VkPhysicalDeviceFeatures2 f2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    f2.pNext = &s16;
    vkGetPhysicalDeviceFeatures2(phys, &f2);
    VkPhysicalDevice16BitStorageFeatures enable16 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    enable16.storageBuffer16BitAccess = s16.storageBuffer16BitAccess;
    const float priority = 1.0f;
    VkDeviceQueueCreateInfo qci = {VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
    qci.queueFamilyIndex = family;
    qci.queueCount = 1;
    qci.pQueuePriorities = &priority;
    VkDeviceCreateInfo dci = {VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
    dci.pNext = &enable16;
    dci.queueCreateInfoCount = 1;
    dci.pQueueCreateInfos = &qci;
    VK(vkCreateDevice(phys, &dci, NULL, &device));
    vkGetDeviceQueue(device, family, 0, &queue);
    VkCommandPoolCreateInfo cpi = {VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    cpi.queueFamilyIndex = family;
    VK(vkCreateCommandPool(device, &cpi, NULL, &pool));
    printf("our VkDevice: %s, queue family %u, 16-bit storage %s\n", props.deviceName, family,
           enable16.storageBuffer16BitAccess ? "enabled" : "off");

    /* ---- Q, K, V, O in one device buffer of ours, at offsets ---- */
    const size_t q_bytes = sizeof(float) * HQ * L * D, kv_bytes = sizeof(float) * HKV * L * D;
    const size_t q_off = 256, k_off = q_off + q_bytes, v_off = k_off + kv_bytes, o_off = v_off + kv_bytes;
    const size_t total = o_off + q_bytes;
    Buffer arena = make_buffer(total, 0);
    Buffer staging = make_buffer(total, 1);
    float* host = malloc(total);
    uint32_t seed = 7;
    for (size_t i = 0; i < (o_off - q_off) / sizeof(float); ++i) host[i] = frand(&seed);
    const float *q = host, *k = host + HQ * L * D, *v = k + HKV * L * D;
    memcpy((char*)staging.mapped + q_off, host, o_off - q_off);
    copy(staging.buffer, q_off, arena.buffer, q_off, o_off - q_off, 0); /* not waited for */

    /* ---- hand them to the library ---- */
    tca_vulkan_handles handles = {sizeof(tca_vulkan_handles)};
    handles.instance = instance;
    handles.physical_device = phys;
    handles.device = device;
    handles.queue = queue;
    handles.queue_family = family;
    handles.api_version = app.apiVersion;
    handles.enabled_features = enable16.storageBuffer16BitAccess ? TCA_VULKAN_FEATURE_STORAGE_BUFFER_16BIT : 0;
    tca_context* ctx = NULL;
    TCA(tca_context_create_vulkan(&handles, &ctx));
    tca_tensor_desc dq = {sizeof(tca_tensor_desc), TCA_F32, HQ, L, D, 0, 0};
    tca_tensor_desc dkv = {sizeof(tca_tensor_desc), TCA_F32, HKV, L, D, 0, 0};
    tca_tensor *wq, *wk, *wv, *wo;
    TCA(tca_tensor_wrap_vulkan(ctx, (uint64_t)arena.buffer, total, q_off, &dq, &wq));
    TCA(tca_tensor_wrap_vulkan(ctx, (uint64_t)arena.buffer, total, k_off, &dkv, &wk));
    TCA(tca_tensor_wrap_vulkan(ctx, (uint64_t)arena.buffer, total, v_off, &dkv, &wv));
    TCA(tca_tensor_wrap_vulkan(ctx, (uint64_t)arena.buffer, total, o_off, &dq, &wo));

    /* The library's copying path on the same context, for comparison. */
    tca_tensor *cq, *ck, *cv, *co;
    TCA(tca_tensor_create(ctx, TCA_F32, HQ, L, D, &cq));
    TCA(tca_tensor_create(ctx, TCA_F32, HKV, L, D, &ck));
    TCA(tca_tensor_create(ctx, TCA_F32, HKV, L, D, &cv));
    TCA(tca_tensor_create(ctx, TCA_F32, HQ, L, D, &co));
    TCA(tca_tensor_upload(cq, q, q_bytes));
    TCA(tca_tensor_upload(ck, k, kv_bytes));
    TCA(tca_tensor_upload(cv, v, kv_bytes));
    float* want = malloc(q_bytes);
    int failed = 0;

    for (int pass = 0; pass < 2; ++pass) {
        const char* what = pass == 0 ? "dense prefill" : "TCA cache prompt (keep 25%)";
        if (pass == 0) {
            TCA(tca_dense_prefill(ctx, wq, wk, wv, wo, 0.0f));
            TCA(tca_dense_prefill(ctx, cq, ck, cv, co, 0.0f));
        } else {
            tca_params params = {sizeof(tca_params)};
            TCA(tca_params_init(&params));
            params.block = 16, params.window = 32;
            tca_profile* profile = NULL;
            TCA(tca_profile_fixed(&params, 1, HQ, HKV, D, 0.25, &profile));
            tca_cache *zero_copy = NULL, *copying = NULL;
            TCA(tca_cache_create(ctx, profile, 0, HQ, HKV, D, TCA_F32, L, &zero_copy));
            TCA(tca_cache_create(ctx, profile, 0, HQ, HKV, D, TCA_F32, L, &copying));
            TCA(tca_cache_prefill(zero_copy, wq, wk, wv, wo));
            TCA(tca_cache_prefill(copying, cq, ck, cv, co));
            tca_cache_destroy(zero_copy), tca_cache_destroy(copying);
            tca_profile_destroy(profile);
        }
        /* Our own copy of O, submitted after the library's call: it sees the results, no barrier of ours. */
        copy(arena.buffer, o_off, staging.buffer, o_off, q_bytes, 1);
        const float* got = (const float*)((const char*)staging.mapped + o_off);
        TCA(tca_tensor_download(co, want, q_bytes));
        double diff = 0, mag = 0;
        for (int i = 0; i < HQ * L * D; ++i) diff = fmax(diff, fabs(got[i] - want[i])), mag = fmax(mag, fabs(want[i]));
        printf("%s: zero-copy vs copying path: max |difference| %.3g (outputs up to %.3g)\n", what, diff, mag);
        failed |= !(diff <= 1e-6 && mag > 0);
    }

    tca_tensor_destroy(wq), tca_tensor_destroy(wk), tca_tensor_destroy(wv), tca_tensor_destroy(wo);
    tca_tensor_destroy(cq), tca_tensor_destroy(ck), tca_tensor_destroy(cv), tca_tensor_destroy(co);
    TCA(tca_context_destroy(ctx)); /* our device, queue and buffers are untouched */
    VK(vkQueueWaitIdle(queue));
    free_buffer(&arena), free_buffer(&staging);
    vkDestroyCommandPool(device, pool, NULL);
    vkDestroyDevice(device, NULL);
    if (messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(instance, "vkDestroyDebugUtilsMessengerEXT");
        destroy(instance, messenger, NULL);
    }
    vkDestroyInstance(instance, NULL);
    free(host), free(want);
    if (validate) printf("validation layer: %d messages\n", validation_messages);
    return failed || validation_messages ? 1 : 0;
}
