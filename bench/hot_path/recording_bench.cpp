// Host cost of attention calls recorded into the caller's Vulkan command buffer (issue 12 item 2)
// vs the same calls made blocking on the same interop context: microseconds of host time per
// tca_cache_decode call, and submits/waits per step (tca_context_counters). The program plays a
// runtime: it owns the VkInstance, VkDevice, queue, command pool and fence, and submits the
// recorded command buffer itself (one submit for all steps).
//
//   tca_recording_bench [steps]      e.g.  tca_recording_bench 64
//
// Shape as tca_hot_path_bench: 8 query / 2 KV heads, d 128, a 2048-token prompt, window 256,
// block 64, keep 0.25; every step's q/k/v are uploaded before the timed loop.
#include <vulkan/vulkan.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "tca/tca.h"

namespace {

constexpr int kHq = 8, kHkv = 2, kD = 128, kP = 2048;

void check(tca_status s, const char* what) {
    if (s != TCA_OK) {
        std::fprintf(stderr, "%s: %s (%s)\n", what, tca_status_name(s), tca_last_error());
        std::exit(1);
    }
}
void vk(VkResult r, const char* what) {
    if (r != VK_SUCCESS) {
        std::fprintf(stderr, "%s: VkResult %d\n", what, int(r));
        std::exit(1);
    }
}

// The runtime's own objects: the first physical device with a compute queue.
struct Runtime {
    VkInstance instance = VK_NULL_HANDLE;
    VkPhysicalDevice phys = VK_NULL_HANDLE;
    VkDevice device = VK_NULL_HANDLE;
    VkQueue queue = VK_NULL_HANDLE;
    uint32_t family = 0;
    VkCommandPool pool = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    Runtime() {
        VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
        app.apiVersion = VK_API_VERSION_1_2;
        VkInstanceCreateInfo ici{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
        ici.pApplicationInfo = &app;
        vk(vkCreateInstance(&ici, nullptr, &instance), "vkCreateInstance");
        uint32_t n = 0;
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
        if (!phys) {
            std::fprintf(stderr, "no Vulkan device with a compute queue\n");
            std::exit(1);
        }
        const float prio = 1.f;
        VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
        qci.queueFamilyIndex = family, qci.queueCount = 1, qci.pQueuePriorities = &prio;
        VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
        dci.queueCreateInfoCount = 1, dci.pQueueCreateInfos = &qci;
        vk(vkCreateDevice(phys, &dci, nullptr, &device), "vkCreateDevice");
        vkGetDeviceQueue(device, family, 0, &queue);
        VkCommandPoolCreateInfo cpi{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
        cpi.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, cpi.queueFamilyIndex = family;
        vk(vkCreateCommandPool(device, &cpi, nullptr, &pool), "vkCreateCommandPool");
        VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        vk(vkCreateFence(device, &fci, nullptr, &fence), "vkCreateFence");
    }
    ~Runtime() {
        vkDeviceWaitIdle(device);
        vkDestroyFence(device, fence, nullptr);
        vkDestroyCommandPool(device, pool, nullptr);
        vkDestroyDevice(device, nullptr);
        vkDestroyInstance(instance, nullptr);
    }
};

tca_counters counters(tca_context* ctx) {
    tca_counters c{};
    c.struct_size = sizeof c;
    check(tca_context_counters(ctx, &c), "counters");
    return c;
}

struct Figures {
    double us_per_call = 0, us_submit_and_wait = 0, submits = 0, waits = 0;
};

Figures measure(Runtime& rt, int steps, bool recording) {
    tca_vulkan_handles h{sizeof(tca_vulkan_handles), rt.instance, rt.phys, rt.device, rt.queue, rt.family,
                         VK_API_VERSION_1_2, 0u};
    tca_context* ctx = nullptr;
    check(tca_context_create_vulkan(&h, &ctx), "context");
    tca_params params{};
    params.struct_size = sizeof params;
    check(tca_params_init(&params), "params");
    params.window = 256, params.block = 64;
    tca_profile* prof = nullptr;
    check(tca_profile_fixed(&params, 1, kHq, kHkv, kD, 0.25, &prof), "profile");
    tca_cache* cache = nullptr;
    check(tca_cache_create(ctx, prof, 0, kHq, kHkv, kD, TCA_F32, kP + steps, &cache), "cache");
    std::mt19937 rng(7);
    std::normal_distribution<float> nd;
    std::vector<tca_tensor*> all;
    auto tensor = [&](int heads, int n, bool fill) {
        tca_tensor* t = nullptr;
        check(tca_tensor_create(ctx, TCA_F32, heads, n, kD, &t), "tensor");
        if (fill) {
            std::vector<float> x(size_t(heads) * n * kD);
            for (auto& e : x) e = nd(rng);
            check(tca_tensor_upload(t, x.data(), x.size() * 4), "upload");
        }
        all.push_back(t);
        return t;
    };
    tca_tensor *q = tensor(kHq, kP, true), *k = tensor(kHkv, kP, true), *v = tensor(kHkv, kP, true),
               *o = tensor(kHq, kP, false);
    std::vector<tca_tensor*> sq, sk, sv, so;
    for (int s = 0; s < steps; ++s) {
        sq.push_back(tensor(kHq, 1, true)), sk.push_back(tensor(kHkv, 1, true));
        sv.push_back(tensor(kHkv, 1, true)), so.push_back(tensor(kHq, 1, false));
    }
    VkCommandBuffer cb = VK_NULL_HANDLE;
    VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = rt.pool, ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, ai.commandBufferCount = 1;
    vk(vkAllocateCommandBuffers(rt.device, &ai, &cb), "vkAllocateCommandBuffers");
    Figures f;
    for (int pass = 0; pass < 2; ++pass) {  // the first warms up (pipelines, scratch, descriptor pools)
        check(tca_cache_reset(cache), "reset");
        check(tca_cache_prefill(cache, q, k, v, o), "prefill");  // blocking on an interop context
        const tca_counters c0 = counters(ctx);
        if (recording) {
            vk(vkResetCommandBuffer(cb, 0), "vkResetCommandBuffer");
            VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
            bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
            vk(vkBeginCommandBuffer(cb, &bi), "vkBeginCommandBuffer");
            check(tca_context_vulkan_begin_recording(ctx, cb), "begin recording");
        }
        double us = 0;
        for (int s = 0; s < steps; ++s) {
            const auto t0 = std::chrono::steady_clock::now();
            check(tca_cache_decode(cache, sq[s], sk[s], sv[s], so[s]), "decode");
            us += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
        }
        const tca_counters c1 = counters(ctx);
        if (recording) {
            uint64_t ticket = 0;
            check(tca_context_vulkan_end_recording(ctx, &ticket), "end recording");
            const auto t0 = std::chrono::steady_clock::now();
            vk(vkEndCommandBuffer(cb), "vkEndCommandBuffer");
            VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
            si.commandBufferCount = 1, si.pCommandBuffers = &cb;
            vk(vkResetFences(rt.device, 1, &rt.fence), "vkResetFences");
            vk(vkQueueSubmit(rt.queue, 1, &si, rt.fence), "vkQueueSubmit");
            vk(vkWaitForFences(rt.device, 1, &rt.fence, VK_TRUE, UINT64_MAX), "vkWaitForFences");
            f.us_submit_and_wait = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / steps;
            check(tca_context_vulkan_release(ctx, ticket), "release");
        }
        f.us_per_call = us / steps;
        f.submits = double(c1.submits - c0.submits) / steps;
        f.waits = double(c1.waits - c0.waits) / steps;
    }
    vkFreeCommandBuffers(rt.device, rt.pool, 1, &cb);
    check(tca_cache_destroy(cache), "cache destroy");
    for (auto* t : all) tca_tensor_destroy(t);
    tca_profile_destroy(prof);
    check(tca_context_destroy(ctx), "context destroy");
    return f;
}

}  // namespace

int main(int argc, char** argv) {
    const int steps = argc > 1 ? std::atoi(argv[1]) : 64;
    if (steps < 1) return 1;
    Runtime rt;
    VkPhysicalDeviceProperties props{};
    vkGetPhysicalDeviceProperties(rt.phys, &props);
    std::printf("%s, %d decode steps after a %d-token prompt (Hq %d, Hkv %d, d %d)\n", props.deviceName, steps, kP,
                kHq, kHkv, kD);
    for (bool recording : {true, false}) {
        const Figures f = measure(rt, steps, recording);
        std::printf("%-10s host %8.1f us/decode call (%s); per step: %.2f submits, %.2f waits", recording ? "recording" : "blocking",
                    f.us_per_call, recording ? "records only" : "includes the device's work", f.submits, f.waits);
        if (recording) std::printf("; the caller's one submit + wait: %.1f us per step", f.us_submit_and_wait);
        std::printf("\n");
    }
    return 0;
}
