// Recording into the caller's command buffer (tca.h, "recording into your command buffer"). The test
// plays a runtime that owns its VkDevice: it records a TCA cache prefill, decode steps and a dense
// decode into one command buffer of its own, with its own copies between them (the "layer" that
// produces each step's q/k/v, and the copy-out of each step's output), barriers per the contract,
// submits once, and compares bit for bit with the same calls made blocking on the same buffers.
// Under the validation layer with synchronization validation on (the listener fails a test on any
// message). Also: a recording counts no submit and no wait, many decode steps fit one command
// buffer, and every misuse gets a status and a message and changes nothing.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "harness.h"
#include "tca/tca.h"
#include "vk_runtime.h"

namespace tca::detail::test {
namespace {

#define ASSERT_TCA(call) ASSERT_EQ((call), TCA_OK) << #call << ": " << tca_last_error()
#define EXPECT_TCA(call) EXPECT_EQ((call), TCA_OK) << #call << ": " << tca_last_error()
#define EXPECT_STATUS(call, code, needle)                                                          \
    do {                                                                                           \
        const tca_status st_ = (call);                                                             \
        EXPECT_EQ(st_, code) << #call << " -> " << tca_status_name(st_) << ": " << tca_last_error(); \
        EXPECT_NE(std::string(tca_last_error()).find(needle), std::string::npos)                   \
            << "message '" << tca_last_error() << "' lacks '" << needle << "'";                    \
    } while (0)

constexpr VkPipelineStageFlags kLib = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
constexpr VkAccessFlags kLibWrites = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
constexpr VkAccessFlags kLibAll =
    VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;

// The workload: a prompt of L tokens, then `steps` decode steps; the whole Q/K/V of L + steps
// tokens sits in three caller buffers ([heads, L + steps, d]).
struct Workload {
    int hq = 4, hkv = 2, d = 64, L = 256, steps = 6;
    int T() const { return L + steps; }
    std::vector<float> q, k, v;
    explicit Workload(int n_steps) : steps(n_steps) {
        q.resize(size_t(hq) * T() * d), k.resize(size_t(hkv) * T() * d), v.resize(size_t(hkv) * T() * d);
        tca_synth_spec s{sizeof(tca_synth_spec), "mix", hq, hkv, T(), d, 7};
        EXPECT_TCA(tca_synth_workload(&s, q.data(), q.size(), k.data(), k.size(), v.data(), v.size()));
    }
};

tca_tensor* wrap(tca_context* ctx, const VkRuntime::Buf& b, size_t offset, int h, int t, int d, int64_t head_stride) {
    tca_tensor_desc desc{sizeof(tca_tensor_desc), TCA_F32, h, t, d, head_stride, head_stride ? int64_t(d) : 0};
    tca_tensor* out = nullptr;
    EXPECT_TCA(tca_tensor_wrap_vulkan(ctx, (uint64_t)b.buffer, b.size, offset, &desc, &out));
    return out;
}

tca_profile* fixed_profile(const Workload& w) {
    tca_params p{};
    p.struct_size = sizeof p;
    EXPECT_TCA(tca_params_init(&p));
    p.block = 32, p.window = 64;
    tca_profile* prof = nullptr;
    EXPECT_TCA(tca_profile_fixed(&p, 1, w.hq, w.hkv, w.d, 0.5, &prof));
    return prof;
}

// One run of the calls on fresh caller buffers: blocking (host writes each step's q/k/v into the
// step buffers, reads the output after each call) or recorded into one command buffer (the
// runtime's copies move the data). Returns the prefill output, every step's output and the dense
// decode output, concatenated.
struct Outcome {
    std::vector<float> out;
    tca_counters during{};  // counters moved between begin and end of the recording
};

Outcome run_calls(VkRuntime& rt, tca_context* ctx, const Workload& w, bool record) {
    Outcome r;
    const size_t f = 4, row = size_t(w.d) * f;
    auto& Q = rt.buffer(w.q.size() * f), &K = rt.buffer(w.k.size() * f), &V = rt.buffer(w.v.size() * f);
    std::memcpy(Q.mapped, w.q.data(), Q.size), std::memcpy(K.mapped, w.k.data(), K.size);
    std::memcpy(V.mapped, w.v.data(), V.size);
    auto& q1 = rt.buffer(w.hq * row), &k1 = rt.buffer(w.hkv * row), &v1 = rt.buffer(w.hkv * row);
    auto& o1 = rt.buffer(w.hq * row), &oP = rt.buffer(size_t(w.hq) * w.L * row), &oD = rt.buffer(w.hq * row);
    auto& all = rt.buffer(size_t(w.steps) * w.hq * row);  // every step's output, copied out by the runtime
    const int64_t hs = int64_t(w.T()) * w.d;
    tca_tensor *qP = wrap(ctx, Q, 0, w.hq, w.L, w.d, hs), *kP = wrap(ctx, K, 0, w.hkv, w.L, w.d, hs),
               *vP = wrap(ctx, V, 0, w.hkv, w.L, w.d, hs), *kA = wrap(ctx, K, 0, w.hkv, w.T(), w.d, hs),
               *vA = wrap(ctx, V, 0, w.hkv, w.T(), w.d, hs);
    tca_tensor *q1t = wrap(ctx, q1, 0, w.hq, 1, w.d, 0), *k1t = wrap(ctx, k1, 0, w.hkv, 1, w.d, 0),
               *v1t = wrap(ctx, v1, 0, w.hkv, 1, w.d, 0), *o1t = wrap(ctx, o1, 0, w.hq, 1, w.d, 0),
               *oPt = wrap(ctx, oP, 0, w.hq, w.L, w.d, 0), *oDt = wrap(ctx, oD, 0, w.hq, 1, w.d, 0);
    tca_profile* prof = fixed_profile(w);
    tca_cache* cache = nullptr;
    EXPECT_TCA(tca_cache_create(ctx, prof, 0, w.hq, w.hkv, w.d, TCA_F32, w.T(), &cache));

    // Step s's rows of head h of an [h, T, d] buffer, and of a [h, 1, d] step buffer.
    auto src_off = [&](int h, int s) { return (size_t(h) * w.T() + w.L + s) * row; };
    VkCommandBuffer cb = record ? rt.begin() : VK_NULL_HANDLE;
    tca_counters before{sizeof(tca_counters)}, after{sizeof(tca_counters)};
    if (record) {
        EXPECT_TCA(tca_context_vulkan_begin_recording(ctx, cb));
        EXPECT_TCA(tca_context_counters(ctx, &before));
    }
    EXPECT_TCA(tca_cache_prefill(cache, qP, kP, vP, oPt));
    for (int s = 0; s < w.steps; ++s) {
        if (record) {
            // The runtime's own commands: wait for the earlier calls (their reads of q1/k1/v1 and
            // write of o1), copy the last output out and this step's q/k/v in, then the barrier
            // before the next recorded call.
            rt.barrier(cb, kLib, kLibWrites, VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT);
            if (s > 0) {
                VkBufferCopy out{0, size_t(s - 1) * w.hq * row, w.hq * row};
                vkCmdCopyBuffer(cb, o1.buffer, all.buffer, 1, &out);
            }
            for (int h = 0; h < w.hq; ++h) {
                VkBufferCopy c{src_off(h, s), h * row, row};
                vkCmdCopyBuffer(cb, Q.buffer, q1.buffer, 1, &c);
            }
            for (int h = 0; h < w.hkv; ++h) {
                VkBufferCopy c{src_off(h, s), h * row, row};
                vkCmdCopyBuffer(cb, K.buffer, k1.buffer, 1, &c);
                vkCmdCopyBuffer(cb, V.buffer, v1.buffer, 1, &c);
            }
            rt.barrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT, kLib, kLibAll);
        } else {
            for (int h = 0; h < w.hq; ++h) std::memcpy(q1.mapped + h * row, Q.mapped + src_off(h, s), row);
            for (int h = 0; h < w.hkv; ++h) {
                std::memcpy(k1.mapped + h * row, K.mapped + src_off(h, s), row);
                std::memcpy(v1.mapped + h * row, V.mapped + src_off(h, s), row);
            }
        }
        EXPECT_TCA(tca_cache_decode(cache, q1t, k1t, v1t, o1t));
        if (!record) std::memcpy(all.mapped + size_t(s) * w.hq * row, o1.mapped, w.hq * row);
    }
    // A dense call on the same command buffer: the last step's query against every token.
    EXPECT_TCA(tca_dense_decode(ctx, q1t, kA, vA, w.T(), oDt, 0.f));
    if (record) {
        uint64_t ticket = 0;
        EXPECT_TCA(tca_context_counters(ctx, &after));
        EXPECT_TCA(tca_context_vulkan_end_recording(ctx, &ticket));
        r.during.submits = after.submits - before.submits, r.during.waits = after.waits - before.waits;
        r.during.readbacks = after.readbacks - before.readbacks;
        rt.barrier(cb, kLib, kLibWrites, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT);
        VkBufferCopy out{0, size_t(w.steps - 1) * w.hq * row, w.hq * row};
        vkCmdCopyBuffer(cb, o1.buffer, all.buffer, 1, &out);
        rt.barrier(cb, kLib, kLibWrites, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
        EXPECT_TRUE(rt.submit_and_wait(cb));
        EXPECT_TCA(tca_context_vulkan_release(ctx, ticket));
    }
    auto append = [&](const VkRuntime::Buf& b) {
        const size_t n = b.size / 4;
        r.out.resize(r.out.size() + n);
        std::memcpy(r.out.data() + r.out.size() - n, b.mapped, b.size);
    };
    append(oP), append(all), append(oD);
    int tokens = 0;
    EXPECT_TCA(tca_cache_size(cache, nullptr, nullptr, &tokens));
    EXPECT_EQ(tokens, w.T());
    tca_cache_destroy(cache);
    tca_profile_destroy(prof);
    for (tca_tensor* t : {qP, kP, vP, kA, vA, q1t, k1t, v1t, o1t, oPt, oDt}) tca_tensor_destroy(t);
    return r;
}

class RecordingVulkan : public ::testing::Test {
protected:
    void SetUp() override {
        rt_ = std::make_unique<VkRuntime>();
        std::printf("validation layer with synchronization validation: %s\n", rt_->validated ? "on" : "off");
        if (!rt_->ok()) {
            if (in_ci()) {
                FAIL() << "no Vulkan device in CI";
            }
            GTEST_SKIP() << "no Vulkan device";
        }
        if (in_ci()) {
            EXPECT_TRUE(rt_->validated) << "CI runs the recording tests under the validation layer";
        }
        ASSERT_TCA(tca_context_create_vulkan(&rt_->handles, &ctx_));
    }
    void TearDown() override {
        if (ctx_) {
            EXPECT_TCA(tca_context_destroy(ctx_));
        }
        rt_.reset();
    }
    std::unique_ptr<VkRuntime> rt_;
    tca_context* ctx_ = nullptr;
};

void expect_identical(const Outcome& blocking, const Outcome& recorded) {
    ASSERT_EQ(blocking.out.size(), recorded.out.size());
    size_t nonzero = 0, differ = 0;
    for (size_t i = 0; i < blocking.out.size(); ++i) {
        nonzero += blocking.out[i] != 0.f;
        differ += std::memcmp(&blocking.out[i], &recorded.out[i], 4) != 0;
    }
    EXPECT_GT(nonzero, blocking.out.size() / 2) << "the outputs were not written";
    EXPECT_EQ(differ, 0u) << "of " << blocking.out.size() << " output values";
}

TEST_F(RecordingVulkan, RecordedCallsMatchBlockingBitForBit) {
    const Workload w(6);
    const Outcome blocking = run_calls(*rt_, ctx_, w, false);
    const Outcome recorded = run_calls(*rt_, ctx_, w, true);
    expect_identical(blocking, recorded);
    EXPECT_EQ(recorded.during.submits, 0u);
    EXPECT_EQ(recorded.during.waits, 0u);
    EXPECT_EQ(recorded.during.readbacks, 0u);
}

// Many calls into one command buffer: the recording's descriptor pools grow without waiting.
TEST_F(RecordingVulkan, TwoHundredDecodeStepsInOneCommandBuffer) {
    const Workload w(200);
    const Outcome blocking = run_calls(*rt_, ctx_, w, false);
    const Outcome recorded = run_calls(*rt_, ctx_, w, true);
    expect_identical(blocking, recorded);
    EXPECT_EQ(recorded.during.submits, 0u);
    EXPECT_EQ(recorded.during.waits, 0u);
}

TEST_F(RecordingVulkan, MisuseIsRefusedAndChangesNothing) {
    // Not an interop context, or not Vulkan at all.
    tca_context* own = nullptr;
    if (tca_context_create("vulkan:0", &own) == TCA_OK) {
        VkCommandBuffer cb = rt_->begin();
        EXPECT_STATUS(tca_context_vulkan_begin_recording(own, cb), TCA_ERROR_UNSUPPORTED, "tca_context_create_vulkan");
        vkEndCommandBuffer(cb);
        vkFreeCommandBuffers(rt_->device, rt_->pool, 1, &cb);
        tca_context_destroy(own);
    }
    tca_context* cpu = nullptr;
    ASSERT_TCA(tca_context_create("cpu", &cpu));
    EXPECT_STATUS(tca_context_vulkan_begin_recording(cpu, nullptr), TCA_ERROR_INVALID_ARGUMENT, "not a Vulkan context");
    tca_context_destroy(cpu);

    EXPECT_STATUS(tca_context_vulkan_begin_recording(ctx_, nullptr), TCA_ERROR_INVALID_ARGUMENT, "null VkCommandBuffer");
    uint64_t ticket = 0;
    EXPECT_STATUS(tca_context_vulkan_end_recording(ctx_, &ticket), TCA_ERROR_INVALID_ARGUMENT, "no recording is open");
    EXPECT_STATUS(tca_context_vulkan_release(ctx_, 12345), TCA_ERROR_INVALID_ARGUMENT, "unknown recording ticket");

    // A cache with a prompt, made blocking; then a recording with misuse inside it.
    const Workload w(2);
    const size_t row = size_t(w.d) * 4;
    auto& Q = rt_->buffer(w.q.size() * 4), &K = rt_->buffer(w.k.size() * 4), &V = rt_->buffer(w.v.size() * 4);
    std::memcpy(Q.mapped, w.q.data(), Q.size), std::memcpy(K.mapped, w.k.data(), K.size);
    std::memcpy(V.mapped, w.v.data(), V.size);
    auto& oP = rt_->buffer(size_t(w.hq) * w.L * row), &o1 = rt_->buffer(w.hq * row);
    const int64_t hs = int64_t(w.T()) * w.d;
    tca_tensor *qP = wrap(ctx_, Q, 0, w.hq, w.L, w.d, hs), *kP = wrap(ctx_, K, 0, w.hkv, w.L, w.d, hs),
               *vP = wrap(ctx_, V, 0, w.hkv, w.L, w.d, hs), *oPt = wrap(ctx_, oP, 0, w.hq, w.L, w.d, 0);
    tca_tensor *q1 = wrap(ctx_, Q, size_t(w.L) * row, w.hq, 1, w.d, hs), *k1 = wrap(ctx_, K, size_t(w.L) * row, w.hkv, 1, w.d, hs),
               *v1 = wrap(ctx_, V, size_t(w.L) * row, w.hkv, 1, w.d, hs), *o1t = wrap(ctx_, o1, 0, w.hq, 1, w.d, 0);
    tca_profile* prof = fixed_profile(w);
    tca_cache* cache = nullptr;
    ASSERT_TCA(tca_cache_create(ctx_, prof, 0, w.hq, w.hkv, w.d, TCA_F32, w.T(), &cache));
    ASSERT_TCA(tca_cache_prefill(cache, qP, kP, vP, oPt));
    tca_tensor* lib = nullptr;  // a library-made tensor, for the host-reading calls
    ASSERT_TCA(tca_tensor_create(ctx_, TCA_F32, 1, 1, 4, &lib));
    // The blocking decode step, as the reference for the recorded one below.
    tca_cache* ref = nullptr;
    ASSERT_TCA(tca_cache_create(ctx_, prof, 0, w.hq, w.hkv, w.d, TCA_F32, w.T(), &ref));
    ASSERT_TCA(tca_cache_prefill(ref, qP, kP, vP, oPt));
    ASSERT_TCA(tca_cache_decode(ref, q1, k1, v1, o1t));
    std::vector<unsigned char> expected(o1.mapped, o1.mapped + o1.size);
    std::memset(o1.mapped, 0, o1.size);

    VkCommandBuffer cb = rt_->begin();
    ASSERT_TCA(tca_context_vulkan_begin_recording(ctx_, cb));
    EXPECT_STATUS(tca_context_vulkan_begin_recording(ctx_, cb), TCA_ERROR_INVALID_ARGUMENT, "already open");
    float host[4];
    EXPECT_STATUS(tca_tensor_download(lib, host, sizeof host), TCA_ERROR_INVALID_ARGUMENT, "recording");
    EXPECT_STATUS(tca_context_finish(ctx_), TCA_ERROR_INVALID_ARGUMENT, "recording");
    int count = -1;
    EXPECT_STATUS(tca_cache_kept_positions(cache, 0, nullptr, 0, &count), TCA_ERROR_INVALID_ARGUMENT, "recording");
    EXPECT_EQ(count, -1) << "a refused call wrote its output";
    EXPECT_STATUS(tca_context_set_profiling(ctx_, 1), TCA_ERROR_UNSUPPORTED, "recording");
    // A decode with the wrong query shape: refused, nothing recorded, the cache as it was.
    int tokens = 0;
    EXPECT_STATUS(tca_cache_decode(cache, qP, k1, v1, o1t), TCA_ERROR_SHAPE_MISMATCH, "");
    EXPECT_TCA(tca_cache_size(cache, nullptr, nullptr, &tokens));
    EXPECT_EQ(tokens, w.L);
    // The valid step, recorded after the refused one, gives the blocking result.
    rt_->barrier(cb, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_WRITE_BIT, kLib, kLibAll);
    EXPECT_TCA(tca_cache_decode(cache, q1, k1, v1, o1t));
    ASSERT_TCA(tca_context_vulkan_end_recording(ctx_, &ticket));
    rt_->barrier(cb, kLib, kLibWrites, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
    ASSERT_TRUE(rt_->submit_and_wait(cb));
    // Until released, what the recording used belongs to the ticket: host reads of it are refused.
    std::vector<float> o_host(size_t(w.hq) * w.d);
    EXPECT_STATUS(tca_tensor_download(o1t, o_host.data(), o_host.size() * 4), TCA_ERROR_INVALID_ARGUMENT, "ticket");
    EXPECT_TCA(tca_context_vulkan_release(ctx_, ticket));
    EXPECT_STATUS(tca_context_vulkan_release(ctx_, ticket), TCA_ERROR_INVALID_ARGUMENT, "released already");
    EXPECT_EQ(std::memcmp(expected.data(), o1.mapped, o1.size), 0) << "the recorded step differs from the blocking one";
    EXPECT_TCA(tca_tensor_download(o1t, o_host.data(), o_host.size() * 4));
    EXPECT_EQ(std::memcmp(expected.data(), o_host.data(), o1.size), 0);
    EXPECT_TCA(tca_cache_kept_positions(cache, 0, nullptr, 0, &count));
    int ref_count = -2;
    EXPECT_TCA(tca_cache_kept_positions(ref, 0, nullptr, 0, &ref_count));
    EXPECT_EQ(count, ref_count);
    EXPECT_TCA(tca_tensor_download(lib, host, sizeof host));
    EXPECT_TCA(tca_context_finish(ctx_));

    tca_cache_destroy(cache);
    tca_cache_destroy(ref);
    tca_profile_destroy(prof);
    for (tca_tensor* t : {qP, kP, vP, oPt, q1, k1, v1, o1t, lib}) tca_tensor_destroy(t);

    // Destroyed with a recording open: freed, and said so.
    VkCommandBuffer open = rt_->begin();
    ASSERT_TCA(tca_context_vulkan_begin_recording(ctx_, open));
    EXPECT_STATUS(tca_context_destroy(ctx_), TCA_ERROR_INVALID_ARGUMENT, "recording");
    ctx_ = nullptr;
    vkEndCommandBuffer(open);
    vkFreeCommandBuffers(rt_->device, rt_->pool, 1, &open);
}

}  // namespace
}  // namespace tca::detail::test
