// OpenCL events through the C ABI (tca.h, tca_context_opencl_wait_for / _last_event), on an interop
// context on the caller's own cl_context and queue: a user event in the wait list gates the next call,
// and the returned event completes exactly when the call's output is ready, bit-identical to an
// ungated call. Bad input gets a status and a message.
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "harness.h"
#include "tca/tca.h"

namespace tca::detail::test {
namespace {

constexpr int kHq = 4, kHkv = 2, kN = 96, kD = 64;

struct ClSetup {
    cl_context context = nullptr;
    cl_device_id dev = nullptr;
    cl_command_queue queue = nullptr;
    tca_context* ctx = nullptr;
    std::vector<cl_mem> mems;
    ClSetup() {
        cl_platform_id p = nullptr;
        cl_uint np = 0;
        if (clGetPlatformIDs(1, &p, &np) != CL_SUCCESS || np == 0) return;
        if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &dev, nullptr) != CL_SUCCESS) return;
        cl_int err = CL_SUCCESS;
        const cl_context_properties cp[] = {CL_CONTEXT_PLATFORM, cl_context_properties(p), 0};
        context = clCreateContext(cp, 1, &dev, nullptr, nullptr, &err);
        queue = clCreateCommandQueue(context, dev, 0, &err);
        EXPECT_EQ(tca_context_create_opencl(context, dev, queue, &ctx), TCA_OK) << tca_last_error();
    }
    ~ClSetup() {
        if (ctx) tca_context_destroy(ctx);
        for (cl_mem m : mems) clReleaseMemObject(m);
        if (queue) clReleaseCommandQueue(queue);
        if (context) clReleaseContext(context);
    }
    // A wrapped [heads, tokens, kD] f32 tensor holding `data` (written before return).
    tca_tensor* tensor(int heads, int tokens, const std::vector<float>& data, cl_mem* mem_out = nullptr) {
        cl_int err = CL_SUCCESS;
        const size_t bytes = size_t(heads) * tokens * kD * 4;
        cl_mem m = clCreateBuffer(context, CL_MEM_READ_WRITE, bytes, nullptr, &err);
        EXPECT_EQ(err, CL_SUCCESS);
        mems.push_back(m);
        std::vector<float> x = data.empty() ? std::vector<float>(bytes / 4, 0.f) : data;
        EXPECT_EQ(clEnqueueWriteBuffer(queue, m, CL_TRUE, 0, bytes, x.data(), 0, nullptr, nullptr), CL_SUCCESS);
        tca_tensor_desc d{};
        d.struct_size = sizeof d;
        d.dtype = TCA_F32, d.heads = heads, d.tokens = tokens, d.dim = kD;
        tca_tensor* t = nullptr;
        EXPECT_EQ(tca_tensor_wrap_opencl(ctx, m, 0, &d, &t), TCA_OK) << tca_last_error();
        if (mem_out) *mem_out = m;
        return t;
    }
    std::vector<float> read(cl_mem m, size_t floats) {
        std::vector<float> out(floats);
        EXPECT_EQ(clEnqueueReadBuffer(queue, m, CL_TRUE, 0, floats * 4, out.data(), 0, nullptr, nullptr), CL_SUCCESS);
        return out;
    }
};

cl_int status_of(cl_event e) {
    cl_int st = CL_QUEUED;
    EXPECT_EQ(clGetEventInfo(e, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof st, &st, nullptr), CL_SUCCESS);
    return st;
}

TEST(OpenCLEvents, UserEventGatesTheNextCallAndTheLastEventMarksItsOutput) {
    ClSetup c;
    if (!c.ctx) {
        if (in_ci()) FAIL() << "no OpenCL device in CI";
        GTEST_SKIP() << "no OpenCL device";
    }
    tca_tensor *q = c.tensor(kHq, 1, randn(size_t(kHq) * kD, 1)), *k = c.tensor(kHkv, kN, randn(size_t(kHkv) * kN * kD, 2)),
               *v = c.tensor(kHkv, kN, randn(size_t(kHkv) * kN * kD, 3));
    cl_mem m1 = nullptr, m2 = nullptr;
    tca_tensor *o1 = c.tensor(kHq, 1, {}, &m1), *o2 = c.tensor(kHq, 1, {}, &m2);
    struct _cl_event* none = reinterpret_cast<struct _cl_event*>(1);
    ASSERT_EQ(tca_context_opencl_last_event(c.ctx, &none), TCA_OK);
    EXPECT_EQ(none, nullptr) << "no call yet";
    // Ungated: the result to compare with.
    ASSERT_EQ(tca_dense_decode(c.ctx, q, k, v, kN, o1, 0.f), TCA_OK) << tca_last_error();
    const auto want = c.read(m1, size_t(kHq) * kD);

    cl_int err = CL_SUCCESS;
    cl_event gate = clCreateUserEvent(c.context, &err);
    ASSERT_EQ(err, CL_SUCCESS);
    ASSERT_EQ(tca_context_opencl_wait_for(c.ctx, 1, &gate), TCA_OK) << tca_last_error();
    ASSERT_EQ(tca_dense_decode(c.ctx, q, k, v, kN, o2, 0.f), TCA_OK) << tca_last_error();
    cl_event done = nullptr;
    ASSERT_EQ(tca_context_opencl_last_event(c.ctx, &done), TCA_OK);
    ASSERT_NE(done, nullptr);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_NE(status_of(done), CL_COMPLETE) << "the call ran before its wait list completed";
    ASSERT_EQ(clSetUserEventStatus(gate, CL_COMPLETE), CL_SUCCESS);
    ASSERT_EQ(clWaitForEvents(1, &done), CL_SUCCESS);
    EXPECT_EQ(status_of(done), CL_COMPLETE);
    // Read without the queue's order: only the event says the output is there.
    std::vector<float> got(size_t(kHq) * kD);
    cl_command_queue other = clCreateCommandQueue(c.context, c.dev, 0, &err);
    ASSERT_EQ(err, CL_SUCCESS);
    ASSERT_EQ(clEnqueueReadBuffer(other, m2, CL_TRUE, 0, got.size() * 4, got.data(), 0, nullptr, nullptr), CL_SUCCESS);
    clReleaseCommandQueue(other);
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0);
    clReleaseEvent(done);
    clReleaseEvent(gate);
    for (auto* t : {q, k, v, o1, o2}) tca_tensor_destroy(t);
}

TEST(OpenCLEvents, BadWaitListsAreRejected) {
    ClSetup c;
    if (!c.ctx) {
        if (in_ci()) FAIL() << "no OpenCL device in CI";
        GTEST_SKIP() << "no OpenCL device";
    }
    cl_int err = CL_SUCCESS;
    cl_event e = clCreateUserEvent(c.context, &err);
    ASSERT_EQ(err, CL_SUCCESS);
    EXPECT_EQ(tca_context_opencl_wait_for(c.ctx, 0, &e), TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::strstr(tca_last_error(), "empty wait list"), nullptr) << tca_last_error();
    EXPECT_EQ(tca_context_opencl_wait_for(c.ctx, 1, nullptr), TCA_ERROR_INVALID_ARGUMENT);
    cl_event with_null[] = {e, nullptr};
    EXPECT_EQ(tca_context_opencl_wait_for(c.ctx, 2, with_null), TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::strstr(tca_last_error(), "null cl_event"), nullptr) << tca_last_error();
    tca_context* cpu = nullptr;
    ASSERT_EQ(tca_context_create("cpu", &cpu), TCA_OK);
    EXPECT_EQ(tca_context_opencl_wait_for(cpu, 1, &e), TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::strstr(tca_last_error(), "not an OpenCL context"), nullptr) << tca_last_error();
    cl_event out = nullptr;
    EXPECT_EQ(tca_context_opencl_last_event(cpu, &out), TCA_ERROR_INVALID_ARGUMENT);
    tca_context_destroy(cpu);
    // The context still works after the refusals: nothing was enqueued.
    EXPECT_EQ(tca_context_finish(c.ctx), TCA_OK);
    clSetUserEventStatus(e, CL_COMPLETE);
    clReleaseEvent(e);
}

}  // namespace
}  // namespace tca::detail::test
