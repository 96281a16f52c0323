// Zero-copy interop through the C API. The test plays the runtime: it makes its own cl_context /
// VkDevice, its own buffers, uploads through its own queue without waiting, wraps the buffers at
// nonzero offsets (K/V also in a [tokens, heads, dim] layout) and reads results back through its own
// queue. Results must equal, bit for bit, those of library-made tensors on the same context (the
// copying path), and the reference within 1e-9 NMSE. Also: the caller's objects outlive everything
// the library made from them, with balanced OpenCL reference counts; bad handles are errors.
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <vulkan/vulkan.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "api/handles.h"
#include "backends/vulkan/vulkan_testing.h"
#include "core/half.h"
#include "harness.h"
#include "tca/tca.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace tca::detail::test {
namespace {

#define EXPECT_STATUS(call, code, needle)                                                          \
    do {                                                                                           \
        const tca_status st_ = (call);                                                             \
        EXPECT_EQ(st_, code) << #call << " -> " << tca_status_name(st_) << ": " << tca_last_error(); \
        EXPECT_NE(std::string(tca_last_error()).find(needle), std::string::npos)                   \
            << "message '" << tca_last_error() << "' lacks '" << needle << "'";                    \
    } while (0)

#define ASSERT_TCA(call) ASSERT_EQ((call), TCA_OK) << #call << ": " << tca_last_error()
#define EXPECT_TCA(call) EXPECT_EQ((call), TCA_OK) << #call << ": " << tca_last_error()

tca_tensor_desc desc_of(tca_dtype dt, int h, int t, int d, bool tokens_major = false) {
    tca_tensor_desc x{sizeof(tca_tensor_desc), dt, h, t, d, 0, 0};
    if (tokens_major) x.head_stride = d, x.token_stride = int64_t(h) * d;
    return x;
}

// Host data of an [h, t, d] array in the desc's layout and dtype.
std::vector<unsigned char> pack(const std::vector<float>& x, const tca_tensor_desc& d) {
    const size_t es = d.dtype == TCA_F32 ? 4 : 2;
    const int64_t hs = d.head_stride ? d.head_stride : int64_t(d.tokens) * d.dim;
    const int64_t ts = d.token_stride ? d.token_stride : d.dim;
    std::vector<unsigned char> out(size_t(d.heads) * d.tokens * d.dim * es);
    for (int h = 0; h < d.heads; ++h)
        for (int t = 0; t < d.tokens; ++t)
            for (int i = 0; i < d.dim; ++i) {
                const float v = x[(size_t(h) * d.tokens + t) * d.dim + i];
                unsigned char* dst = out.data() + size_t(h * hs + t * ts + i) * es;
                if (d.dtype == TCA_F32) std::memcpy(dst, &v, 4);
                else {
                    const uint16_t b = float_to_half(v);
                    std::memcpy(dst, &b, 2);
                }
            }
    return out;
}

std::vector<float> as_floats(const std::vector<unsigned char>& b) {
    std::vector<float> f(b.size() / 4);
    std::memcpy(f.data(), b.data(), f.size() * 4);
    return f;
}

// One caller-side API: owns its buffers, fills them through its own queue, wraps them, reads back.
class Caller {
public:
    virtual ~Caller() = default;
    virtual tca_context* ctx() = 0;
    // A new buffer of offset + bytes (+ a tail), with `data` written at `offset`, wrapped per `d`.
    virtual tca_tensor* wrap(const std::vector<unsigned char>& data, size_t offset, const tca_tensor_desc& d) = 0;
    // The bytes of a wrapped tensor's range, read through the caller's own queue.
    virtual std::vector<unsigned char> read(tca_tensor* t) = 0;
};

// A library-made tensor with the data uploaded (the copying path).
tca_tensor* copied(tca_context* ctx, const std::vector<float>& x, tca_dtype dt, int h, int t, int d) {
    tca_tensor* out = nullptr;
    EXPECT_TCA(tca_tensor_create(ctx, dt, h, t, d, &out));
    if (!x.empty()) {
        const auto bytes = pack(x, desc_of(dt, h, t, d));
        EXPECT_TCA(tca_tensor_upload(out, bytes.data(), bytes.size()));
    }
    return out;
}

std::vector<float> downloaded(tca_tensor* t) {
    int h = 0, l = 0, d = 0;
    tca_tensor_shape(t, nullptr, &h, &l, &d);
    std::vector<float> out(size_t(h) * l * d);
    EXPECT_TCA(tca_tensor_download(t, out.data(), out.size() * 4));
    return out;
}

void destroy(std::initializer_list<tca_tensor*> ts) {
    for (tca_tensor* t : ts) EXPECT_TCA(tca_tensor_destroy(t));
}

// Dense prefill and decode: wrapped tensors (K/V tokens-major, all at odd-ish offsets) vs copies.
void dense_matches(Caller& c, const std::string& what) {
    const int hq = 4, hkv = 2, L = 96, d = 64;
    const auto q = randn(size_t(hq) * L * d, 11), k = randn(size_t(hkv) * L * d, 12), v = randn(size_t(hkv) * L * d, 13);
    const auto q1 = randn(size_t(hq) * d, 14);
    tca_context* ctx = c.ctx();
    const auto dq = desc_of(TCA_F32, hq, L, d), dk = desc_of(TCA_F32, hkv, L, d, true), dq1 = desc_of(TCA_F32, hq, 1, d);
    tca_tensor *wq = c.wrap(pack(q, dq), 256, dq), *wk = c.wrap(pack(k, dk), 4, dk), *wv = c.wrap(pack(v, dk), 1028, dk),
               *wo = c.wrap(std::vector<unsigned char>(size_t(hq) * L * d * 4), 512, dq),
               *wq1 = c.wrap(pack(q1, dq1), 36, dq1), *wo1 = c.wrap(std::vector<unsigned char>(size_t(hq) * d * 4), 8, dq1);
    ASSERT_TCA(tca_dense_prefill(ctx, wq, wk, wv, wo, 0));
    ASSERT_TCA(tca_dense_decode(ctx, wq1, wk, wv, L, wo1, 0));
    const auto got = as_floats(c.read(wo)), got1 = as_floats(c.read(wo1));

    tca_tensor *cq = copied(ctx, q, TCA_F32, hq, L, d), *ck = copied(ctx, k, TCA_F32, hkv, L, d),
               *cv = copied(ctx, v, TCA_F32, hkv, L, d), *co = copied(ctx, {}, TCA_F32, hq, L, d),
               *cq1 = copied(ctx, q1, TCA_F32, hq, 1, d), *co1 = copied(ctx, {}, TCA_F32, hq, 1, d);
    ASSERT_TCA(tca_dense_prefill(ctx, cq, ck, cv, co, 0));
    ASSERT_TCA(tca_dense_decode(ctx, cq1, ck, cv, L, co1, 0));
    const auto want = downloaded(co), want1 = downloaded(co1);
    EXPECT_EQ(got, want) << what << ": zero-copy prefill differs from the copying path";
    EXPECT_EQ(got1, want1) << what << ": zero-copy decode differs from the copying path";

    tca_context* ref = nullptr;
    ASSERT_TCA(tca_context_create("cpu", &ref));
    tca_tensor *rq = copied(ref, q, TCA_F32, hq, L, d), *rk = copied(ref, k, TCA_F32, hkv, L, d),
               *rv = copied(ref, v, TCA_F32, hkv, L, d), *ro = copied(ref, {}, TCA_F32, hq, L, d);
    ASSERT_TCA(tca_dense_prefill(ref, rq, rk, rv, ro, 0));
    EXPECT_LE(nmse(downloaded(ro), got), 1e-9) << what;
    // A tensor of this context handed to another one is refused.
    EXPECT_STATUS(tca_dense_prefill(ref, rq, wk, rv, ro, 0), TCA_ERROR_INVALID_ARGUMENT, "another context");
    destroy({rq, rk, rv, ro});
    tca_context_destroy(ref);
    destroy({wq, wk, wv, wo, wq1, wo1, cq, ck, cv, co, cq1, co1});
}

// A TCA cache (fixed profile) fed with wrapped tensors vs one fed with copies: prompt and decode steps.
void cache_matches(Caller& c, tca_dtype kv, const std::string& what) {
    const int hq = 4, hkv = 2, d = 64, P = 300, steps = 6, T = P + steps;
    const auto q = randn(size_t(hq) * T * d, 21), k = randn(size_t(hkv) * T * d, 22), v = randn(size_t(hkv) * T * d, 23);
    auto rows = [&](const std::vector<float>& x, int heads, int r0, int n) {
        std::vector<float> out;
        for (int h = 0; h < heads; ++h)
            out.insert(out.end(), x.begin() + (size_t(h) * T + r0) * d, x.begin() + (size_t(h) * T + r0 + n) * d);
        return out;
    };
    tca_context* ctx = c.ctx();
    tca_params params{sizeof(tca_params)};
    ASSERT_TCA(tca_params_init(&params));
    params.window = 64, params.block = 16;
    tca_profile* prof = nullptr;
    ASSERT_TCA(tca_profile_fixed(&params, 1, hq, hkv, d, 0.3, &prof));
    tca_cache *zc = nullptr, *cc = nullptr;
    ASSERT_TCA(tca_cache_create(ctx, prof, 0, hq, hkv, d, kv, T, &zc));
    ASSERT_TCA(tca_cache_create(ctx, prof, 0, hq, hkv, d, kv, T, &cc));
    std::vector<float> got, want;
    for (int s = -1; s < steps; ++s) {
        const int r0 = s < 0 ? 0 : P + s, n = s < 0 ? P : 1;
        const auto xq = rows(q, hq, r0, n), xk = rows(k, hkv, r0, n), xv = rows(v, hkv, r0, n);
        const auto dq = desc_of(TCA_F32, hq, n, d), dk = desc_of(kv, hkv, n, d, true);
        // f16 K at a 2-byte (not 4-byte) aligned offset: the gather's narrow path.
        tca_tensor *wq = c.wrap(pack(xq, dq), 256, dq), *wk = c.wrap(pack(xk, dk), kv == TCA_F16 ? 258 : 260, dk),
                   *wv = c.wrap(pack(xv, dk), 132, dk), *wo = c.wrap(std::vector<unsigned char>(xq.size() * 4), 64, dq);
        tca_tensor *cq = copied(ctx, xq, TCA_F32, hq, n, d), *ck = copied(ctx, xk, kv, hkv, n, d),
                   *cv = copied(ctx, xv, kv, hkv, n, d), *co = copied(ctx, {}, TCA_F32, hq, n, d);
        if (s < 0) {
            ASSERT_TCA(tca_cache_prefill(zc, wq, wk, wv, wo));
            ASSERT_TCA(tca_cache_prefill(cc, cq, ck, cv, co));
        } else {
            ASSERT_TCA(tca_cache_decode(zc, wq, wk, wv, wo));
            ASSERT_TCA(tca_cache_decode(cc, cq, ck, cv, co));
        }
        const auto a = as_floats(c.read(wo)), b = downloaded(co);
        got.insert(got.end(), a.begin(), a.end());
        want.insert(want.end(), b.begin(), b.end());
        destroy({wq, wk, wv, wo, cq, ck, cv, co});
    }
    EXPECT_EQ(got, want) << what << ": zero-copy cache outputs differ from the copying path";
    uint64_t zb = 0, cb = 0, dense = 0;
    EXPECT_TCA(tca_cache_size(zc, &zb, &dense, nullptr));
    EXPECT_TCA(tca_cache_size(cc, &cb, nullptr, nullptr));
    EXPECT_EQ(zb, cb);
    EXPECT_LT(zb, dense) << "the TCA cache should hold less than a dense one";
    tca_cache_destroy(zc);
    tca_cache_destroy(cc);
    tca_profile_destroy(prof);
}

// ---- OpenCL ------------------------------------------------------------------------------------

template <class T, class F>
cl_uint refcount(T obj, F get, cl_uint param) {
    cl_uint n = 0;
    get(obj, param, sizeof n, &n, nullptr);
    return n;
}

std::vector<std::pair<cl_platform_id, cl_device_id>> cl_devices() {
    std::vector<std::pair<cl_platform_id, cl_device_id>> out;
    cl_uint np = 0;
    if (clGetPlatformIDs(0, nullptr, &np) != CL_SUCCESS || np == 0) return out;
    std::vector<cl_platform_id> ps(np);
    clGetPlatformIDs(np, ps.data(), nullptr);
    for (cl_platform_id p : ps) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &nd) != CL_SUCCESS || nd == 0) continue;
        std::vector<cl_device_id> ds(nd);
        clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, nd, ds.data(), nullptr);
        for (cl_device_id d : ds) out.push_back({p, d});
    }
    return out;
}

class ClCaller final : public Caller {
public:
    ClCaller(cl_platform_id p, cl_device_id d, cl_command_queue_properties props = CL_QUEUE_PROFILING_ENABLE) : dev(d) {
        cl_int err = CL_SUCCESS;
        const cl_context_properties cp[] = {CL_CONTEXT_PLATFORM, cl_context_properties(p), 0};
        context = clCreateContext(cp, 1, &dev, nullptr, nullptr, &err);
        EXPECT_EQ(err, CL_SUCCESS);
        queue = clCreateCommandQueue(context, dev, props, &err);
        EXPECT_EQ(err, CL_SUCCESS);
    }
    ~ClCaller() override {
        if (ctx_) tca_context_destroy(ctx_);
        for (auto& [t, m] : mems_) clReleaseMemObject(m.mem);
        clReleaseCommandQueue(queue);
        clReleaseContext(context);
    }
    tca_context* ctx() override {
        if (!ctx_) EXPECT_TCA(tca_context_create_opencl(context, dev, queue, &ctx_));
        return ctx_;
    }
    cl_mem buffer(size_t bytes) {
        cl_int err = CL_SUCCESS;
        cl_mem m = clCreateBuffer(context, CL_MEM_READ_WRITE, bytes, nullptr, &err);
        EXPECT_EQ(err, CL_SUCCESS);
        return m;
    }
    tca_tensor* wrap(const std::vector<unsigned char>& data, size_t offset, const tca_tensor_desc& d) override {
        cl_mem m = buffer(offset + data.size() + 64);
        // Not waited for: the in-order queue orders it before the library's kernels.
        host_.push_back(std::make_unique<std::vector<unsigned char>>(data));
        EXPECT_EQ(clEnqueueWriteBuffer(queue, m, CL_FALSE, offset, data.size(), host_.back()->data(), 0, nullptr, nullptr),
                  CL_SUCCESS);
        tca_tensor* t = nullptr;
        EXPECT_TCA(tca_tensor_wrap_opencl(ctx(), m, offset, &d, &t));
        mems_[t] = {m, offset, data.size()};
        return t;
    }
    std::vector<unsigned char> read(tca_tensor* t) override {
        const Mem& m = mems_.at(t);
        std::vector<unsigned char> out(m.bytes);
        EXPECT_EQ(clEnqueueReadBuffer(queue, m.mem, CL_TRUE, m.offset, m.bytes, out.data(), 0, nullptr, nullptr), CL_SUCCESS);
        return out;
    }

    cl_device_id dev;
    cl_context context = nullptr;
    cl_command_queue queue = nullptr;

private:
    struct Mem {
        cl_mem mem;
        size_t offset, bytes;
    };
    tca_context* ctx_ = nullptr;
    std::map<tca_tensor*, Mem> mems_;
    std::vector<std::unique_ptr<std::vector<unsigned char>>> host_;
};

TEST(InteropOpenCL, ZeroCopyMatchesCopyingPath) {
    const auto devs = cl_devices();
    if (devs.empty()) {
        if (in_ci()) FAIL() << "no OpenCL device in CI";
        GTEST_SKIP() << "no OpenCL device";
    }
    for (const auto& [p, d] : devs) {
        ClCaller c(p, d);
        dense_matches(c, "opencl");
        cache_matches(c, TCA_F16, "opencl f16");
    }
}

TEST(InteropOpenCL, CallerObjectsSurviveWithBalancedReferences) {
    const auto devs = cl_devices();
    if (devs.empty()) GTEST_SKIP() << "no OpenCL device";
    ClCaller c(devs[0].first, devs[0].second);
    const int n = 64;
    cl_mem m = c.buffer(4096);
    std::vector<float> data(n);
    for (int i = 0; i < n; ++i) data[i] = float(i) * 0.25f;
    ASSERT_EQ(clEnqueueWriteBuffer(c.queue, m, CL_TRUE, 1024, n * 4, data.data(), 0, nullptr, nullptr), CL_SUCCESS);
    ASSERT_EQ(clFinish(c.queue), CL_SUCCESS);
    // References: counted around a context and a wrapped tensor that enqueue nothing (drivers may hold
    // references of their own for enqueued commands and drop them lazily).
    const cl_uint ctx_refs = refcount(c.context, clGetContextInfo, CL_CONTEXT_REFERENCE_COUNT);
    const cl_uint queue_refs = refcount(c.queue, clGetCommandQueueInfo, CL_QUEUE_REFERENCE_COUNT);
    const cl_uint mem_refs = refcount(m, clGetMemObjectInfo, CL_MEM_REFERENCE_COUNT);
    tca_context* ctx = nullptr;
    ASSERT_TCA(tca_context_create_opencl(c.context, c.dev, c.queue, &ctx));
    EXPECT_EQ(refcount(c.context, clGetContextInfo, CL_CONTEXT_REFERENCE_COUNT), ctx_refs + 1) << "context not retained";
    EXPECT_EQ(refcount(c.queue, clGetCommandQueueInfo, CL_QUEUE_REFERENCE_COUNT), queue_refs + 1) << "queue not retained";
    tca_tensor* t = nullptr;
    const tca_tensor_desc d = desc_of(TCA_F32, 1, 1, n);
    ASSERT_TCA(tca_tensor_wrap_opencl(ctx, m, 1024, &d, &t));
    EXPECT_EQ(refcount(m, clGetMemObjectInfo, CL_MEM_REFERENCE_COUNT), mem_refs + 1) << "cl_mem not retained";
    ASSERT_TCA(tca_tensor_destroy(t));
    EXPECT_EQ(refcount(m, clGetMemObjectInfo, CL_MEM_REFERENCE_COUNT), mem_refs) << "cl_mem not released";
    ASSERT_TCA(tca_context_destroy(ctx));
    EXPECT_EQ(refcount(c.context, clGetContextInfo, CL_CONTEXT_REFERENCE_COUNT), ctx_refs) << "context not released";
    EXPECT_EQ(refcount(c.queue, clGetCommandQueueInfo, CL_QUEUE_REFERENCE_COUNT), queue_refs) << "queue not released";

    // With work: a download through the wrapped tensor, then tensor and context go; the buffer and its
    // contents are still the caller's.
    ASSERT_TCA(tca_context_create_opencl(c.context, c.dev, c.queue, &ctx));
    ASSERT_TCA(tca_tensor_wrap_opencl(ctx, m, 1024, &d, &t));
    std::vector<float> seen(n);
    ASSERT_TCA(tca_tensor_download(t, seen.data(), seen.size() * 4));  // contiguous: host copies work too
    EXPECT_EQ(seen, data);
    ASSERT_TCA(tca_tensor_destroy(t));
    ASSERT_TCA(tca_context_destroy(ctx));
    std::vector<float> after(n);
    ASSERT_EQ(clEnqueueReadBuffer(c.queue, m, CL_TRUE, 1024, n * 4, after.data(), 0, nullptr, nullptr), CL_SUCCESS);
    EXPECT_EQ(after, data);
    clReleaseMemObject(m);
}

TEST(InteropOpenCL, BadHandlesAreRejected) {
    const auto devs = cl_devices();
    if (devs.empty()) GTEST_SKIP() << "no OpenCL device";
    ClCaller a(devs[0].first, devs[0].second), b(devs[0].first, devs[0].second, 0);
    tca_context* ctx = nullptr;
    EXPECT_STATUS(tca_context_create_opencl(nullptr, a.dev, a.queue, &ctx), TCA_ERROR_INVALID_ARGUMENT, "null");
    EXPECT_STATUS(tca_context_create_opencl(a.context, nullptr, a.queue, &ctx), TCA_ERROR_INVALID_ARGUMENT, "null");
    EXPECT_STATUS(tca_context_create_opencl(a.context, a.dev, nullptr, &ctx), TCA_ERROR_INVALID_ARGUMENT, "null");
    EXPECT_STATUS(tca_context_create_opencl(a.context, a.dev, a.queue, nullptr), TCA_ERROR_INVALID_ARGUMENT, "out");
    EXPECT_STATUS(tca_context_create_opencl(a.context, a.dev, b.queue, &ctx), TCA_ERROR_INVALID_ARGUMENT,
                  "another cl_context");
    EXPECT_EQ(ctx, nullptr);
    cl_int err = CL_SUCCESS;
    cl_command_queue ooo = clCreateCommandQueue(a.context, a.dev, CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &err);
    if (err == CL_SUCCESS) {
        EXPECT_STATUS(tca_context_create_opencl(a.context, a.dev, ooo, &ctx), TCA_ERROR_UNSUPPORTED, "out-of-order");
        clReleaseCommandQueue(ooo);
    }
    // b's queue has no profiling: contexts work, stage timings are refused.
    tca_context* bc = b.ctx();
    EXPECT_STATUS(tca_context_set_profiling(bc, 1), TCA_ERROR_UNSUPPORTED, "PROFILING");
    EXPECT_TCA(tca_context_set_profiling(bc, 0));

    tca_context* ac = a.ctx();
    cl_mem mine = a.buffer(1024), theirs = b.buffer(1024);
    tca_tensor* t = nullptr;
    const tca_tensor_desc d = desc_of(TCA_F32, 2, 4, 16);
    EXPECT_STATUS(tca_tensor_wrap_opencl(ac, nullptr, 0, &d, &t), TCA_ERROR_INVALID_ARGUMENT, "null cl_mem");
    EXPECT_STATUS(tca_tensor_wrap_opencl(ac, theirs, 0, &d, &t), TCA_ERROR_INVALID_ARGUMENT, "another cl_context");
    EXPECT_STATUS(tca_tensor_wrap_opencl(nullptr, mine, 0, &d, &t), TCA_ERROR_INVALID_ARGUMENT, "context");
    EXPECT_STATUS(tca_tensor_wrap_opencl(ac, mine, 0, nullptr, &t), TCA_ERROR_INVALID_ARGUMENT, "desc");
    EXPECT_STATUS(tca_tensor_wrap_opencl(ac, mine, 0, &d, nullptr), TCA_ERROR_INVALID_ARGUMENT, "out");
    tca_tensor_desc bad = d;
    bad.struct_size = 8;
    EXPECT_STATUS(tca_tensor_wrap_opencl(ac, mine, 0, &bad, &t), TCA_ERROR_INVALID_ARGUMENT, "struct_size");
    bad = d, bad.dtype = 5;
    EXPECT_STATUS(tca_tensor_wrap_opencl(ac, mine, 0, &bad, &t), TCA_ERROR_INVALID_ARGUMENT, "dtype");
    bad = d, bad.tokens = 0;
    EXPECT_STATUS(tca_tensor_wrap_opencl(ac, mine, 0, &bad, &t), TCA_ERROR_INVALID_ARGUMENT, "empty");
    EXPECT_STATUS(tca_tensor_wrap_opencl(ac, mine, 2, &d, &t), TCA_ERROR_INVALID_ARGUMENT, "multiple");
    EXPECT_STATUS(tca_tensor_wrap_opencl(ac, mine, 768, &d, &t), TCA_ERROR_SHAPE_MISMATCH, "past the end");
    EXPECT_STATUS(tca_tensor_wrap_opencl(ac, mine, 4096, &d, &t), TCA_ERROR_SHAPE_MISMATCH, "past the end");
    bad = d, bad.head_stride = 16, bad.token_stride = 16;  // head 1 row t = head 0 row t + 1
    EXPECT_STATUS(tca_tensor_wrap_opencl(ac, mine, 0, &bad, &t), TCA_ERROR_INVALID_ARGUMENT, "overlap");
    bad = d, bad.head_stride = -64, bad.token_stride = 16;
    EXPECT_STATUS(tca_tensor_wrap_opencl(ac, mine, 0, &bad, &t), TCA_ERROR_INVALID_ARGUMENT, "negative");
    bad = d, bad.head_stride = int64_t(1) << 62, bad.token_stride = 16;
    EXPECT_STATUS(tca_tensor_wrap_opencl(ac, mine, 0, &bad, &t), TCA_ERROR_SHAPE_MISMATCH, "spans");
    EXPECT_EQ(t, nullptr);
    // Strided ([tokens, heads, dim]) tensors work in ops but take no host copies.
    const tca_tensor_desc strided = desc_of(TCA_F32, 2, 4, 16, true);
    ASSERT_TCA(tca_tensor_wrap_opencl(ac, mine, 0, &strided, &t));
    std::vector<float> host(2 * 4 * 16);
    EXPECT_STATUS(tca_tensor_upload(t, host.data(), host.size() * 4), TCA_ERROR_UNSUPPORTED, "strided");
    EXPECT_STATUS(tca_tensor_download(t, host.data(), host.size() * 4), TCA_ERROR_UNSUPPORTED, "strided");
    tca_tensor_destroy(t);
    // Wrapping a cl_mem needs an OpenCL context; a VkBuffer a Vulkan one.
    tca_context* cpu = nullptr;
    ASSERT_TCA(tca_context_create("cpu", &cpu));
    EXPECT_STATUS(tca_tensor_wrap_opencl(cpu, mine, 0, &d, &t), TCA_ERROR_INVALID_ARGUMENT, "not an OpenCL context");
    EXPECT_STATUS(tca_tensor_wrap_vulkan(ac, 0x1234, 1024, 0, &d, &t), TCA_ERROR_INVALID_ARGUMENT, "not a Vulkan context");
    tca_context_destroy(cpu);
    clReleaseMemObject(mine);
    clReleaseMemObject(theirs);
}

// ---- Vulkan ------------------------------------------------------------------------------------

// The caller's messenger: its messages count as the process's own, so the validation listener
// (vk_validation_listener.cpp) fails the test during which they came.
VKAPI_ATTR VkBool32 VKAPI_CALL count_messages(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                              VkDebugUtilsMessageTypeFlagsEXT, const VkDebugUtilsMessengerCallbackDataEXT* data,
                                              void*) {
    if (severity & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)) {
        const char* text = data && data->pMessage ? data->pMessage : "(no message)";
        vulkan_testing::record_validation_message(text);
        std::fprintf(stderr, "[vulkan validation, caller's instance] %s\n", text);
    }
    return VK_FALSE;
}

#define VKT(call) ASSERT_EQ((call), VK_SUCCESS) << #call
#define VKE(call) EXPECT_EQ((call), VK_SUCCESS) << #call

// The runtime's own Vulkan objects: instance (validation layer on when the tests ask for it), the
// first device with compute, one queue, buffers in host-visible memory filled by staging copies
// submitted on the queue and not waited for.
class VkCaller final : public Caller {
public:
    explicit VkCaller(bool enable_fp16, uint32_t features_told) {
        const bool validation = std::getenv("TCA_VULKAN_VALIDATION") && std::string(std::getenv("TCA_VULKAN_VALIDATION")) == "1";
        uint32_t n = 0;
        vkEnumerateInstanceLayerProperties(&n, nullptr);
        std::vector<VkLayerProperties> layers(n);
        vkEnumerateInstanceLayerProperties(&n, layers.data());
        bool have = false;
        for (auto& l : layers) have = have || std::string(l.layerName) == "VK_LAYER_KHRONOS_validation";
        const char* layer = "VK_LAYER_KHRONOS_validation";
        // Synchronization validation as well (the library's commands run on this queue between ours):
        // VK_EXT_validation_features comes with the layer.
        const char* exts[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME};
        const VkValidationFeatureEnableEXT sync = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
        VkValidationFeaturesEXT features{VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
        features.enabledValidationFeatureCount = 1, features.pEnabledValidationFeatures = &sync;
        VkDebugUtilsMessengerCreateInfoEXT dbg{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
        dbg.pNext = &features;
        dbg.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
        dbg.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                          VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
        dbg.pfnUserCallback = count_messages;
        VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
        app.apiVersion = VK_API_VERSION_1_2;
        VkInstanceCreateInfo ici{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
        ici.pApplicationInfo = &app;
        validated = validation && have;
        if (validated) {
            ici.enabledLayerCount = 1, ici.ppEnabledLayerNames = &layer;
            ici.enabledExtensionCount = 2, ici.ppEnabledExtensionNames = exts;
            ici.pNext = &dbg;
        }
        if (vkCreateInstance(&ici, nullptr, &instance) != VK_SUCCESS) return;
        if (validated) {
            dbg.pNext = nullptr;  // the features belong to instance creation
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
        VkPhysicalDevice16BitStorageFeatures s16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
        VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
        f2.pNext = &s16;
        vkGetPhysicalDeviceFeatures2(phys, &f2);
        const bool fp16 = enable_fp16 && s16.storageBuffer16BitAccess;
        VkPhysicalDevice16BitStorageFeatures want16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
        want16.storageBuffer16BitAccess = fp16;
        const float prio = 1.f;
        VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
        qci.queueFamilyIndex = family, qci.queueCount = 1, qci.pQueuePriorities = &prio;
        VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
        dci.pNext = &want16;
        dci.queueCreateInfoCount = 1, dci.pQueueCreateInfos = &qci;
        if (vkCreateDevice(phys, &dci, nullptr, &device) != VK_SUCCESS) return;
        vkGetDeviceQueue(device, family, 0, &queue);
        handles = tca_vulkan_handles{sizeof(tca_vulkan_handles), instance, phys, device, queue, family, VK_API_VERSION_1_2,
                                     fp16 ? features_told : 0u};
        VkCommandPoolCreateInfo cpi{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
        cpi.queueFamilyIndex = family;
        vkCreateCommandPool(device, &cpi, nullptr, &pool);
        VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        vkCreateFence(device, &fci, nullptr, &fence);
    }
    ~VkCaller() override {
        if (ctx_) tca_context_destroy(ctx_);
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
    bool ok() const { return device != VK_NULL_HANDLE; }

    tca_context* ctx() override {
        if (!ctx_) EXPECT_TCA(tca_context_create_vulkan(&handles, &ctx_));
        return ctx_;
    }

    struct Buf {
        VkBuffer buffer = VK_NULL_HANDLE;
        VkDeviceMemory memory = VK_NULL_HANDLE;
        unsigned char* mapped = nullptr;
        size_t size = 0;
    };
    Buf& buffer(size_t bytes) {
        Buf b;
        b.size = bytes;
        VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
        bci.size = bytes;
        bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
        VKE(vkCreateBuffer(device, &bci, nullptr, &b.buffer));
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
        VKE(vkAllocateMemory(device, &mai, nullptr, &b.memory));
        VKE(vkBindBufferMemory(device, b.buffer, b.memory, 0));
        void* p = nullptr;
        VKE(vkMapMemory(device, b.memory, 0, VK_WHOLE_SIZE, 0, &p));
        b.mapped = static_cast<unsigned char*>(p);
        bufs_.push_back(b);
        return bufs_.back();
    }
    // Records and submits one copy on the caller's queue; waits only when asked.
    void copy(VkBuffer src, size_t src_off, VkBuffer dst, size_t dst_off, size_t bytes, bool wait) {
        VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
        ai.commandPool = pool, ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, ai.commandBufferCount = 1;
        VkCommandBuffer cb;
        VKE(vkAllocateCommandBuffers(device, &ai, &cb));
        VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
        bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
        vkBeginCommandBuffer(cb, &bi);
        VkBufferCopy region{src_off, dst_off, bytes};
        vkCmdCopyBuffer(cb, src, dst, 1, &region);
        if (wait) {  // the copy's result read by the host through mapped memory
            VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
            mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT, mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
            vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr, 0,
                                 nullptr);
        }
        vkEndCommandBuffer(cb);
        VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
        si.commandBufferCount = 1, si.pCommandBuffers = &cb;
        VKE(vkQueueSubmit(queue, 1, &si, wait ? fence : VK_NULL_HANDLE));
        if (wait) {
            VKE(vkWaitForFences(device, 1, &fence, VK_TRUE, UINT64_MAX));
            vkResetFences(device, 1, &fence);
            VKE(vkQueueWaitIdle(queue));  // every earlier submission is done: free their command buffers
            vkResetCommandPool(device, pool, 0);
        }
    }
    tca_tensor* wrap(const std::vector<unsigned char>& data, size_t offset, const tca_tensor_desc& d) override {
        Buf& dst = buffer(offset + data.size() + 64);
        const VkBuffer target = dst.buffer;
        const size_t size = dst.size;
        Buf& staging = buffer(data.size() + 4);
        std::memcpy(staging.mapped, data.data(), data.size());
        copy(staging.buffer, 0, target, offset, data.size(), false);  // not waited for: the library's barrier orders it
        tca_tensor* t = nullptr;
        EXPECT_TCA(tca_tensor_wrap_vulkan(ctx(), (uint64_t)target, size, offset, &d, &t));
        wrapped_[t] = {target, offset, data.size()};
        return t;
    }
    std::vector<unsigned char> read(tca_tensor* t) override {
        const auto& w = wrapped_.at(t);
        Buf& rb = buffer(w.bytes + 4);
        copy(w.buffer, w.offset, rb.buffer, 0, w.bytes, true);  // a later submission: sees the library's writes
        return std::vector<unsigned char>(rb.mapped, rb.mapped + w.bytes);
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
    struct Wrapped {
        VkBuffer buffer;
        size_t offset, bytes;
    };
    tca_context* ctx_ = nullptr;
    std::deque<Buf> bufs_;  // a deque: references from buffer() stay valid
    std::map<tca_tensor*, Wrapped> wrapped_;
};

class InteropVulkan : public ::testing::Test {
protected:
    void SetUp() override {
        if (vulkan_devices_exist()) return;
        if (in_ci()) FAIL() << "no Vulkan device in CI";
        GTEST_SKIP() << "no Vulkan device";
    }
    static bool vulkan_devices_exist() {
        int n = 0;
        tca_device_count(&n);
        for (int i = 0; i < n; ++i) {
            tca_device_info info{sizeof(tca_device_info)};
            tca_device_get_info(i, &info);
            if (std::string(info.api) == "vulkan") return true;
        }
        return false;
    }
};

TEST_F(InteropVulkan, ZeroCopyMatchesCopyingPath) {
    // With 16-bit storage enabled and declared, and enabled but not declared (the fallback path).
    for (uint32_t told : {uint32_t(TCA_VULKAN_FEATURE_STORAGE_BUFFER_16BIT), 0u}) {
        VkCaller c(true, told);
        ASSERT_TRUE(c.ok());
        if (in_ci()) EXPECT_TRUE(c.validated) << "CI runs the interop test under the validation layer";
        const std::string what = "vulkan features=" + std::to_string(c.handles.enabled_features);
        EXPECT_EQ(vulkan_testing::uses_fp16_storage(*c.ctx()->device), c.handles.enabled_features != 0) << what;
        dense_matches(c, what);
        cache_matches(c, TCA_F16, what);
        if (told == 0) cache_matches(c, TCA_F32, what + " f32");
    }
}

TEST_F(InteropVulkan, CallerBufferSurvivesTensorAndContext) {
    VkCaller c(false, 0);
    ASSERT_TRUE(c.ok());
    const int n = 64;
    std::vector<float> data(n);
    for (int i = 0; i < n; ++i) data[i] = float(i) - 7.5f;
    VkCaller::Buf& b = c.buffer(2048);
    const VkBuffer buf = b.buffer;
    float* mapped = reinterpret_cast<float*>(b.mapped + 512);
    std::memcpy(mapped, data.data(), n * 4);
    tca_context* ctx = nullptr;
    ASSERT_TCA(tca_context_create_vulkan(&c.handles, &ctx));
    tca_device_info info{sizeof(tca_device_info)};
    ASSERT_TCA(tca_context_device_info(ctx, &info));
    EXPECT_STREQ(info.name, "vulkan:external");
    tca_tensor* t = nullptr;
    const tca_tensor_desc d = desc_of(TCA_F32, 1, 1, n);
    ASSERT_TCA(tca_tensor_wrap_vulkan(ctx, (uint64_t)buf, 2048, 512, &d, &t));
    std::vector<float> seen(n);
    ASSERT_TCA(tca_tensor_download(t, seen.data(), n * 4));
    EXPECT_EQ(seen, data);
    ASSERT_TCA(tca_tensor_destroy(t));
    ASSERT_TCA(tca_context_destroy(ctx));
    // Still a live buffer of the caller's device: a copy through it works and the data is intact.
    VkCaller::Buf& rb = c.buffer(n * 4);
    c.copy(buf, 512, rb.buffer, 0, n * 4, true);
    EXPECT_EQ(std::memcmp(rb.mapped, data.data(), n * 4), 0);
}

TEST_F(InteropVulkan, BadHandlesAreRejected) {
    VkCaller c(false, 0);
    ASSERT_TRUE(c.ok());
    tca_context* ctx = nullptr;
    EXPECT_STATUS(tca_context_create_vulkan(nullptr, &ctx), TCA_ERROR_INVALID_ARGUMENT, "handles is null");
    EXPECT_STATUS(tca_context_create_vulkan(&c.handles, nullptr), TCA_ERROR_INVALID_ARGUMENT, "out");
    auto with = [&](const std::function<void(tca_vulkan_handles&)>& change) {
        tca_vulkan_handles h = c.handles;
        change(h);
        return tca_context_create_vulkan(&h, &ctx);
    };
    EXPECT_STATUS(with([](auto& h) { h.struct_size = 8; }), TCA_ERROR_INVALID_ARGUMENT, "struct_size");
    EXPECT_STATUS(with([](auto& h) { h.instance = nullptr; }), TCA_ERROR_INVALID_ARGUMENT, "null VkInstance");
    EXPECT_STATUS(with([](auto& h) { h.physical_device = nullptr; }), TCA_ERROR_INVALID_ARGUMENT, "null");
    EXPECT_STATUS(with([](auto& h) { h.device = nullptr; }), TCA_ERROR_INVALID_ARGUMENT, "null");
    EXPECT_STATUS(with([](auto& h) { h.queue = nullptr; }), TCA_ERROR_INVALID_ARGUMENT, "null");
    EXPECT_STATUS(with([](auto& h) { h.api_version = VK_API_VERSION_1_0; }), TCA_ERROR_UNSUPPORTED, "1.1");
    EXPECT_STATUS(with([](auto& h) { h.queue_family = 99; }), TCA_ERROR_INVALID_ARGUMENT, "does not exist");
    EXPECT_STATUS(with([](auto& h) { h.enabled_features = 0x80; }), TCA_ERROR_INVALID_ARGUMENT, "unknown bits");
    EXPECT_STATUS(with([](auto& h) { h.physical_device = reinterpret_cast<VkPhysicalDevice>(h.device); }),
                  TCA_ERROR_INVALID_ARGUMENT, "not one of the instance's");
    EXPECT_EQ(ctx, nullptr);

    tca_context* vc = c.ctx();
    VkCaller::Buf& b = c.buffer(1024);
    const uint64_t buf = (uint64_t)b.buffer;
    const tca_tensor_desc d = desc_of(TCA_F32, 2, 4, 16);
    tca_tensor* t = nullptr;
    EXPECT_STATUS(tca_tensor_wrap_vulkan(vc, 0, 1024, 0, &d, &t), TCA_ERROR_INVALID_ARGUMENT, "null VkBuffer");
    EXPECT_STATUS(tca_tensor_wrap_vulkan(vc, buf, 0, 0, &d, &t), TCA_ERROR_INVALID_ARGUMENT, "buffer_size");
    EXPECT_STATUS(tca_tensor_wrap_vulkan(vc, buf, 1 << 20, 0, &d, &t), TCA_ERROR_INVALID_ARGUMENT, "larger than");
    EXPECT_STATUS(tca_tensor_wrap_vulkan(vc, buf, uint64_t(1) << 40, 0, &d, &t), TCA_ERROR_UNSUPPORTED,
                  "storage-buffer range");
    EXPECT_STATUS(tca_tensor_wrap_vulkan(vc, buf, 1024, 800, &d, &t), TCA_ERROR_SHAPE_MISMATCH, "past the end");
    EXPECT_STATUS(tca_tensor_wrap_vulkan(vc, buf, 1024, 6, &d, &t), TCA_ERROR_INVALID_ARGUMENT, "multiple");
    EXPECT_STATUS(tca_tensor_wrap_vulkan(vc, buf, 1024, 0, nullptr, &t), TCA_ERROR_INVALID_ARGUMENT, "desc");
    EXPECT_STATUS(tca_tensor_wrap_vulkan(nullptr, buf, 1024, 0, &d, &t), TCA_ERROR_INVALID_ARGUMENT, "context");
    EXPECT_STATUS(tca_tensor_wrap_opencl(vc, reinterpret_cast<cl_mem>(0x1234), 0, &d, &t), TCA_ERROR_INVALID_ARGUMENT,
                  "not an OpenCL context");
    EXPECT_EQ(t, nullptr);
    // A wrapped tensor belongs to its context.
    ASSERT_TCA(tca_tensor_wrap_vulkan(vc, buf, 1024, 0, &d, &t));
    tca_context* other = nullptr;
    ASSERT_TCA(tca_context_create_vulkan(&c.handles, &other));
    tca_tensor* o = nullptr;
    ASSERT_TCA(tca_tensor_create(other, TCA_F32, 2, 4, 16, &o));
    EXPECT_STATUS(tca_dense_prefill(other, t, t, t, o, 0), TCA_ERROR_INVALID_ARGUMENT, "another context");
    tca_tensor_destroy(o);
    tca_tensor_destroy(t);
    tca_context_destroy(other);
}

}  // namespace
}  // namespace tca::detail::test
