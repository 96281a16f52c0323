// The benchmarking entry points of the C API (tca.h, "benchmarking support"): the roofline on
// the reference backend, the build revision, and the kept positions of a TCA cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <random>
#include <vector>

#include "tca/tca.h"

namespace {

// The C entry point on the reference backend: host-timed, filled, and argument checks.
TEST(RooflineApi, ReferenceFillsEveryField) {
    tca_context* ctx = nullptr;
    ASSERT_EQ(tca_context_create("cpu", &ctx), TCA_OK);
    tca_roofline r{};
    EXPECT_EQ(tca_device_roofline(ctx, &r), TCA_ERROR_INVALID_ARGUMENT) << "struct_size 0 must be rejected";
    r.struct_size = sizeof r;
    ASSERT_EQ(tca_device_roofline(ctx, &r), TCA_OK) << tca_last_error();
    EXPECT_GT(r.copy_gbps, 0);
    EXPECT_GT(r.f32_gflops, 0);
    EXPECT_EQ(r.host_timed, 1);
    EXPECT_GT(r.copy_bytes, 0u);
    EXPECT_GT(r.gemm_size, 0);
    EXPECT_STRNE(r.copy_engine, "");
    EXPECT_STRNE(r.f32_engine, "");
    EXPECT_GT(r.fma_f32_gflops, 0);
    EXPECT_STRNE(r.fma_engine, "");
    // A caller built against the first version's struct (no multiply-add fields): those bytes of
    // its memory stay untouched.
    tca_roofline old{};
    std::memset(&old, 0x5a, sizeof old);
    old.struct_size = offsetof(tca_roofline, fma_f32_gflops);
    ASSERT_EQ(tca_device_roofline(ctx, &old), TCA_OK) << tca_last_error();
    EXPECT_GT(old.copy_gbps, 0);
    EXPECT_EQ(old.struct_size, offsetof(tca_roofline, fma_f32_gflops));
    const auto* tail = reinterpret_cast<const unsigned char*>(&old) + offsetof(tca_roofline, fma_f32_gflops);
    for (size_t i = 0; i < sizeof old - offsetof(tca_roofline, fma_f32_gflops); ++i)
        ASSERT_EQ(tail[i], 0x5a) << "byte " << i << " past the caller's struct was written";
    EXPECT_EQ(tca_device_roofline(nullptr, &r), TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(tca_device_roofline(ctx, nullptr), TCA_ERROR_INVALID_ARGUMENT);
    tca_context_destroy(ctx);
    EXPECT_STRNE(tca_build_revision(), "");
}

struct Owned {
    tca_context* ctx = nullptr;
    std::vector<tca_tensor*> tensors;
    ~Owned() {
        for (auto* t : tensors) tca_tensor_destroy(t);
        tca_context_destroy(ctx);
    }
    tca_tensor* make(int h, int l, int d, uint32_t seed) {
        tca_tensor* t = nullptr;
        EXPECT_EQ(tca_tensor_create(ctx, TCA_F32, h, l, d, &t), TCA_OK);
        std::mt19937 rng(seed);
        std::normal_distribution<float> n(0.f, 1.f);
        std::vector<float> x(size_t(h) * l * d);
        for (float& v : x) v = n(rng);
        EXPECT_EQ(tca_tensor_upload(t, x.data(), x.size() * 4), TCA_OK);
        tensors.push_back(t);
        return t;
    }
};

TEST(KeptPositionsApi, MatchesTheSelectionRules) {
    Owned o;
    ASSERT_EQ(tca_context_create("cpu", &o.ctx), TCA_OK);
    const int hq = 4, hkv = 2, L = 300, d = 16, block = 16, window = 64;
    tca_params p{};
    p.struct_size = sizeof p;
    ASSERT_EQ(tca_params_init(&p), TCA_OK);
    p.block = block, p.window = window;
    tca_profile* prof = nullptr;
    ASSERT_EQ(tca_profile_fixed(&p, 1, hq, hkv, d, 0.25, &prof), TCA_OK) << tca_last_error();
    tca_cache* cache = nullptr;
    ASSERT_EQ(tca_cache_create(o.ctx, prof, 0, hq, hkv, d, TCA_F32, L, &cache), TCA_OK) << tca_last_error();
    tca_tensor *q = o.make(hq, L, d, 1), *k = o.make(hkv, L, d, 2), *v = o.make(hkv, L, d, 3);
    tca_tensor* out = o.make(hq, L, d, 4);
    ASSERT_EQ(tca_context_set_profiling(o.ctx, 1), TCA_OK);
    ASSERT_EQ(tca_cache_prefill(cache, q, k, v, out), TCA_OK) << tca_last_error();
    tca_call_stats st{};
    st.struct_size = sizeof st;
    ASSERT_EQ(tca_context_last_stats(o.ctx, &st), TCA_OK);
    int64_t total = 0;
    const int n_global = L - window, n_blocks = (n_global + block - 1) / block;
    for (int h = 0; h < hkv; ++h) {
        int count = -1;
        ASSERT_EQ(tca_cache_kept_positions(cache, h, nullptr, 0, &count), TCA_OK) << tca_last_error();
        ASSERT_GE(count, n_blocks) << "every block keeps at least one token";
        std::vector<int32_t> pos(size_t(count) + 5, -1);
        int again = 0;
        ASSERT_EQ(tca_cache_kept_positions(cache, h, pos.data(), int(pos.size()), &again), TCA_OK);
        EXPECT_EQ(again, count);
        EXPECT_EQ(pos[size_t(count)], -1) << "wrote past count";
        pos.resize(size_t(count));
        EXPECT_TRUE(std::is_sorted(pos.begin(), pos.end()));
        EXPECT_EQ(std::adjacent_find(pos.begin(), pos.end()), pos.end()) << "duplicates";
        EXPECT_GE(pos.front(), 0);
        EXPECT_LT(pos.back(), n_global);
        total += count;
    }
    EXPECT_EQ(total, st.kept_tokens);
    int count = 0;
    EXPECT_EQ(tca_cache_kept_positions(cache, hkv, nullptr, 0, &count), TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(tca_cache_kept_positions(cache, 0, nullptr, 0, nullptr), TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(tca_cache_kept_positions(cache, 0, nullptr, 4, &count), TCA_ERROR_INVALID_ARGUMENT);
    tca_cache_destroy(cache);
    tca_profile_destroy(prof);

    // A dense cache selects nothing.
    ASSERT_EQ(tca_cache_create(o.ctx, nullptr, 0, hq, hkv, d, TCA_F32, L, &cache), TCA_OK);
    ASSERT_EQ(tca_cache_prefill(cache, q, k, v, out), TCA_OK);
    count = -1;
    EXPECT_EQ(tca_cache_kept_positions(cache, 0, nullptr, 0, &count), TCA_OK);
    EXPECT_EQ(count, 0);
    tca_cache_destroy(cache);
}

}  // namespace
