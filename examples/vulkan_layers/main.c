/* A runtime-shaped proof of recording (issue 12 item 5): this program plays an inference runtime
 * that owns its VkDevice and keeps a stack of 32 attention layers on the GPU with Llama-3.1-8B's
 * attention shape (32 query / 8 KV heads, d 128).  Its own small shader (qkv.comp) produces each
 * layer's Q, K and V from the previous layer's attention output; libtca's TCA caches do the
 * attention.  The prompt goes in chunks (tca_cache_create_ex, TCA_CACHE_CHUNKED), then decode steps.
 *
 * Two modes on the same inputs:
 *  - recording: one command buffer per chunk and per decode step holds all 32 layers (our
 *    dispatch, the library's recorded call, for every layer): one vkQueueSubmit per step;
 *  - blocking: every tca call submits and waits itself; our dispatches are submitted unwaited.
 * It prints submits per step (ours and the library's, tca_context_counters) and host
 * microseconds per attention call in each mode, and checks that both modes give bit-identical
 * outputs and cache sizes.
 *
 * Barriers of ours (tca.h, "Barrier contract of a recorded call"): before our dispatch, the
 * library's earlier writes (O) and reads (Q/K/V) against our reads and writes; after it, our
 * writes (Q/K/V) and reads (O) against the library's next reads and writes.
 *
 * Run:    vulkan_layers qkv.spv [prompt P] [chunk C] [decode steps N]     (default 256 64 4)
 * Build:  glslc --target-env=vulkan1.1 -o qkv.spv qkv.comp
 *         cc main.c $(pkg-config --cflags --libs tca vulkan) -lm
 * With TCA_VULKAN_VALIDATION=1 the Khronos validation layer (with synchronization validation) is
 * enabled when installed, and any warning or error fails the run. */
/* clock_gettime under -std=c99. */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

enum { LAYERS = 32, HQ = 32, HKV = 8, D = 128 };

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

/* The runtime's Vulkan objects. */
static VkInstance instance;
static VkDebugUtilsMessengerEXT messenger;
static VkPhysicalDevice phys;
static VkDevice device;
static VkQueue queue;
static uint32_t family = UINT32_MAX;
static VkCommandPool pool;
static VkFence fence;
static VkPipelineLayout layout;
static VkPipeline pipeline;
static VkDescriptorSet set;
static VkDescriptorSetLayout dsl;
static VkDescriptorPool dpool;

/* Our shader's parameters (qkv.comp's push constants, in its order). */
typedef struct {
    uint32_t layer, pos0, n, cap, hq, hkv, d, use_prev;
} QkvParams;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static uint32_t memory_type(uint32_t bits, VkMemoryPropertyFlags want) {
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(phys, &mp);
    for (uint32_t t = 0; t < mp.memoryTypeCount; ++t)
        if ((bits >> t & 1u) && (mp.memoryTypes[t].propertyFlags & want) == want) return t;
    fprintf(stderr, "no suitable memory type\n");
    exit(1);
}

static VkBuffer make_buffer(VkDeviceSize size, VkMemoryPropertyFlags want, VkDeviceMemory* memory) {
    VkBufferCreateInfo bci = {VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bci.size = size;
    bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    VkBuffer b;
    VK(vkCreateBuffer(device, &bci, NULL, &b));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(device, b, &req);
    VkMemoryAllocateInfo mai = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    mai.allocationSize = req.size;
    mai.memoryTypeIndex = memory_type(req.memoryTypeBits, want);
    VK(vkAllocateMemory(device, &mai, NULL, memory));
    VK(vkBindBufferMemory(device, b, *memory, 0));
    return b;
}

static void barrier(VkCommandBuffer cb, VkPipelineStageFlags src, VkAccessFlags src_access, VkPipelineStageFlags dst,
                    VkAccessFlags dst_access) {
    VkMemoryBarrier mb = {VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = src_access, mb.dstAccessMask = dst_access;
    vkCmdPipelineBarrier(cb, src, dst, 0, 1, &mb, 0, NULL, 0, NULL);
}

static const VkPipelineStageFlags LIB_STAGES = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;

/* Our dispatch for one layer, with its barriers on both sides. */
static void record_qkv(VkCommandBuffer cb, const QkvParams* p) {
    barrier(cb, LIB_STAGES, VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
            VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    /* Bound again every time: a recorded library call leaves the bindings undefined. */
    vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
    vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0, 1, &set, 0, NULL);
    vkCmdPushConstants(cb, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof *p, p);
    vkCmdDispatch(cb, (p->n * p->d + 63) / 64, p->hq + 2 * p->hkv, 1);
    barrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT, LIB_STAGES,
            VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT);
}

static VkCommandBuffer begin_commands(void) {
    VkCommandBufferAllocateInfo ai = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = pool, ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, ai.commandBufferCount = 1;
    VkCommandBuffer cb;
    VK(vkAllocateCommandBuffers(device, &ai, &cb));
    VkCommandBufferBeginInfo bi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    VK(vkBeginCommandBuffer(cb, &bi));
    return cb;
}

static void submit(VkCommandBuffer cb, VkFence f) {
    VK(vkEndCommandBuffer(cb));
    VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.commandBufferCount = 1, si.pCommandBuffers = &cb;
    VK(vkQueueSubmit(queue, 1, &si, f));
}

static void wait_fence(void) {
    VK(vkWaitForFences(device, 1, &fence, VK_TRUE, UINT64_MAX));
    VK(vkResetFences(device, 1, &fence));
}

static void create_runtime(int want_validation) {
    uint32_t n = 0;
    vkEnumerateInstanceLayerProperties(&n, NULL);
    VkLayerProperties* layers = calloc(n + 1, sizeof *layers);
    vkEnumerateInstanceLayerProperties(&n, layers);
    int have_layer = 0;
    for (uint32_t i = 0; i < n; ++i) have_layer |= strcmp(layers[i].layerName, "VK_LAYER_KHRONOS_validation") == 0;
    free(layers);
    const int validate = want_validation && have_layer;
    const char* layer = "VK_LAYER_KHRONOS_validation";
    const char* exts[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME};
    const VkValidationFeatureEnableEXT sync = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
    VkValidationFeaturesEXT features = {VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
    features.enabledValidationFeatureCount = 1, features.pEnabledValidationFeatures = &sync;
    VkDebugUtilsMessengerCreateInfoEXT dbg = {VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
    dbg.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    dbg.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT;
    dbg.pfnUserCallback = on_message;
    VkApplicationInfo app = {VK_STRUCTURE_TYPE_APPLICATION_INFO};
    app.pApplicationName = "tca vulkan_layers example";
    app.apiVersion = VK_API_VERSION_1_1;
    VkInstanceCreateInfo ici = {VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    ici.pApplicationInfo = &app;
    if (validate) {
        features.pNext = &dbg; /* the messenger also sees what instance creation reports */
        ici.pNext = &features;
        ici.enabledLayerCount = 1, ici.ppEnabledLayerNames = &layer;
        ici.enabledExtensionCount = 2, ici.ppEnabledExtensionNames = exts;
    }
    VK(vkCreateInstance(&ici, NULL, &instance));
    if (validate) {
        PFN_vkCreateDebugUtilsMessengerEXT create =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(instance, "vkCreateDebugUtilsMessengerEXT");
        VK(create(instance, &dbg, NULL, &messenger));
    }
    VK(vkEnumeratePhysicalDevices(instance, &n, NULL));
    VkPhysicalDevice* pds = calloc(n + 1, sizeof *pds);
    VK(vkEnumeratePhysicalDevices(instance, &n, pds));
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
        exit(1);
    }
    const float priority = 1.0f;
    VkDeviceQueueCreateInfo qci = {VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
    qci.queueFamilyIndex = family, qci.queueCount = 1, qci.pQueuePriorities = &priority;
    VkDeviceCreateInfo dci = {VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
    dci.queueCreateInfoCount = 1, dci.pQueueCreateInfos = &qci;
    VK(vkCreateDevice(phys, &dci, NULL, &device));
    vkGetDeviceQueue(device, family, 0, &queue);
    VkCommandPoolCreateInfo cpi = {VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    cpi.flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT, cpi.queueFamilyIndex = family;
    VK(vkCreateCommandPool(device, &cpi, NULL, &pool));
    VkFenceCreateInfo fci = {VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VK(vkCreateFence(device, &fci, NULL, &fence));
}

/* qkv.comp's pipeline; one descriptor set over the four regions of our arena (it never changes:
 * the layer and positions go in push constants). */
static void create_pipeline(const char* spv_path, VkBuffer arena, const VkDeviceSize off[4], const VkDeviceSize size[4]) {
    FILE* f = fopen(spv_path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", spv_path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    const long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint32_t* code = malloc((size_t)bytes + 4);
    if (bytes <= 0 || bytes % 4 || fread(code, 1, (size_t)bytes, f) != (size_t)bytes) {
        fprintf(stderr, "%s is not SPIR-V\n", spv_path);
        exit(1);
    }
    fclose(f);
    VkShaderModuleCreateInfo smi = {VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
    smi.codeSize = (size_t)bytes, smi.pCode = code;
    VkShaderModule module;
    VK(vkCreateShaderModule(device, &smi, NULL, &module));
    free(code);
    VkDescriptorSetLayoutBinding b[4];
    for (uint32_t i = 0; i < 4; ++i) {
        memset(&b[i], 0, sizeof b[i]);
        b[i].binding = i, b[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, b[i].descriptorCount = 1;
        b[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    }
    VkDescriptorSetLayoutCreateInfo dli = {VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
    dli.bindingCount = 4, dli.pBindings = b;
    VK(vkCreateDescriptorSetLayout(device, &dli, NULL, &dsl));
    VkPushConstantRange pcr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(QkvParams)};
    VkPipelineLayoutCreateInfo pli = {VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
    pli.setLayoutCount = 1, pli.pSetLayouts = &dsl, pli.pushConstantRangeCount = 1, pli.pPushConstantRanges = &pcr;
    VK(vkCreatePipelineLayout(device, &pli, NULL, &layout));
    VkComputePipelineCreateInfo cpi = {VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
    cpi.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
    cpi.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT, cpi.stage.module = module, cpi.stage.pName = "main";
    cpi.layout = layout;
    VK(vkCreateComputePipelines(device, VK_NULL_HANDLE, 1, &cpi, NULL, &pipeline));
    vkDestroyShaderModule(device, module, NULL);
    VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 4};
    VkDescriptorPoolCreateInfo dpi = {VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
    dpi.maxSets = 1, dpi.poolSizeCount = 1, dpi.pPoolSizes = &ps;
    VK(vkCreateDescriptorPool(device, &dpi, NULL, &dpool));
    VkDescriptorSetAllocateInfo dai = {VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    dai.descriptorPool = dpool, dai.descriptorSetCount = 1, dai.pSetLayouts = &dsl;
    VK(vkAllocateDescriptorSets(device, &dai, &set));
    VkDescriptorBufferInfo bi[4];
    VkWriteDescriptorSet w[4];
    for (uint32_t i = 0; i < 4; ++i) {
        bi[i].buffer = arena, bi[i].offset = off[i], bi[i].range = size[i];
        memset(&w[i], 0, sizeof w[i]);
        w[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, w[i].dstSet = set, w[i].dstBinding = i;
        w[i].descriptorCount = 1, w[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, w[i].pBufferInfo = &bi[i];
    }
    vkUpdateDescriptorSets(device, 4, w, 0, NULL);
}

typedef struct {
    double chunk_us, decode_us;            /* host time inside tca calls, per call */
    double lib_submits, lib_waits, our_submits; /* per decode step */
    double step_us;                             /* wall time of a decode step, all 32 layers */
} Figures;

static tca_counters counters(tca_context* ctx) {
    tca_counters c = {sizeof(tca_counters)};
    TCA(tca_context_counters(ctx, &c));
    return c;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s qkv.spv [prompt P] [chunk C] [decode steps N]\n", argv[0]);
        return 2;
    }
    const int P = argc > 2 ? atoi(argv[2]) : 256, C = argc > 3 ? atoi(argv[3]) : 64, N = argc > 4 ? atoi(argv[4]) : 4;
    if (P < 1 || C < 1 || N < 1 || P > (1 << 20) || C > 8192 || N > 4096) {
        fprintf(stderr, "prompt, chunk and steps must be positive (chunk <= 8192)\n");
        return 2;
    }
    const char* env = getenv("TCA_VULKAN_VALIDATION");
    create_runtime(env && strcmp(env, "1") == 0);
    VkPhysicalDeviceProperties props;
    vkGetPhysicalDeviceProperties(phys, &props);

    /* One arena of ours: O (read by our shader as the previous layer's output), Q, K, V, each
     * [head][cap][d] f32 at offsets aligned for storage descriptors. */
    const VkDeviceSize align = props.limits.minStorageBufferOffsetAlignment > 256 ? props.limits.minStorageBufferOffsetAlignment : 256;
    const VkDeviceSize qo_bytes = (VkDeviceSize)HQ * C * D * 4, kv_bytes = (VkDeviceSize)HKV * C * D * 4;
    VkDeviceSize off[4], size[4] = {qo_bytes, qo_bytes, kv_bytes, kv_bytes}, total = 0;
    for (int i = 0; i < 4; ++i) off[i] = total, total += (size[i] + align - 1) / align * align;
    VkDeviceMemory arena_mem, host_mem;
    VkBuffer arena = make_buffer(total, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, &arena_mem);
    const VkDeviceSize out_bytes = (VkDeviceSize)HQ * D * 4;
    VkBuffer host = make_buffer(out_bytes, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, &host_mem);
    float* mapped = NULL;
    VK(vkMapMemory(device, host_mem, 0, VK_WHOLE_SIZE, 0, (void**)&mapped));
    create_pipeline(argv[1], arena, off, size);

    tca_vulkan_handles handles = {sizeof(tca_vulkan_handles)};
    handles.instance = instance, handles.physical_device = phys, handles.device = device;
    handles.queue = queue, handles.queue_family = family, handles.api_version = VK_API_VERSION_1_1;
    tca_context* ctx = NULL;
    TCA(tca_context_create_vulkan(&handles, &ctx));

    /* Our regions as tensors, one set per token count a call takes (C, the last chunk's, 1). */
    const int counts[3] = {C, P % C ? P % C : C, 1};
    tca_tensor* t[3][4];
    for (int c = 0; c < 3; ++c)
        for (int r = 0; r < 4; ++r) {
            const int heads = r < 2 ? HQ : HKV;
            tca_tensor_desc desc = {sizeof(tca_tensor_desc), TCA_F32, heads, counts[c], D, (int64_t)C * D, D};
            TCA(tca_tensor_wrap_vulkan(ctx, (uint64_t)arena, total, off[r], &desc, &t[c][r]));
        }

    tca_params params = {sizeof(tca_params)};
    TCA(tca_params_init(&params));
    params.block = 16, params.window = 64;
    tca_profile* profile = NULL;
    TCA(tca_profile_fixed(&params, LAYERS, HQ, HKV, D, 0.25, &profile));
    tca_cache_options opts = {sizeof(tca_cache_options)};
    TCA(tca_cache_options_init(&opts));
    opts.mode = TCA_CACHE_CHUNKED, opts.max_chunk = C;
    tca_cache* cache[LAYERS];
    for (int l = 0; l < LAYERS; ++l)
        TCA(tca_cache_create_ex(ctx, profile, l, HQ, HKV, D, TCA_F32, P + N, &opts, &cache[l]));

    printf("vulkan_layers: %s, %d layers, %d query / %d KV heads, d %d; prompt %d in chunks of %d, %d decode steps, "
           "TCA keep 0.25\n", props.deviceName, LAYERS, HQ, HKV, D, P, C, N);
    float* last[2] = {malloc(out_bytes), malloc(out_bytes)};
    uint64_t sizes[2][LAYERS];
    Figures fig[2];
    int failed = 0;
    VkCommandBuffer ours[LAYERS];
    for (int mode = 0; mode < 2; ++mode) { /* 0 recording, 1 blocking */
        const int recording = mode == 0;
        for (int l = 0; l < LAYERS; ++l) TCA(tca_cache_reset(cache[l]));
        double chunk_us = 0, decode_us = 0, step_us = 0;
        int chunks = 0;
        tca_counters before_decode = {0};
        double our_decode_submits = 0;
        for (int pos = 0; pos < P + N; ++chunks) {
            const int decoding = pos >= P, n = decoding ? 1 : (P - pos < C ? P - pos : C);
            tca_tensor** x = t[decoding ? 2 : (n == C ? 0 : 1)];
            if (decoding && pos == P) before_decode = counters(ctx);
            const double step0 = now_us();
            VkCommandBuffer cb = VK_NULL_HANDLE;
            if (recording) {
                cb = begin_commands();
                TCA(tca_context_vulkan_begin_recording(ctx, cb));
            }
            for (int l = 0; l < LAYERS; ++l) {
                const QkvParams qp = {(uint32_t)l, (uint32_t)pos, (uint32_t)n, (uint32_t)C, HQ, HKV, D, l > 0};
                if (!recording) cb = ours[l] = begin_commands();
                record_qkv(cb, &qp);
                if (!recording) submit(cb, VK_NULL_HANDLE), our_decode_submits += decoding; /* not waited for */
                const double t0 = now_us();
                if (decoding)
                    TCA(tca_cache_decode(cache[l], x[1], x[2], x[3], x[0]));
                else
                    TCA(tca_cache_prefill(cache[l], x[1], x[2], x[3], x[0]));
                *(decoding ? &decode_us : &chunk_us) += now_us() - t0;
            }
            uint64_t ticket = 0;
            const int last_step = pos + n == P + N;
            if (recording) TCA(tca_context_vulkan_end_recording(ctx, &ticket));
            else if (last_step) cb = begin_commands();
            /* The last step: our copy of the last layer's output (query rows of token 0). */
            if (last_step) {
                barrier(cb, LIB_STAGES, VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                        VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT);
                VkBufferCopy rows[HQ];
                for (int h = 0; h < HQ; ++h) rows[h].srcOffset = off[0] + (VkDeviceSize)h * C * D * 4,
                                              rows[h].dstOffset = (VkDeviceSize)h * D * 4, rows[h].size = D * 4;
                vkCmdCopyBuffer(cb, arena, host, HQ, rows);
                barrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT, VK_PIPELINE_STAGE_HOST_BIT,
                        VK_ACCESS_HOST_READ_BIT);
            }
            if (recording || last_step) {
                submit(cb, fence);
                our_decode_submits += decoding;
                wait_fence();
                vkFreeCommandBuffers(device, pool, 1, &cb);
            }
            if (recording) TCA(tca_context_vulkan_release(ctx, ticket));
            /* Blocking: ours are complete, the library waited for its own later submission. */
            else vkFreeCommandBuffers(device, pool, LAYERS, ours);
            if (decoding) step_us += now_us() - step0;
            pos += n;
        }
        const tca_counters after = counters(ctx);
        const int prompt_chunks = chunks - N;
        fig[mode].chunk_us = chunk_us / ((double)prompt_chunks * LAYERS);
        fig[mode].decode_us = decode_us / ((double)N * LAYERS);
        fig[mode].lib_submits = (double)(after.submits - before_decode.submits) / N;
        fig[mode].lib_waits = (double)(after.waits - before_decode.waits) / N;
        fig[mode].our_submits = our_decode_submits / N;
        fig[mode].step_us = step_us / N;
        memcpy(last[mode], mapped, out_bytes);
        for (int l = 0; l < LAYERS; ++l) {
            uint64_t dense = 0;
            int tokens = 0;
            TCA(tca_cache_size(cache[l], &sizes[mode][l], &dense, &tokens));
            failed |= tokens != P + N;
        }
        printf("%-9s host %8.1f us per prefill-chunk call, %8.1f us per decode call; per decode step: %.0f submits "
               "(ours %.0f, the library's %.0f), library waits %.0f; %.1f ms per step\n",
               recording ? "recording" : "blocking", fig[mode].chunk_us, fig[mode].decode_us,
               fig[mode].our_submits + fig[mode].lib_submits, fig[mode].our_submits, fig[mode].lib_submits,
               fig[mode].lib_waits, fig[mode].step_us / 1e3);
    }
    const int same_out = memcmp(last[0], last[1], out_bytes) == 0;
    const int same_sizes = memcmp(sizes[0], sizes[1], sizeof sizes[0]) == 0;
    int finite = 1;
    for (int i = 0; i < HQ * D; ++i) finite &= last[0][i] == last[0][i] && last[0][i] - last[0][i] == 0.0f;
    printf("recording == blocking: last layer's output %s, cache sizes %s (layer 0 holds %llu bytes)\n",
           same_out ? "bit-identical" : "DIFFERENT", same_sizes ? "equal" : "DIFFERENT", (unsigned long long)sizes[0][0]);
    failed |= !same_out || !same_sizes || !finite || fig[0].lib_submits != 0 || fig[0].our_submits != 1;

    for (int l = 0; l < LAYERS; ++l) TCA(tca_cache_destroy(cache[l]));
    for (int c = 0; c < 3; ++c)
        for (int r = 0; r < 4; ++r) tca_tensor_destroy(t[c][r]);
    tca_profile_destroy(profile);
    TCA(tca_context_destroy(ctx));
    VK(vkDeviceWaitIdle(device));
    vkDestroyPipeline(device, pipeline, NULL);
    vkDestroyPipelineLayout(device, layout, NULL);
    vkDestroyDescriptorPool(device, dpool, NULL);
    vkDestroyDescriptorSetLayout(device, dsl, NULL);
    vkDestroyBuffer(device, arena, NULL), vkFreeMemory(device, arena_mem, NULL);
    vkDestroyBuffer(device, host, NULL), vkFreeMemory(device, host_mem, NULL);
    vkDestroyFence(device, fence, NULL);
    vkDestroyCommandPool(device, pool, NULL);
    vkDestroyDevice(device, NULL);
    if (messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(instance, "vkDestroyDebugUtilsMessengerEXT");
        destroy(instance, messenger, NULL);
    }
    vkDestroyInstance(instance, NULL);
    free(last[0]), free(last[1]);
    if (validation_messages) printf("validation layer: %d messages\n", validation_messages);
    return failed || validation_messages ? 1 : 0;
}
