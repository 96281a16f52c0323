// The C++ header over the C ABI: RAII for every handle kind, failures as tca::Exception with the
// status and the library's message. Only tca.hpp is included (its tca::Tensor is not the device
// layer's, so this file must not see src/ headers).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "tca/tca.hpp"

namespace {

std::vector<float> wave(size_t n, float f) {
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = std::sin(float(i) * f) * 0.5f;
    return x;
}

template <class F>
tca_status status_of(F&& f) {
    try {
        f();
    } catch (const tca::Exception& e) {
        EXPECT_NE(std::string(e.what()).find(tca_status_name(e.status())), std::string::npos) << e.what();
        return e.status();
    }
    return TCA_OK;
}

TEST(CppWrapper, ProfileCacheAndStats) {
    const int hq = 2, hkv = 1, d = 64, P = 160, L = 256;
    tca::Context ctx("cpu");
    tca_params params = tca::default_params();
    EXPECT_EQ(params.block, 128);
    params.block = 16, params.window = 32;

    // Calibrate on one layer, save, load back: same shape and keep ratio.
    tca::Tensor cq(ctx, TCA_F32, hq, L, d), ck(ctx, TCA_F32, hkv, L, d);
    const auto qd = wave(size_t(hq) * L * d, 0.37f), kd = wave(size_t(hkv) * L * d, 0.11f);
    cq.upload(qd.data(), qd.size() * 4);
    ck.upload(kd.data(), kd.size() * 4);
    const tca::Profile cal = tca::Profile::calibrate(ctx, &params, {&cq}, {&ck});
    EXPECT_EQ(cal.shape().kv_heads, hkv);
    const std::string path = ::testing::TempDir() + "tca_cpp_profile.json";
    cal.save(path);
    const tca::Profile back = tca::Profile::load(path);
    EXPECT_EQ(back.keep_ratio(0, 0), cal.keep_ratio(0, 0));
    std::remove(path.c_str());

    // A cache from a fixed profile: prefill + one decode step, stats and sizes.
    const tca::Profile prof = tca::Profile::fixed(&params, 1, hq, hkv, d, 0.25);
    tca::Cache cache(ctx, &prof, 0, hq, hkv, d, TCA_F32, P + 4);
    tca::Tensor q(ctx, TCA_F32, hq, P, d), k(ctx, TCA_F32, hkv, P, d), o(ctx, TCA_F32, hq, P, d);
    q.upload(qd.data(), size_t(hq) * P * d * 4);
    k.upload(kd.data(), size_t(hkv) * P * d * 4);
    ctx.set_profiling(true);
    cache.prefill(q, k, k, o);
    EXPECT_GT(ctx.last_stats().kept_tokens, 0);
    tca::Tensor q1(ctx, TCA_F32, hq, 1, d), k1(ctx, TCA_F32, hkv, 1, d), o1(ctx, TCA_F32, hq, 1, d);
    q1.upload(qd.data(), size_t(hq) * d * 4);
    k1.upload(kd.data(), size_t(hkv) * d * 4);
    cache.decode(q1, k1, k1, o1);
    const auto size = cache.size();
    EXPECT_EQ(size.tokens, P + 1);
    EXPECT_LT(size.bytes, size.dense_bytes);
    EXPECT_EQ(o1.shape().tokens, 1);
    cache.reset();
    EXPECT_EQ(cache.size().tokens, 0);
    ctx.finish();
}

TEST(CppWrapper, FailuresThrowWithStatus) {
    tca::Context ctx("cpu");
    EXPECT_EQ(status_of([] { tca::Context("vulkan:99"); }), TCA_ERROR_DEVICE_NOT_FOUND);
    EXPECT_EQ(status_of([] { tca::Profile::load("/nonexistent/p.json"); }), TCA_ERROR_IO);
    EXPECT_EQ(status_of([] { tca::Profile::fixed(nullptr, 1, 4, 3, 64, 0.5); }), TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(status_of([&] { tca::Cache(ctx, nullptr, 0, 4, 3, 64, TCA_F32, 10); }), TCA_ERROR_SHAPE_MISMATCH);
    tca::Tensor q(ctx, TCA_F32, 1, 1, 64);
    EXPECT_EQ(status_of([&] { tca::Profile::calibrate(ctx, nullptr, {&q}, {}); }), TCA_ERROR_INVALID_ARGUMENT);
    // A backend left out at configure time answers its interop calls with UNSUPPORTED (test_build_config.cpp).
    int cl = 0, vk = 0;
    ASSERT_EQ(tca_build_has("opencl", &cl), TCA_OK);
    ASSERT_EQ(tca_build_has("vulkan", &vk), TCA_OK);
    const tca_status cl_bad = cl ? TCA_ERROR_INVALID_ARGUMENT : TCA_ERROR_UNSUPPORTED;
    const tca_status vk_bad = vk ? TCA_ERROR_INVALID_ARGUMENT : TCA_ERROR_UNSUPPORTED;
    EXPECT_EQ(status_of([] { tca::Context::opencl(nullptr, nullptr, nullptr); }), cl_bad);
    tca_vulkan_handles h{};
    h.struct_size = sizeof h;
    h.api_version = (1u << 22) | (1u << 12);  // 1.1
    EXPECT_EQ(status_of([&] { tca::Context::vulkan(h); }), vk_bad);
    const tca_tensor_desc d = tca::tensor_desc(TCA_F32, 1, 1, 64);
    EXPECT_EQ(status_of([&] { tca::Tensor::wrap_opencl(ctx, nullptr, 0, d); }), cl_bad);
    EXPECT_EQ(status_of([&] { tca::Tensor::wrap_vulkan(ctx, 1, 256, 0, d); }), vk_bad);
}

}  // namespace
