// Fault injection through the C API (device/fault_injection.h). For every entry point on every
// device, the Nth device allocation — and then the Nth kernel build — is made to fail, for
// N = 1, 2, ... until the call gets through without one. Every failed call must
//   * return the real status: TCA_ERROR_OUT_OF_MEMORY / TCA_ERROR_KERNEL_BUILD (never TCA_OK, never
//     TCA_ERROR_INTERNAL, never a crash), with a message;
//   * leave what it was given as it was: input tensors' contents, a cache's size and kept positions,
//     host buffers, and what the context still computes;
//   * leak nothing: retried, the call ends exactly where an untouched twin ends (same results, bit
//     for bit, on later calls too; as many live device buffers), and destroying everything brings
//     the live-buffer count back to where it started.
// Each N runs in a fresh context, so every allocation and kernel build of the call happens again.
// The build hook sits in front of the backends' kernel caches (OpenCL binaries, Vulkan pipeline
// cache), so it fires whether or not TCA_CACHE_DIR already holds the kernels: the cache stays on.
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <vulkan/vulkan.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include "api/handles.h"
#include "backends/opencl/opencl_testing.h"
#include "backends/vulkan/vulkan_testing.h"
#include "cli_run.h"
#include "core/half.h"
#include "device/backends.h"
#include "device/fault_injection.h"
#include "device/registry.h"
#include "harness.h"
#include "method/profile.h"
#include "method/session.h"
#include "tca/tca.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace tca::detail::test {
namespace {

using fault::Kind;

// ---- devices under test ------------------------------------------------------------------------

struct Target {
    std::string device;
    // Vulkan with TCA_VULKAN_FORCE_STAGING=1: device-local buffers reached through staging copies, as
    // on discrete GPUs (lavapipe's memory is host-visible, so uploads and downloads allocate nothing).
    bool staging = false;

    std::string label() const { return safe_name(device) + (staging ? "_staging" : ""); }
    Api api() const {
        return device.rfind("opencl", 0) == 0 ? Api::opencl : device.rfind("vulkan", 0) == 0 ? Api::vulkan : Api::reference;
    }
};

void PrintTo(const Target& t, std::ostream* os) { *os << t.label(); }

std::vector<Target> targets() {
    std::vector<Target> out{{"cpu", false}};
    for (const auto& n : devices_under_test()) {
        if (n == "cpu") continue;
        out.push_back({n, false});
        if (n.rfind("vulkan:", 0) == 0) out.push_back({n, true});
    }
    return out;
}

// ---- what one run makes ----------------------------------------------------------------------------

constexpr int kHq = 4, kHkv = 2, kDim = 16;
constexpr int kBlock = 8, kWindow = 16, kMaxTokens = 96;

using Snapshot = std::map<std::string, std::vector<uint8_t>>;

template <class T>
std::vector<uint8_t> bytes_of(const T* p, size_t n) {
    std::vector<uint8_t> b(n * sizeof(T));
    if (n) std::memcpy(b.data(), p, b.size());
    return b;
}

// A caller's own OpenCL or Vulkan objects (interop cases): buffers it fills and reads itself.
class Caller {
public:
    virtual ~Caller() = default;
    virtual bool ok() const = 0;
    virtual tca_status context(tca_context** out) = 0;
    // A buffer holding `data`, wrapped as a contiguous f32 [h, n, d] tensor at byte offset 64.
    virtual tca_status wrap(tca_context* ctx, const std::vector<float>& data, int h, int n, int d, tca_tensor** out) = 0;
    virtual std::vector<uint8_t> read(tca_tensor* t) = 0;  // the tensor's bytes, through the caller's API
};

tca_status create_context(const Target& t, tca_context** out) {
    if (t.staging) setenv("TCA_VULKAN_FORCE_STAGING", "1", 1);
    const tca_status st = tca_context_create(t.device.c_str(), out);
    if (t.staging) unsetenv("TCA_VULKAN_FORCE_STAGING");
    return st;
}

// Everything one run of a case makes, destroyed whole (caches and tensors, then the context unless
// it was lent, then the caller's objects that must outlive it).
class World {
public:
    World(const Target& t, tca_context* lent) : target(t), lent_(lent) {}
    ~World() {
        for (auto& [n, c] : caches) tca_cache_destroy(c);
        for (auto& [n, t] : tensors) tca_tensor_destroy(t);
        for (auto& [n, p] : profiles) tca_profile_destroy(p);
        if (ctx && ctx != lent_) tca_context_destroy(ctx);
        caller.reset();
    }
    World(const World&) = delete;
    World& operator=(const World&) = delete;

    // A context of its own (the call of ContextCreate), or the lent one when there is one.
    tca_status open(tca_context** out) { return create_context(target, out); }
    void open() {
        if (lent_) ctx = lent_;
        else ASSERT_EQ(open(&ctx), TCA_OK) << tca_last_error();
    }

    // A tensor filled with `data` (converted to f16 for f16 tensors; none: left as created).
    void tensor(const std::string& name, tca_dtype dt, int h, int n, int d, const std::vector<float>& data) {
        tca_tensor*& t = tensors[name];
        ASSERT_EQ(tca_tensor_create(ctx, dt, h, n, d, &t), TCA_OK) << name << ": " << tca_last_error();
        if (!data.empty()) upload(name, data);
    }
    void upload(const std::string& name, const std::vector<float>& data) {
        tca_dtype dt;
        ASSERT_EQ(tca_tensor_shape(tensors.at(name), &dt, nullptr, nullptr, nullptr), TCA_OK);
        if (dt == TCA_F32) {
            ASSERT_EQ(tca_tensor_upload(tensors.at(name), data.data(), data.size() * 4), TCA_OK) << tca_last_error();
            return;
        }
        std::vector<uint16_t> h(data.size());
        for (size_t i = 0; i < h.size(); ++i) h[i] = float_to_half(data[i]);
        ASSERT_EQ(tca_tensor_upload(tensors.at(name), h.data(), h.size() * 2), TCA_OK) << tca_last_error();
    }
    std::vector<uint8_t> download(const std::string& name) {
        tca_tensor* t = tensors.at(name);
        if (caller) return caller->read(t);
        tca_dtype dt;
        int h = 0, n = 0, d = 0;
        EXPECT_EQ(tca_tensor_shape(t, &dt, &h, &n, &d), TCA_OK);
        std::vector<uint8_t> b(size_t(h) * n * d * (dt == TCA_F32 ? 4 : 2));
        EXPECT_EQ(tca_tensor_download(t, b.data(), b.size()), TCA_OK) << name << ": " << tca_last_error();
        return b;
    }

    const Target target;
    tca_context* const lent_;
    tca_context* ctx = nullptr;
    std::unique_ptr<Caller> caller;
    std::map<std::string, tca_tensor*> tensors;
    std::map<std::string, tca_profile*> profiles;
    std::map<std::string, tca_cache*> caches;
    std::vector<uint8_t> host;  // a host buffer a call writes into
    tca_dtype kv = TCA_F32;     // the cache's K/V type
};

std::vector<float> data(size_t n, uint32_t seed) { return randn(n, seed); }

// Inputs of a [heads, tokens, dim] tensor, the same in every run of a case.
void input(World& w, const std::string& name, tca_dtype dt, int h, int n, uint32_t seed) {
    w.tensor(name, dt, h, n, kDim, data(size_t(h) * n * kDim, seed));
}
// An output tensor holding a sentinel (distinct from any result).
void output(World& w, const std::string& name, int h, int n) {
    w.tensor(name, TCA_F32, h, n, kDim, std::vector<float>(size_t(h) * n * kDim, -7.5f));
}

void keep(Snapshot& s, World& w, std::initializer_list<const char*> names) {
    for (const char* n : names) s[n] = w.download(n);
}

tca_params params() {
    tca_params p{sizeof(tca_params)};
    tca_params_init(&p);
    p.block = kBlock, p.window = kWindow;
    return p;
}

void fixed_profile(World& w) {
    const tca_params p = params();
    ASSERT_EQ(tca_profile_fixed(&p, 1, kHq, kHkv, kDim, 0.4, &w.profiles["fixed"]), TCA_OK) << tca_last_error();
}

tca_status create_cache(World& w, bool tca) {
    tca_cache*& c = w.caches["c"];
    const tca_status st = tca_cache_create(w.ctx, tca ? w.profiles.at("fixed") : nullptr, 0, kHq, kHkv, kDim, w.kv,
                                           kMaxTokens, &c);
    if (st != TCA_OK) {
        EXPECT_EQ(c, nullptr) << "a failed create returns no handle";
    }
    return st;
}

// Prompt tensors of P tokens and the one-token step tensors of the cache cases.
void cache_inputs(World& w, int P) {
    input(w, "q", TCA_F32, kHq, P, 1);
    input(w, "k", w.kv, kHkv, P, 2);
    input(w, "v", w.kv, kHkv, P, 3);
    output(w, "o", kHq, P);
    w.tensor("q1", TCA_F32, kHq, 1, kDim, {});
    w.tensor("k1", w.kv, kHkv, 1, kDim, {});
    w.tensor("v1", w.kv, kHkv, 1, kDim, {});
    output(w, "o1", kHq, 1);
}

tca_status prefill(World& w) {
    auto& t = w.tensors;
    return tca_cache_prefill(w.caches.at("c"), t.at("q"), t.at("k"), t.at("v"), t.at("o"));
}

// Decode step s: its token's q/k/v (a function of s only) into the step tensors, then the call.
void step_inputs(World& w, int s) {
    w.upload("q1", data(size_t(kHq) * kDim, 100 + 3 * s));
    w.upload("k1", data(size_t(kHkv) * kDim, 101 + 3 * s));
    w.upload("v1", data(size_t(kHkv) * kDim, 102 + 3 * s));
}
tca_status decode(World& w) {
    auto& t = w.tensors;
    return tca_cache_decode(w.caches.at("c"), t.at("q1"), t.at("k1"), t.at("v1"), t.at("o1"));
}
void decode_steps(World& w, int s0, int n, Snapshot* out = nullptr) {
    for (int s = s0; s < s0 + n; ++s) {
        step_inputs(w, s);
        ASSERT_EQ(decode(w), TCA_OK) << "step " << s << ": " << tca_last_error();
        if (out) (*out)["o1 step " + std::to_string(s)] = w.download("o1");
    }
}

// What a cache reports: its size and each KV head's kept positions.
void cache_state(Snapshot& s, World& w) {
    const tca_cache* c = w.caches.at("c");
    uint64_t b[2] = {0, 0};
    int tokens = 0;
    EXPECT_EQ(tca_cache_size(c, &b[0], &b[1], &tokens), TCA_OK) << tca_last_error();
    s["cache size"] = bytes_of(b, 2);
    s["cache tokens"] = bytes_of(&tokens, 1);
    for (int h = 0; h < kHkv; ++h) {
        std::vector<int32_t> pos(kMaxTokens, -1);
        int count = -1;
        EXPECT_EQ(tca_cache_kept_positions(c, h, pos.data(), kMaxTokens, &count), TCA_OK) << tca_last_error();
        pos.resize(size_t(std::max(count, 0)));
        s["kept positions " + std::to_string(h)] = bytes_of(pos.data(), pos.size());
    }
}

// ---- interop callers ---------------------------------------------------------------------------

class ClCaller final : public Caller {
public:
    ClCaller() {
        cl_platform_id p = nullptr;
        cl_uint n = 0;
        if (clGetPlatformIDs(1, &p, &n) != CL_SUCCESS || n == 0) return;
        if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &dev_, &n) != CL_SUCCESS || n == 0) return;
        cl_int err = CL_SUCCESS;
        const cl_context_properties cp[] = {CL_CONTEXT_PLATFORM, cl_context_properties(p), 0};
        context_ = clCreateContext(cp, 1, &dev_, nullptr, nullptr, &err);
        if (err == CL_SUCCESS) queue_ = clCreateCommandQueue(context_, dev_, CL_QUEUE_PROFILING_ENABLE, &err);
    }
    ~ClCaller() override {
        for (auto& [t, m] : mems_) clReleaseMemObject(m);
        if (queue_) clReleaseCommandQueue(queue_);
        if (context_) clReleaseContext(context_);
    }
    bool ok() const override { return queue_ != nullptr; }
    tca_status context(tca_context** out) override { return tca_context_create_opencl(context_, dev_, queue_, out); }
    tca_status wrap(tca_context* ctx, const std::vector<float>& x, int h, int n, int d, tca_tensor** out) override {
        cl_int err = CL_SUCCESS;
        cl_mem m = clCreateBuffer(context_, CL_MEM_READ_WRITE, 64 + x.size() * 4, nullptr, &err);
        EXPECT_EQ(err, CL_SUCCESS);
        EXPECT_EQ(clEnqueueWriteBuffer(queue_, m, CL_TRUE, 64, x.size() * 4, x.data(), 0, nullptr, nullptr), CL_SUCCESS);
        const tca_tensor_desc desc{sizeof(tca_tensor_desc), TCA_F32, h, n, d, 0, 0};
        const tca_status st = tca_tensor_wrap_opencl(ctx, m, 64, &desc, out);
        if (st == TCA_OK) mems_[*out] = m, sizes_[*out] = x.size() * 4;
        else clReleaseMemObject(m);
        return st;
    }
    std::vector<uint8_t> read(tca_tensor* t) override {
        std::vector<uint8_t> b(sizes_.at(t));
        EXPECT_EQ(clEnqueueReadBuffer(queue_, mems_.at(t), CL_TRUE, 64, b.size(), b.data(), 0, nullptr, nullptr), CL_SUCCESS);
        return b;
    }

private:
    cl_device_id dev_ = nullptr;
    cl_context context_ = nullptr;
    cl_command_queue queue_ = nullptr;
    std::map<tca_tensor*, cl_mem> mems_;
    std::map<tca_tensor*, size_t> sizes_;
};

// The caller's Vulkan device and host-visible buffers it writes and reads through their mapping.
class VkCaller final : public Caller {
public:
    VkCaller() {
        VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
        app.apiVersion = VK_API_VERSION_1_2;
        VkInstanceCreateInfo ici{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
        ici.pApplicationInfo = &app;
        if (vkCreateInstance(&ici, nullptr, &instance_) != VK_SUCCESS) return;
        uint32_t n = 1;
        if (vkEnumeratePhysicalDevices(instance_, &n, &phys_) < 0 || n == 0) return;
        uint32_t nq = 0;
        vkGetPhysicalDeviceQueueFamilyProperties(phys_, &nq, nullptr);
        std::vector<VkQueueFamilyProperties> qf(nq);
        vkGetPhysicalDeviceQueueFamilyProperties(phys_, &nq, qf.data());
        while (family_ < nq && !(qf[family_].queueFlags & VK_QUEUE_COMPUTE_BIT)) ++family_;
        if (family_ == nq) return;
        const float prio = 1.f;
        VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
        qci.queueFamilyIndex = family_, qci.queueCount = 1, qci.pQueuePriorities = &prio;
        VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
        dci.queueCreateInfoCount = 1, dci.pQueueCreateInfos = &qci;
        if (vkCreateDevice(phys_, &dci, nullptr, &device_) != VK_SUCCESS) return;
        vkGetDeviceQueue(device_, family_, 0, &queue_);
    }
    ~VkCaller() override {
        if (device_) {
            vkDeviceWaitIdle(device_);
            for (auto& [t, b] : bufs_) unwrapped_.push_back(b);
            for (auto& b : unwrapped_) {
                vkDestroyBuffer(device_, b.buffer, nullptr);
                vkFreeMemory(device_, b.memory, nullptr);
            }
            vkDestroyDevice(device_, nullptr);
        }
        if (instance_) vkDestroyInstance(instance_, nullptr);
    }
    bool ok() const override { return queue_ != VK_NULL_HANDLE; }
    tca_status context(tca_context** out) override {
        const tca_vulkan_handles h{sizeof(tca_vulkan_handles), instance_, phys_, device_, queue_, family_, VK_API_VERSION_1_2, 0};
        return tca_context_create_vulkan(&h, out);
    }
    tca_status wrap(tca_context* ctx, const std::vector<float>& x, int h, int n, int d, tca_tensor** out) override {
        Buf b;
        b.bytes = x.size() * 4;
        VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
        bci.size = 64 + b.bytes;
        bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
        EXPECT_EQ(vkCreateBuffer(device_, &bci, nullptr, &b.buffer), VK_SUCCESS);
        VkMemoryRequirements req;
        vkGetBufferMemoryRequirements(device_, b.buffer, &req);
        VkPhysicalDeviceMemoryProperties mp;
        vkGetPhysicalDeviceMemoryProperties(phys_, &mp);
        const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        uint32_t type = 0;
        while (type < mp.memoryTypeCount &&
               !((req.memoryTypeBits >> type & 1) && (mp.memoryTypes[type].propertyFlags & want) == want))
            ++type;
        VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
        mai.allocationSize = req.size, mai.memoryTypeIndex = type;
        EXPECT_EQ(vkAllocateMemory(device_, &mai, nullptr, &b.memory), VK_SUCCESS);
        EXPECT_EQ(vkBindBufferMemory(device_, b.buffer, b.memory, 0), VK_SUCCESS);
        void* p = nullptr;
        EXPECT_EQ(vkMapMemory(device_, b.memory, 0, VK_WHOLE_SIZE, 0, &p), VK_SUCCESS);
        b.mapped = static_cast<uint8_t*>(p) + 64;
        std::memcpy(b.mapped, x.data(), b.bytes);
        const tca_tensor_desc desc{sizeof(tca_tensor_desc), TCA_F32, h, n, d, 0, 0};
        const tca_status st = tca_tensor_wrap_vulkan(ctx, (uint64_t)b.buffer, 64 + b.bytes, 64, &desc, out);
        if (st == TCA_OK) bufs_[*out] = b;
        else unwrapped_.push_back(b);  // freed with the rest
        return st;
    }
    std::vector<uint8_t> read(tca_tensor* t) override {
        const Buf& b = bufs_.at(t);
        return std::vector<uint8_t>(b.mapped, b.mapped + b.bytes);  // the call waited for its work
    }

private:
    struct Buf {
        VkBuffer buffer = VK_NULL_HANDLE;
        VkDeviceMemory memory = VK_NULL_HANDLE;
        uint8_t* mapped = nullptr;
        size_t bytes = 0;
    };
    VkInstance instance_ = VK_NULL_HANDLE;
    VkPhysicalDevice phys_ = VK_NULL_HANDLE;
    VkDevice device_ = VK_NULL_HANDLE;
    VkQueue queue_ = VK_NULL_HANDLE;
    uint32_t family_ = 0;
    std::map<tca_tensor*, Buf> bufs_;
    std::vector<Buf> unwrapped_;
};

// An interop context on the caller's objects for the target's API.
void open_interop(World& w) {
    if (w.target.api() == Api::opencl) w.caller = std::make_unique<ClCaller>();
    else w.caller = std::make_unique<VkCaller>();
    ASSERT_TRUE(w.caller->ok()) << "the caller's own " << w.target.device << " objects";
    ASSERT_EQ(w.caller->context(&w.ctx), TCA_OK) << tca_last_error();
}

tca_status wrap_inputs(World& w) {
    const int L = 32;
    const std::pair<const char*, std::vector<float>> xs[] = {
        {"q", data(size_t(kHq) * L * kDim, 1)}, {"k", data(size_t(kHkv) * L * kDim, 2)},
        {"v", data(size_t(kHkv) * L * kDim, 3)}, {"o", std::vector<float>(size_t(kHq) * L * kDim, -7.5f)}};
    for (const auto& [name, x] : xs) {
        if (w.tensors.count(name)) continue;  // wrapped by an earlier attempt
        tca_tensor*& t = w.tensors[name];
        const int heads = name[0] == 'k' || name[0] == 'v' ? kHkv : kHq;
        if (const tca_status st = w.caller->wrap(w.ctx, x, heads, L, kDim, &t); st != TCA_OK) {
            EXPECT_EQ(t, nullptr);
            w.tensors.erase(name);
            return st;
        }
    }
    return TCA_OK;
}

tca_status dense_prefill(World& w) {
    auto& t = w.tensors;
    return tca_dense_prefill(w.ctx, t.at("q"), t.at("k"), t.at("v"), t.at("o"), 0.f);
}

// ---- the cases: one per entry point and state worth failing in ----------------------------------

struct Case {
    const char* name;
    std::function<void(World&)> setup;        // unarmed: must succeed
    std::function<tca_status(World&)> call;   // the entry point under test
    std::function<Snapshot(World&)> observe;  // what a failed call must leave as it was
    std::function<Snapshot(World&)> after;    // results once the call succeeded (compared with the twin)
    bool own_context = false;                 // makes its context itself (never a lent one)
    bool interop = false;                     // needs the caller's own OpenCL / Vulkan objects
    bool retry = true;                        // false: a failed call is not retried (a long call)
    bool staging = true;                      // worth a run on Vulkan with staging copies too
};

Snapshot nothing(World&) { return {}; }

// The same dense decode over few keys the context ran before: it must still compute the same.
void small_decode(World& w, Snapshot& s) {
    auto& t = w.tensors;
    EXPECT_EQ(tca_dense_decode(w.ctx, t.at("q1"), t.at("k"), t.at("v"), 64, t.at("o_small"), 0.f), TCA_OK) << tca_last_error();
    s["small decode"] = w.download("o_small");
}

std::vector<Case> cases() {
    std::vector<Case> c;
    c.push_back({"ContextCreate", [](World&) {}, [](World& w) { return w.open(&w.ctx); }, nothing,
                 [](World& w) {
                     Snapshot s;
                     input(w, "q", TCA_F32, kHq, 24, 1), input(w, "k", TCA_F32, kHkv, 24, 2), input(w, "v", TCA_F32, kHkv, 24, 3);
                     output(w, "o", kHq, 24);
                     EXPECT_EQ(dense_prefill(w), TCA_OK) << tca_last_error();
                     keep(s, w, {"o"});
                     return s;
                 },
                 true});
    c.push_back({"TensorCreate", [](World& w) { w.open(); },
                 [](World& w) {
                     tca_tensor*& t = w.tensors["x"];
                     const tca_status st = tca_tensor_create(w.ctx, TCA_F32, kHq, 40, kDim, &t);
                     if (st != TCA_OK) {
                         EXPECT_EQ(t, nullptr) << "a failed create returns no handle";
                         w.tensors.erase("x");
                     }
                     return st;
                 },
                 nothing,
                 [](World& w) {
                     w.upload("x", data(size_t(kHq) * 40 * kDim, 9));
                     Snapshot s;
                     keep(s, w, {"x"});
                     return s;
                 }});
    c.push_back({"TensorUpload", [](World& w) { w.open(), input(w, "x", TCA_F32, kHq, 40, 1); },
                 [](World& w) {
                     const auto x = data(size_t(kHq) * 40 * kDim, 2);
                     return tca_tensor_upload(w.tensors.at("x"), x.data(), x.size() * 4);
                 },
                 [](World& w) {
                     Snapshot s;
                     keep(s, w, {"x"});
                     return s;
                 },
                 [](World& w) {
                     Snapshot s;
                     keep(s, w, {"x"});
                     return s;
                 }});
    c.push_back({"TensorDownloadF16",
                 [](World& w) {
                     w.open(), input(w, "x", TCA_F16, kHkv, 40, 1);
                     w.host.assign(size_t(kHkv) * 40 * kDim * 2, 0x5a);
                 },
                 [](World& w) { return tca_tensor_download(w.tensors.at("x"), w.host.data(), w.host.size()); },
                 [](World& w) {
                     Snapshot s;
                     keep(s, w, {"x"});
                     s["host"] = w.host;
                     return s;
                 },
                 [](World& w) { return Snapshot{{"host", w.host}}; }});
    for (const tca_dtype kv : {TCA_F32, TCA_F16})
        c.push_back({kv == TCA_F32 ? "DensePrefill" : "DensePrefillF16",
                     [kv](World& w) {
                         w.open();
                         input(w, "q", TCA_F32, kHq, 40, 1), input(w, "k", kv, kHkv, 40, 2), input(w, "v", kv, kHkv, 40, 3);
                         output(w, "o", kHq, 40);
                     },
                     dense_prefill,
                     [](World& w) {
                         Snapshot s;
                         keep(s, w, {"q", "k", "v"});
                         return s;
                     },
                     [](World& w) {
                         Snapshot s;
                         keep(s, w, {"o"});
                         return s;
                     }});
    c.push_back({"DensePrefillChunk",
                 [](World& w) {
                     w.open();
                     input(w, "q", TCA_F32, kHq, 16, 1), input(w, "k", TCA_F32, kHkv, 48, 2), input(w, "v", TCA_F32, kHkv, 48, 3);
                     output(w, "o", kHq, 16);
                 },
                 [](World& w) {
                     auto& t = w.tensors;
                     return tca_dense_prefill_chunk(w.ctx, t.at("q"), t.at("k"), t.at("v"), t.at("o"), 32, 0.f);
                 },
                 [](World& w) {
                     Snapshot s;
                     keep(s, w, {"q", "k", "v"});
                     return s;
                 },
                 [](World& w) {
                     Snapshot s;
                     keep(s, w, {"o"});
                     return s;
                 }});
    // Decode over many keys after one over few: the backends' scratch grows (more split-K partials),
    // and a failed growth must not leave the smaller call without its scratch.
    c.push_back({"DenseDecodeGrowingScratch",
                 [](World& w) {
                     w.open();
                     input(w, "q1", TCA_F32, kHq, 1, 1), input(w, "k", TCA_F32, kHkv, 4096, 2);
                     input(w, "v", TCA_F32, kHkv, 4096, 3);
                     output(w, "o", kHq, 1), output(w, "o_small", kHq, 1);
                     Snapshot ignored;
                     small_decode(w, ignored);
                 },
                 [](World& w) {
                     auto& t = w.tensors;
                     return tca_dense_decode(w.ctx, t.at("q1"), t.at("k"), t.at("v"), 4096, t.at("o"), 0.f);
                 },
                 [](World& w) {
                     Snapshot s;
                     keep(s, w, {"q1", "k", "v"});
                     small_decode(w, s);
                     return s;
                 },
                 [](World& w) {
                     Snapshot s;
                     keep(s, w, {"o"});
                     small_decode(w, s);
                     return s;
                 }});
    c.push_back({"ProfileFixed", [](World& w) { w.open(); },
                 [](World& w) {
                     const tca_params p = params();
                     tca_profile*& prof = w.profiles["fixed"];
                     const tca_status st = tca_profile_fixed(&p, 1, kHq, kHkv, kDim, 0.4, &prof);
                     if (st != TCA_OK) {
                         EXPECT_EQ(prof, nullptr);
                         w.profiles.erase("fixed");
                     }
                     return st;
                 },
                 nothing,
                 [](World& w) {
                     double r[kHkv];
                     for (int h = 0; h < kHkv; ++h) EXPECT_EQ(tca_profile_keep_ratio(w.profiles.at("fixed"), 0, h, &r[h]), TCA_OK);
                     return Snapshot{{"keep ratios", bytes_of(r, kHkv)}};
                 }});
    c.push_back({"Calibrate",
                 [](World& w) { w.open(), input(w, "q", TCA_F32, kHq, 64, 1), input(w, "k", TCA_F32, kHkv, 64, 2); },
                 [](World& w) {
                     const tca_params p = params();
                     const tca_tensor* q = w.tensors.at("q");
                     const tca_tensor* k = w.tensors.at("k");
                     tca_profile*& prof = w.profiles["calibrated"];
                     const tca_status st = tca_calibrate(w.ctx, &p, 1, &q, &k, &prof);
                     if (st != TCA_OK) {
                         EXPECT_EQ(prof, nullptr);
                         w.profiles.erase("calibrated");
                     }
                     return st;
                 },
                 [](World& w) {
                     Snapshot s;
                     keep(s, w, {"q", "k"});
                     return s;
                 },
                 [](World& w) {
                     double r[kHkv];
                     for (int h = 0; h < kHkv; ++h)
                         EXPECT_EQ(tca_profile_keep_ratio(w.profiles.at("calibrated"), 0, h, &r[h]), TCA_OK);
                     return Snapshot{{"keep ratios", bytes_of(r, kHkv)}};
                 }});
    // The cache: created, then fed its prompt, then decoded — each call failing in the state that
    // exercises the most. Prompts of 48 tokens select over 32 global tokens (4 blocks of 8); a
    // 12-token prompt fits the window (a dense prefill, no selection kernels yet). The window and the
    // pending block fill after 8 decode steps past a 48-token prompt, 12 past a 12-token one.
    for (const bool tca : {true, false})
        c.push_back({tca ? "CacheCreateTca" : "CacheCreateDense",
                     [](World& w) { w.open(), fixed_profile(w), cache_inputs(w, 48); },
                     [tca](World& w) {
                         const tca_status st = create_cache(w, tca);
                         if (st != TCA_OK) w.caches.erase("c");
                         return st;
                     },
                     nothing,
                     [](World& w) {
                         Snapshot s;
                         EXPECT_EQ(prefill(w), TCA_OK) << tca_last_error();
                         keep(s, w, {"o"});
                         decode_steps(w, 0, 10, &s);
                         cache_state(s, w);
                         return s;
                     }});
    struct PrefillCase {
        const char* name;
        bool tca;
        tca_dtype kv;
        int prompt;
    };
    for (const PrefillCase& pc : {PrefillCase{"CachePrefillTca", true, TCA_F32, 48},
                                  PrefillCase{"CachePrefillTcaF16", true, TCA_F16, 48},
                                  PrefillCase{"CachePrefillTcaWithinWindow", true, TCA_F32, 12},
                                  PrefillCase{"CachePrefillDense", false, TCA_F32, 48}})
        c.push_back({pc.name,
                     [pc](World& w) {
                         w.open(), w.kv = pc.kv, fixed_profile(w), cache_inputs(w, pc.prompt);
                         ASSERT_EQ(create_cache(w, pc.tca), TCA_OK) << tca_last_error();
                     },
                     prefill,
                     [](World& w) {
                         Snapshot s;
                         keep(s, w, {"q", "k", "v"});
                         cache_state(s, w);
                         return s;
                     },
                     [](World& w) {
                         Snapshot s;
                         keep(s, w, {"o"});
                         cache_state(s, w);
                         decode_steps(w, 0, 14, &s);  // past the first compression
                         cache_state(s, w);
                         return s;
                     }});
    struct DecodeCase {
        const char* name;
        bool tca;
        int prompt, steps_before;
    };
    for (const DecodeCase& dc : {DecodeCase{"CacheDecodeTca", true, 48, 0},
                                 DecodeCase{"CacheDecodeTcaCompressing", true, 48, 7},
                                 DecodeCase{"CacheDecodeTcaFirstSelection", true, 12, 11},
                                 DecodeCase{"CacheDecodeDense", false, 48, 0}})
        c.push_back({dc.name,
                     [dc](World& w) {
                         w.open(), fixed_profile(w), cache_inputs(w, dc.prompt);
                         ASSERT_EQ(create_cache(w, dc.tca), TCA_OK) << tca_last_error();
                         ASSERT_EQ(prefill(w), TCA_OK) << tca_last_error();
                         decode_steps(w, 0, dc.steps_before);
                         step_inputs(w, dc.steps_before);
                     },
                     decode,
                     [](World& w) {
                         Snapshot s;
                         keep(s, w, {"q1", "k1", "v1"});
                         cache_state(s, w);
                         return s;
                     },
                     [dc](World& w) {
                         Snapshot s;
                         keep(s, w, {"o1"});
                         cache_state(s, w);
                         decode_steps(w, dc.steps_before + 1, 9, &s);  // through the next compression
                         cache_state(s, w);
                         return s;
                     }});
    c.push_back({"CacheReset",
                 [](World& w) {
                     w.open(), fixed_profile(w), cache_inputs(w, 48);
                     ASSERT_EQ(create_cache(w, true), TCA_OK) << tca_last_error();
                     ASSERT_EQ(prefill(w), TCA_OK) << tca_last_error();
                     decode_steps(w, 0, 3);
                 },
                 [](World& w) { return tca_cache_reset(w.caches.at("c")); },
                 [](World& w) {
                     Snapshot s;
                     cache_state(s, w);
                     return s;
                 },
                 [](World& w) {
                     Snapshot s;
                     cache_state(s, w);
                     EXPECT_EQ(prefill(w), TCA_OK) << tca_last_error();
                     keep(s, w, {"o"});
                     decode_steps(w, 0, 2, &s);
                     return s;
                 }});
    c.push_back({"CacheSize",
                 [](World& w) {
                     w.open(), fixed_profile(w), cache_inputs(w, 48);
                     ASSERT_EQ(create_cache(w, true), TCA_OK) << tca_last_error();
                     ASSERT_EQ(prefill(w), TCA_OK) << tca_last_error();
                     w.host.assign(sizeof(uint64_t) * 2 + sizeof(int), 0x5a);
                 },
                 [](World& w) {
                     uint64_t b[2];
                     int n = 0;
                     const tca_status st = tca_cache_size(w.caches.at("c"), &b[0], &b[1], &n);
                     if (st == TCA_OK) std::memcpy(w.host.data(), b, sizeof b), std::memcpy(w.host.data() + sizeof b, &n, sizeof n);
                     return st;
                 },
                 [](World& w) {
                     Snapshot s;
                     cache_state(s, w);
                     return s;
                 },
                 [](World& w) { return Snapshot{{"host", w.host}}; }});
    c.push_back({"CacheKeptPositions",
                 [](World& w) {
                     w.open(), fixed_profile(w), cache_inputs(w, 48);
                     ASSERT_EQ(create_cache(w, true), TCA_OK) << tca_last_error();
                     ASSERT_EQ(prefill(w), TCA_OK) << tca_last_error();
                     w.host.assign(sizeof(int32_t) * (kMaxTokens + 1), 0x5a);
                 },
                 [](World& w) {
                     auto* count = reinterpret_cast<int*>(w.host.data());
                     return tca_cache_kept_positions(w.caches.at("c"), 1, reinterpret_cast<int32_t*>(w.host.data()) + 1,
                                                     kMaxTokens, count);
                 },
                 [](World& w) {
                     Snapshot s;
                     cache_state(s, w);
                     s["host"] = w.host;
                     return s;
                 },
                 [](World& w) { return Snapshot{{"host", w.host}}; }});
    // The roofline runs for seconds on the CPU drivers, so its failed calls are not retried: each
    // failure point is checked for status, leaks and the context's profiling state left as it was.
    // Staging adds only its GEMM inputs' uploads to it: not worth another minute on lavapipe.
    c.push_back({"Roofline",
                 [](World& w) {
                     w.open();
                     input(w, "q", TCA_F32, kHq, 8, 1), input(w, "k", TCA_F32, kHkv, 8, 2), input(w, "v", TCA_F32, kHkv, 8, 3);
                     output(w, "o", kHq, 8);
                 },
                 [](World& w) {
                     tca_roofline r{sizeof(tca_roofline)};
                     const tca_status st = tca_device_roofline(w.ctx, &r);
                     if (st != TCA_OK) return st;
                     // What does not depend on timing: sizes, run counts, engines, and which rates exist.
                     const int facts[] = {int(r.copy_bytes), r.gemm_size, r.runs, r.host_timed, r.copy_gbps > 0,
                                          r.f32_gflops > 0, r.f16_gflops > 0};
                     w.host = bytes_of(facts, std::size(facts));
                     for (const char* e : {r.copy_engine, r.f32_engine, r.f16_engine}) w.host.insert(w.host.end(), e, e + std::strlen(e) + 1);
                     return st;
                 },
                 [](World& w) {
                     // Profiling stays off: a call's stats then hold no times.
                     EXPECT_EQ(dense_prefill(w), TCA_OK) << tca_last_error();
                     tca_call_stats st{sizeof(tca_call_stats)};
                     EXPECT_EQ(tca_context_last_stats(w.ctx, &st), TCA_OK);
                     const int timed = st.total_ms > 0;
                     return Snapshot{{"profiling", bytes_of(&timed, 1)}};
                 },
                 [](World& w) { return Snapshot{{"roofline", w.host}}; }, false, false, false, false});
    // Interop: the caller's buffers wrapped (no device memory of ours), then attention on them.
    c.push_back({"InteropWrap", open_interop, wrap_inputs, nothing,
                 [](World& w) {
                     Snapshot s;
                     EXPECT_EQ(dense_prefill(w), TCA_OK) << tca_last_error();
                     keep(s, w, {"o"});
                     return s;
                 },
                 true, true});
    c.push_back({"InteropDensePrefill",
                 [](World& w) {
                     open_interop(w);
                     ASSERT_EQ(wrap_inputs(w), TCA_OK) << tca_last_error();
                 },
                 dense_prefill,
                 [](World& w) {
                     Snapshot s;
                     keep(s, w, {"q", "k", "v"});
                     return s;
                 },
                 [](World& w) {
                     Snapshot s;
                     keep(s, w, {"o"});
                     return s;
                 },
                 true, true});
    return c;
}

// ---- the driver ----------------------------------------------------------------------------------

constexpr uint64_t kMaxPoints = 400;  // no call of these cases comes near; more means a loop

void expect_same(const Snapshot& got, const Snapshot& want, const std::string& what) {
    EXPECT_EQ(got.size(), want.size()) << what;
    for (const auto& [key, bytes] : want) {
        const auto it = got.find(key);
        if (it == got.end()) {
            ADD_FAILURE() << what << ": '" << key << "' missing";
            continue;
        }
        EXPECT_TRUE(it->second == bytes) << what << ": '" << key << "' differs";
    }
}

const char* kind_name(Kind k) { return k == Kind::alloc ? "allocation" : "kernel build"; }

// Where a run starts from. Kernels are built once per context, so the build pass opens a fresh
// context for every run. The allocation pass lends every run one context (kernels built once, which
// keeps the GPU backends' runs short) and frees its scratch before each, so that each run allocates
// everything a fresh context would — and each run also shows the context still works after the
// previous run's failure.
class Start {
public:
    Start(const Case& c, const Target& t, Kind kind) : target_(t) {
        if (kind == Kind::alloc && !c.own_context) {
            EXPECT_EQ(create_context(t, &lent_), TCA_OK) << tca_last_error();
        }
    }
    ~Start() {
        if (lent_) tca_context_destroy(lent_);
    }
    tca_context* lent() const { return lent_; }
    // Before a run (and after it, before counting buffers): the lent context without scratch.
    void reset() {
        if (!lent_) return;
        Device& dev = *lent_->device;
        if (target_.api() == Api::opencl) opencl_testing::release_scratch(dev);
        if (target_.api() == Api::vulkan) vulkan_testing::release_scratch(dev);
    }

private:
    const Target target_;
    tca_context* lent_ = nullptr;
};

// Every failure point of one kind of one case on one target; returns how many there were.
int drive(const Case& c, const Target& target, Kind kind) {
    const Api api = target.api();
    Start start(c, target, kind);
    if (::testing::Test::HasFailure()) return 0;
    start.reset();
    const int64_t base = fault::live_buffers(api);
    Snapshot twin;
    int64_t twin_live = 0;
    {
        World w(target, start.lent());
        c.setup(w);
        if (::testing::Test::HasFatalFailure()) return 0;
        c.observe(w);
        const tca_status st = c.call(w);
        EXPECT_EQ(st, TCA_OK) << "untouched twin: " << tca_last_error();
        if (st != TCA_OK) return 0;
        twin = c.after(w);
        EXPECT_EQ(tca_context_finish(w.ctx), TCA_OK);
        twin_live = fault::live_buffers(api);
    }
    start.reset();
    EXPECT_EQ(fault::live_buffers(api), base) << "the untouched twin leaked device buffers";
    const tca_status expected = kind == Kind::alloc ? TCA_ERROR_OUT_OF_MEMORY : TCA_ERROR_KERNEL_BUILD;
    for (uint64_t n = 1; n <= kMaxPoints; ++n) {
        SCOPED_TRACE(std::string(c.name) + " on " + target.label() + ": " + kind_name(kind) + " #" + std::to_string(n) +
                     " fails");
        bool fired = false;
        {
            World w(target, start.lent());
            c.setup(w);
            if (::testing::Test::HasFatalFailure()) return 0;
            const Snapshot before = c.observe(w);
            fault::arm(kind, n);
            const tca_status st = c.call(w);
            fired = fault::fired();
            const uint64_t seen = fault::events(kind);
            fault::disarm();
            if (!fired) {
                // Past the last failure point: the call goes through as the twin's did.
                EXPECT_EQ(st, TCA_OK) << tca_last_error();
                EXPECT_EQ(seen, n - 1) << "the same run met a different number of failure points";
                expect_same(c.after(w), twin, "results");
            } else {
                EXPECT_EQ(st, expected) << tca_status_name(st) << ": " << tca_last_error();
                EXPECT_NE(std::string(tca_last_error()), "") << "a failure comes with a message";
                expect_same(c.observe(w), before, "state after the failed call");
                const tca_status retry = c.retry ? c.call(w) : TCA_ERROR_UNSUPPORTED;
                if (c.retry) {
                    EXPECT_EQ(retry, TCA_OK) << "the retried call: " << tca_last_error();
                }
                if (retry == TCA_OK) {
                    expect_same(c.after(w), twin, "results after the retried call");
                    EXPECT_EQ(tca_context_finish(w.ctx), TCA_OK);
                    EXPECT_EQ(fault::live_buffers(api), twin_live) << "live device buffers after the retried call";
                } else {
                    EXPECT_EQ(tca_context_finish(w.ctx), TCA_OK) << tca_last_error();
                }
            }
        }
        start.reset();
        EXPECT_EQ(fault::live_buffers(api), base) << "device buffers left once everything is destroyed";
        if (!fired) return int(n - 1);
        if (::testing::Test::HasFailure()) return int(n);  // one broken point is enough to report
    }
    ADD_FAILURE() << c.name << ": more than " << kMaxPoints << " failure points";
    return int(kMaxPoints);
}

struct Param {
    Case c;
    Target target;
};

void PrintTo(const Param& p, std::ostream* os) { *os << p.c.name << " on " << p.target.label(); }

class FaultInjection : public ::testing::TestWithParam<Param> {};

TEST_P(FaultInjection, EveryFailurePoint) {
    const Param& p = GetParam();
    const uint64_t messages = vulkan_validation_message_count();
    const int allocs = drive(p.c, p.target, Kind::alloc);
    if (HasFatalFailure()) return;
    // Staging changes what allocates, not what builds: its kernels are those of the plain target.
    const int builds = p.target.staging ? 0 : drive(p.c, p.target, Kind::build);
    std::printf("%s on %s: %d allocation and %d kernel-build failure points\n", p.c.name, p.target.label().c_str(), allocs,
                builds);
    RecordProperty("allocation_points", allocs);
    RecordProperty("build_points", builds);
    EXPECT_EQ(vulkan_validation_message_count(), messages) << "Vulkan validation messages";
}

std::vector<Param> params_under_test() {
    std::vector<Param> out;
    for (const Case& c : cases())
        for (const Target& t : targets())
            if ((!c.interop || t.api() != Api::reference) && (!t.staging || (c.staging && !c.interop))) out.push_back({c, t});
    return out;
}

INSTANTIATE_TEST_SUITE_P(AllEntryPoints, FaultInjection, ::testing::ValuesIn(params_under_test()),
                         [](const ::testing::TestParamInfo<Param>& i) {
                             return std::string(i.param.c.name) + "_" + i.param.target.label();
                         });

// ---- the method layer underneath -------------------------------------------------------------------

// A device as a context of the target would open it (Vulkan staging included).
std::unique_ptr<Device> open_target(const Target& t) {
    if (t.staging) setenv("TCA_VULKAN_FORCE_STAGING", "1", 1);
    auto dev = open_device(t.device);
    if (t.staging) unsetenv("TCA_VULKAN_FORCE_STAGING");
    return dev;
}

method::HostTensor host_tensor(int h, int n, uint32_t seed) {
    method::HostTensor x(h, n, kDim);
    x.data = data(x.data.size(), seed);
    return x;
}

bool same(const method::CacheContents& a, const method::CacheContents& b) {
    return a.positions == b.positions && a.k_rows == b.k_rows && a.v_rows == b.v_rows;
}

// What the C API cannot see: after every failed call of a TCA session, the device holds what the
// host state says — G's lengths on the device equal account().global, and contents() (G's rows and
// positions, the window) is as before the call. Three calls: the prompt (48 tokens, a selection),
// the first host decode (which also makes the wrapper's step tensors), and the eighth decode, which
// compresses the pending block into G. Allocation failures only; builds are covered above.
class SessionFaults : public ::testing::TestWithParam<Target> {};

TEST_P(SessionFaults, FailedCallsLeaveDeviceStateAsItWas) {
    const Target& t = GetParam();
    auto dev = open_target(t);
    auto release = [&] {
        if (t.api() == Api::opencl) opencl_testing::release_scratch(*dev);
        if (t.api() == Api::vulkan) vulkan_testing::release_scratch(*dev);
    };
    method::TcaParams params;
    params.block = kBlock, params.window = kWindow;
    const auto p_star = method::fixed_ratio_profile(params, method::ModelShape{1, kHq, kHkv, kDim}, 0.4).layer_p(0);
    const auto q = host_tensor(kHq, 48, 1), k = host_tensor(kHkv, 48, 2), v = host_tensor(kHkv, 48, 3);
    auto step = [&](method::AttentionSession& s, int i) {
        const auto x = data(size_t(kHq + 2 * kHkv) * kDim, 200 + i);
        return s.decode(x.data(), x.data() + kHq * kDim, x.data() + (kHq + kHkv) * kDim);
    };
    // Phase 0: the prefill fails; 1: the first decode; 2: the compressing decode.
    for (int phase = 0; phase < 3; ++phase) {
        const int steps_before = phase == 2 ? 7 : 0;
        auto prepare = [&] {
            release();
            auto s = method::make_tca_session(*dev, method::AttnShape{kHq, kHkv, kDim}, params, p_star, kMaxTokens);
            if (phase > 0) s->prefill(q, k, v);
            for (int i = 0; i < steps_before; ++i) step(*s, i);
            return s;
        };
        auto run = [&](method::AttentionSession& s) {
            if (phase == 0) return s.prefill(q, k, v).data;
            return step(s, steps_before);
        };
        method::CacheContents twin;
        std::vector<float> twin_out;
        {
            auto s = prepare();
            twin_out = run(*s);
            twin = s->contents();
        }
        for (uint64_t n = 1; n <= kMaxPoints; ++n) {
            SCOPED_TRACE("phase " + std::to_string(phase) + ", allocation #" + std::to_string(n) + " fails");
            auto s = prepare();
            const method::CacheContents before = s->contents();
            const method::CacheAccount acc = s->account();
            fault::arm(Kind::alloc, n);
            tca_status st = TCA_OK;
            try {
                run(*s);
            } catch (const Error& e) {
                st = e.code();
            }
            const bool fired = fault::fired();
            fault::disarm();
            if (!fired) {
                EXPECT_EQ(st, TCA_OK);
                break;
            }
            EXPECT_EQ(st, TCA_ERROR_OUT_OF_MEMORY);
            EXPECT_EQ(s->device_global_lengths(), s->account().global) << "G's lengths on the device";
            EXPECT_EQ(s->account().global, acc.global);
            EXPECT_EQ(s->account().tokens_seen, acc.tokens_seen);
            EXPECT_EQ(s->account().ring, acc.ring);
            EXPECT_EQ(s->account().pending, acc.pending);
            EXPECT_TRUE(same(s->contents(), before)) << "the cache's rows and positions";
            std::vector<float> out;
            EXPECT_NO_THROW(out = run(*s)) << "the retried call";
            EXPECT_EQ(out, twin_out);
            EXPECT_TRUE(same(s->contents(), twin)) << "after the retried call";
            if (HasFailure()) return;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(AllDevices, SessionFaults, ::testing::ValuesIn(targets()),
                         [](const ::testing::TestParamInfo<Target>& i) { return i.param.label(); });

// ---- the hook itself -------------------------------------------------------------------------------

// TCA_FAULT_INJECT arms the hook when a device is opened: the CLI then fails with the injected status
// and a message, writes no output, and leaves an existing output file as it was.
TEST(FaultInjectionEnv, CliFailsCleanlyAtEveryAllocation) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("tca_test_faults_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const std::string d = dir.string();
    auto r = run_cli("synth --kind mix --heads 4 --kv-heads 2 --len 96 --dim 16 --seed 3 --out-dir " + d);
    ASSERT_EQ(r.code, 0) << r.output;
    { std::ofstream(d + "/o.npy") << "previous"; }
    const std::string attend =
        "attend --dense --device cpu --q " + d + "/q.npy --k " + d + "/k.npy --v " + d + "/v.npy --out " + d + "/o.npy";
    int n = 1;
    for (; n < 100; ++n) {
        setenv("TCA_FAULT_INJECT", ("alloc:" + std::to_string(n)).c_str(), 1);
        r = run_cli(attend);
        unsetenv("TCA_FAULT_INJECT");
        if (r.code == 0) break;
        EXPECT_NE(r.output.find("TCA_ERROR_OUT_OF_MEMORY"), std::string::npos) << "alloc:" << n << "\n" << r.output;
        std::ifstream f(d + "/o.npy");
        EXPECT_EQ(std::string(std::istreambuf_iterator<char>(f), {}), "previous") << "alloc:" << n;
    }
    EXPECT_GT(n, 1) << "the attend run allocated nothing";
    EXPECT_LT(n, 100);
    setenv("TCA_FAULT_INJECT", "alloc:0", 1);
    r = run_cli(attend);
    unsetenv("TCA_FAULT_INJECT");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.output.find("TCA_FAULT_INJECT"), std::string::npos) << r.output;
    fs::remove_all(dir);
}

TEST(FaultInjectionEnv, MalformedSettingIsRejectedAtContextCreation) {
    for (const char* bad : {"alloc", "alloc:", "alloc:x", "build:0", "free:3", "alloc:3:4"}) {
        setenv("TCA_FAULT_INJECT", bad, 1);
        tca_context* ctx = nullptr;
        EXPECT_EQ(tca_context_create("cpu", &ctx), TCA_ERROR_INVALID_ARGUMENT) << bad;
        EXPECT_EQ(ctx, nullptr);
        EXPECT_NE(std::string(tca_last_error()).find("TCA_FAULT_INJECT"), std::string::npos) << tca_last_error();
        unsetenv("TCA_FAULT_INJECT");
    }
    fault::disarm();
}

// The hooks fire on every backend: the first allocation of a tensor, the first kernel build of a
// dense prefill (the reference builds none), each with its real status.
TEST(FaultInjectionHook, FirstAllocationAndFirstBuildFailOnEveryBackend) {
    for (const Target& t : targets()) {
        SCOPED_TRACE(t.label());
        World w(t, nullptr);
        w.open();
        fault::arm(Kind::alloc, 1);
        tca_tensor* x = nullptr;
        EXPECT_EQ(tca_tensor_create(w.ctx, TCA_F32, 2, 8, kDim, &x), TCA_ERROR_OUT_OF_MEMORY) << tca_last_error();
        EXPECT_TRUE(fault::fired());
        EXPECT_EQ(x, nullptr);
        fault::disarm();
        input(w, "q", TCA_F32, kHq, 8, 1), input(w, "k", TCA_F32, kHkv, 8, 2), input(w, "v", TCA_F32, kHkv, 8, 3);
        output(w, "o", kHq, 8);
        fault::arm(Kind::build, 1);
        const tca_status st = dense_prefill(w);
        const bool fired = fault::fired();
        fault::disarm();
        EXPECT_EQ(fired, t.api() != Api::reference);
        EXPECT_EQ(st, fired ? TCA_ERROR_KERNEL_BUILD : TCA_OK) << tca_last_error();
    }
}

// The counter sees every buffer a backend makes and loses it when the last view goes.
TEST(FaultInjectionHook, LiveBuffersCountEveryBackendsBuffers) {
    for (const Target& t : targets()) {
        SCOPED_TRACE(t.label());
        const int64_t base = fault::live_buffers(t.api());
        {
            World w(t, nullptr);
            w.open();
            input(w, "x", TCA_F32, 2, 8, 1);
            EXPECT_GE(fault::live_buffers(t.api()), base + 1);
            const int64_t with_x = fault::live_buffers(t.api());
            tca_tensor_destroy(w.tensors.at("x"));
            w.tensors.erase("x");
            EXPECT_EQ(fault::live_buffers(t.api()), with_x - 1);
        }
        EXPECT_EQ(fault::live_buffers(t.api()), base);
    }
}

}  // namespace
}  // namespace tca::detail::test
