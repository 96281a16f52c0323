// The hot path hides no host work (tca.h, "execution model and host-side costs"): after one
// warm-up, a TCA prefill on a reset cache and 50 decode steps across a compression make no
// read-back, no blocking wait and no device allocation on any device, and their results equal the
// blocking path's (a tca_context_finish after every call) bit for bit. The lazy reads (cache size,
// kept positions, the kept count of the stats) are exact afterwards.
#include <algorithm>
#include <cstring>
#include <vector>

#include "harness.h"
#include "tca/tca.h"

namespace tca::detail::test {
namespace {

constexpr int kHq = 4, kHkv = 2, kD = 64, kP = 1000, kSteps = 50, kWindow = 128, kBlock = 32;

tca_counters counters(tca_context* ctx) {
    tca_counters c{};
    c.struct_size = sizeof(tca_counters);
    EXPECT_EQ(tca_context_counters(ctx, &c), TCA_OK) << tca_last_error();
    return c;
}

struct HotRun {
    std::vector<float> out;                 // prefill output, then every step's
    std::vector<std::vector<int32_t>> kept;  // kept positions per KV head, after the last step
    uint64_t bytes = 0;
    int tokens = 0;
    int64_t stats_kept = 0;
    tca_counters hot{};  // the counters' growth over the measured prefill + decode steps
};

// blocking: tca_context_finish after every call (the behaviour before calls became asynchronous).
// chunk > 0: a chunked cache (tca_cache_create_ex) fed the prompt in chunks of `chunk` tokens.
HotRun run_calls(const std::string& dev, bool blocking, int chunk = 0) {
    HotRun r;
    tca_context* ctx = nullptr;
    EXPECT_EQ(tca_context_create(dev.c_str(), &ctx), TCA_OK) << tca_last_error();
    if (!ctx) return r;
    tca_params params{sizeof(tca_params)};
    tca_params_init(&params);
    params.window = kWindow, params.block = kBlock;
    tca_profile* prof = nullptr;
    EXPECT_EQ(tca_profile_fixed(&params, 1, kHq, kHkv, kD, 0.3, &prof), TCA_OK) << tca_last_error();
    tca_cache* cache = nullptr;
    tca_cache_options opts{sizeof(tca_cache_options)};
    EXPECT_EQ(tca_cache_options_init(&opts), TCA_OK);
    if (chunk > 0) opts.mode = TCA_CACHE_CHUNKED, opts.max_chunk = chunk;
    EXPECT_EQ(tca_cache_create_ex(ctx, prof, 0, kHq, kHkv, kD, TCA_F32, kP + kSteps, &opts, &cache), TCA_OK)
        << tca_last_error();
    std::vector<tca_tensor*> all;
    auto tensor = [&](int heads, int n, uint32_t seed) {
        tca_tensor* t = nullptr;
        EXPECT_EQ(tca_tensor_create(ctx, TCA_F32, heads, n, kD, &t), TCA_OK);
        if (seed) {
            const auto x = randn(size_t(heads) * n * kD, seed);
            EXPECT_EQ(tca_tensor_upload(t, x.data(), x.size() * 4), TCA_OK);
        }
        all.push_back(t);
        return t;
    };
    // Every input on the device before the measured calls: only the calls themselves are counted.
    tca_tensor *q = tensor(kHq, kP, 11), *k = tensor(kHkv, kP, 12), *v = tensor(kHkv, kP, 13), *o = tensor(kHq, kP, 0);
    struct Chunk {
        tca_tensor *q, *k, *v, *o;
    };
    std::vector<Chunk> chunks;
    for (int at = 0, i = 0; chunk > 0 && at < kP; at += chunk, ++i) {
        const int n = std::min(chunk, kP - at);
        chunks.push_back({tensor(kHq, n, 500 + 4 * i), tensor(kHkv, n, 501 + 4 * i), tensor(kHkv, n, 502 + 4 * i),
                          tensor(kHq, n, 0)});
    }
    std::vector<tca_tensor*> sq, sk, sv, so;
    for (int s = 0; s < kSteps; ++s) {
        sq.push_back(tensor(kHq, 1, 100 + 4 * s));
        sk.push_back(tensor(kHkv, 1, 101 + 4 * s));
        sv.push_back(tensor(kHkv, 1, 102 + 4 * s));
        so.push_back(tensor(kHq, 1, 0));
    }
    auto pass = [&] {
        if (chunk == 0) {
            EXPECT_EQ(tca_cache_prefill(cache, q, k, v, o), TCA_OK) << tca_last_error();
            if (blocking) EXPECT_EQ(tca_context_finish(ctx), TCA_OK);
        }
        for (const Chunk& c : chunks) {
            EXPECT_EQ(tca_cache_prefill(cache, c.q, c.k, c.v, c.o), TCA_OK) << tca_last_error();
            if (blocking) EXPECT_EQ(tca_context_finish(ctx), TCA_OK);
        }
        for (int s = 0; s < kSteps; ++s) {
            EXPECT_EQ(tca_cache_decode(cache, sq[s], sk[s], sv[s], so[s]), TCA_OK) << tca_last_error();
            if (blocking) EXPECT_EQ(tca_context_finish(ctx), TCA_OK);
        }
    };
    pass();  // warm-up: kernels built, the backends' scratch and descriptor pools grown
    EXPECT_EQ(tca_cache_reset(cache), TCA_OK);
    EXPECT_EQ(tca_context_finish(ctx), TCA_OK);
    const tca_counters c0 = counters(ctx);
    pass();
    const tca_counters c1 = counters(ctx);
    r.hot.submits = c1.submits - c0.submits;
    r.hot.waits = c1.waits - c0.waits;
    r.hot.readbacks = c1.readbacks - c0.readbacks;
    r.hot.allocations = c1.allocations - c0.allocations;
    // The lazy reads, before any download has synchronised.
    tca_call_stats st{sizeof(tca_call_stats)};
    EXPECT_EQ(tca_context_last_stats(ctx, &st), TCA_OK);
    r.stats_kept = st.kept_tokens;
    EXPECT_EQ(tca_cache_size(cache, &r.bytes, nullptr, &r.tokens), TCA_OK);
    for (int h = 0; h < kHkv; ++h) {
        int n = 0;
        EXPECT_EQ(tca_cache_kept_positions(cache, h, nullptr, 0, &n), TCA_OK) << tca_last_error();
        std::vector<int32_t> pos(static_cast<size_t>(n));
        EXPECT_EQ(tca_cache_kept_positions(cache, h, pos.data(), n, &n), TCA_OK);
        r.kept.push_back(pos);
    }
    if (chunk == 0) {
        r.out.resize(size_t(kHq) * kP * kD);
        EXPECT_EQ(tca_tensor_download(o, r.out.data(), r.out.size() * 4), TCA_OK);
    }
    for (const Chunk& c : chunks) {
        int n = 0;
        EXPECT_EQ(tca_tensor_shape(c.o, nullptr, nullptr, &n, nullptr), TCA_OK);
        std::vector<float> x(size_t(kHq) * n * kD);
        EXPECT_EQ(tca_tensor_download(c.o, x.data(), x.size() * 4), TCA_OK);
        r.out.insert(r.out.end(), x.begin(), x.end());
    }
    for (int s = 0; s < kSteps; ++s) {
        std::vector<float> x(size_t(kHq) * kD);
        EXPECT_EQ(tca_tensor_download(so[s], x.data(), x.size() * 4), TCA_OK);
        r.out.insert(r.out.end(), x.begin(), x.end());
    }
    tca_cache_destroy(cache);
    for (auto* t : all) tca_tensor_destroy(t);
    tca_profile_destroy(prof);
    tca_context_destroy(ctx);
    return r;
}

std::vector<std::string> hot_path_devices() {
    std::vector<std::string> d{"cpu"};
    for (const auto& n : devices_under_test()) d.push_back(n);
    return d;
}

class HotPath : public ::testing::TestWithParam<std::string> {};

TEST_P(HotPath, WarmPrefillAndDecodeMakeNoReadbackWaitOrAllocation) {
    const HotRun a = run_calls(GetParam(), false);
    EXPECT_EQ(a.hot.readbacks, 0u);
    EXPECT_EQ(a.hot.waits, 0u);
    EXPECT_EQ(a.hot.allocations, 0u);
    // GPU backends hand each call to the queue (one submit per call); the reference runs at once.
    if (GetParam() != "cpu") {
        EXPECT_EQ(a.hot.submits, uint64_t(1 + kSteps));
    }
    std::printf("[ hot path ] %s: %llu submits, %llu waits over 1 prefill + %d decode steps\n", GetParam().c_str(),
                static_cast<unsigned long long>(a.hot.submits), static_cast<unsigned long long>(a.hot.waits), kSteps);
}

// The same for a chunked cache fed the prompt in 4 chunks (256, 256, 256, 232 tokens): a chunk's
// kept lists and budgets go to the device without waiting (Device::update).
TEST_P(HotPath, WarmChunkedPromptAndDecodeMakeNoReadbackWaitOrAllocation) {
    const HotRun a = run_calls(GetParam(), false, 256);
    EXPECT_EQ(a.hot.readbacks, 0u);
    EXPECT_EQ(a.hot.waits, 0u);
    EXPECT_EQ(a.hot.allocations, 0u);
    if (GetParam() != "cpu") {
        EXPECT_EQ(a.hot.submits, uint64_t(4 + kSteps));
    }
    const HotRun b = run_calls(GetParam(), true, 256);
    EXPECT_EQ(a.out, b.out) << "chunked: asynchronous and blocking calls differ";
    EXPECT_EQ(a.kept, b.kept);
}

TEST_P(HotPath, AsynchronousCallsEqualBlockingOnesBitForBit) {
    const HotRun a = run_calls(GetParam(), false), b = run_calls(GetParam(), true);
    ASSERT_EQ(a.out.size(), b.out.size());
    EXPECT_EQ(std::memcmp(a.out.data(), b.out.data(), a.out.size() * 4), 0);
    EXPECT_EQ(a.kept, b.kept);
    EXPECT_EQ(a.bytes, b.bytes);
    EXPECT_EQ(a.stats_kept, b.stats_kept);
    if (GetParam() != "cpu") {
        EXPECT_GT(b.hot.waits, 0u) << "the blocking run waited";
    }
}

TEST_P(HotPath, LazyReadsAreExactAfterAsynchronousCalls) {
    const HotRun a = run_calls(GetParam(), false);
    ASSERT_EQ(a.kept.size(), size_t(kHkv));
    // The uncompressed tail after the steps: the window, plus the steps since the last compression.
    int tail = kWindow;
    for (int s = 0; s < kSteps; ++s) tail = tail + 1 == kWindow + kBlock ? kWindow : tail + 1;
    uint64_t expect = 0;
    int64_t kept = 0;
    for (const auto& g : a.kept) {
        expect += uint64_t(g.size() + size_t(tail)) * 2 * kD * 4;
        kept += int64_t(g.size());
        for (size_t i = 0; i < g.size(); ++i) {
            EXPECT_GE(g[i], 0);
            EXPECT_LT(g[i], kP + kSteps - tail);  // kept tokens are older than the tail
            if (i) EXPECT_NE(g[i], g[i - 1]);
        }
    }
    EXPECT_EQ(a.bytes, expect);
    EXPECT_EQ(a.tokens, kP + kSteps);
    EXPECT_EQ(a.stats_kept, kept);
    // The same selection as the reference's, read without any lazy path (the reference's reads are
    // plain host copies).
    if (GetParam() != "cpu") {
        EXPECT_EQ(a.kept, run_calls("cpu", true).kept);
    }
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(HotPath);
INSTANTIATE_TEST_SUITE_P(AllDevices, HotPath, ::testing::ValuesIn(hot_path_devices()),
                         [](const auto& info) { return safe_name(info.param); });

}  // namespace
}  // namespace tca::detail::test
