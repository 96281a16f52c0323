// What this build has (the TCA_WITH_* options of CMakeLists.txt) as the C API reports it, and what a
// left-out backend does: no devices, interop calls that fail with TCA_ERROR_UNSUPPORTED, and its
// test files not built (named below as skipped tests, so a reduced build says what it did not run).
#include <gtest/gtest.h>

#include <string>

#include "tca/tca.h"

#if !defined(TCA_WITH_OPENCL) || !defined(TCA_WITH_VULKAN) || !defined(TCA_WITH_CLBLAST) || !defined(TCA_TESTS_LEFT_OUT)
#error "tests/CMakeLists.txt gives this file the build's TCA_WITH_* definitions"
#endif

namespace {

bool has(const char* component) {
    int built = -1;
    EXPECT_EQ(tca_build_has(component, &built), TCA_OK) << component << ": " << tca_last_error();
    EXPECT_TRUE(built == 0 || built == 1) << component;
    return built == 1;
}

TEST(BuildConfig, ComponentsAreTheConfiguredOnes) {
    EXPECT_TRUE(has("reference"));
    EXPECT_EQ(has("opencl"), bool(TCA_WITH_OPENCL));
    EXPECT_EQ(has("vulkan"), bool(TCA_WITH_VULKAN));
    EXPECT_EQ(has("clblast"), bool(TCA_WITH_CLBLAST));
}

TEST(BuildConfig, UnknownComponentAndNullPointersAreRejected) {
    int built = 7;
    EXPECT_EQ(tca_build_has("cuda", &built), TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tca_last_error()).find("cuda"), std::string::npos) << tca_last_error();
    EXPECT_EQ(built, 7) << "a failed call writes nothing";
    EXPECT_EQ(tca_build_has(nullptr, &built), TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(tca_build_has("opencl", nullptr), TCA_ERROR_INVALID_ARGUMENT);
}

TEST(BuildConfig, DevicesComeFromBuiltBackendsOnly) {
    int n = 0;
    ASSERT_EQ(tca_device_count(&n), TCA_OK);
    ASSERT_GE(n, 1) << "the reference is always listed";
    for (int i = 0; i < n; ++i) {
        tca_device_info info{};
        info.struct_size = sizeof info;
        ASSERT_EQ(tca_device_get_info(i, &info), TCA_OK);
        EXPECT_TRUE(has(info.api)) << info.name << " is a device of a backend this build left out";
        EXPECT_EQ(std::string(info.name).rfind(std::string(info.api) == "reference" ? "cpu" : info.api, 0), 0u)
            << info.name;
    }
}

// A left-out backend's interop entry points exist (one ABI for every configuration) and say why
// they cannot work; a built one gets as far as rejecting the null handles.
TEST(BuildConfig, InteropOfALeftOutBackendIsUnsupported) {
    tca_context* ctx = nullptr;
    const tca_status cl = tca_context_create_opencl(nullptr, nullptr, nullptr, &ctx);
    const std::string cl_msg = tca_last_error();
    EXPECT_EQ(ctx, nullptr);
    if (TCA_WITH_OPENCL) {
        EXPECT_EQ(cl, TCA_ERROR_INVALID_ARGUMENT) << cl_msg;
    } else {
        EXPECT_EQ(cl, TCA_ERROR_UNSUPPORTED) << cl_msg;
        EXPECT_NE(cl_msg.find("TCA_WITH_OPENCL=OFF"), std::string::npos) << cl_msg;
    }
    tca_vulkan_handles h{};
    h.struct_size = sizeof h;
    h.api_version = (1u << 22) | (1u << 12);  // 1.1
    const tca_status vk = tca_context_create_vulkan(&h, &ctx);
    const std::string vk_msg = tca_last_error();
    EXPECT_EQ(ctx, nullptr);
    if (TCA_WITH_VULKAN) {
        EXPECT_EQ(vk, TCA_ERROR_INVALID_ARGUMENT) << vk_msg;
    } else {
        EXPECT_EQ(vk, TCA_ERROR_UNSUPPORTED) << vk_msg;
        EXPECT_NE(vk_msg.find("TCA_WITH_VULKAN=OFF"), std::string::npos) << vk_msg;
    }
}

// The test files of a left-out backend are not compiled; these say so in the test log.
#if !TCA_WITH_OPENCL
TEST(BuildConfig, OpenCLTestsSkipped) {
    GTEST_SKIP() << "built with TCA_WITH_OPENCL=OFF: no OpenCL devices; not built: " TCA_TESTS_LEFT_OUT;
}
#endif
#if !TCA_WITH_VULKAN
TEST(BuildConfig, VulkanTestsSkipped) {
    GTEST_SKIP() << "built with TCA_WITH_VULKAN=OFF: no Vulkan devices; not built: " TCA_TESTS_LEFT_OUT;
}
#endif
// Every OpenCL device's roofline: the multiply-add peak always; the GEMM reference line exactly when
// CLBlast is built (an OpenCL build without CLBlast is whole otherwise).
TEST(BuildConfig, OpenCLRooflineFollowsCLBlast) {
    if (!TCA_WITH_OPENCL) GTEST_SKIP() << "built with TCA_WITH_OPENCL=OFF";
    int n = 0;
    ASSERT_EQ(tca_device_count(&n), TCA_OK);
    int seen = 0;
    for (int i = 0; i < n; ++i) {
        tca_device_info info{};
        info.struct_size = sizeof info;
        ASSERT_EQ(tca_device_get_info(i, &info), TCA_OK);
        if (std::string(info.api) != "opencl") continue;
        tca_context* ctx = nullptr;
        ASSERT_EQ(tca_context_create(info.name, &ctx), TCA_OK) << tca_last_error();
        tca_roofline r{};
        r.struct_size = sizeof r;
        EXPECT_EQ(tca_device_roofline(ctx, &r), TCA_OK) << tca_last_error();
        EXPECT_GT(r.fma_f32_gflops, 0) << info.name;
        EXPECT_GT(r.copy_gbps, 0) << info.name;
        EXPECT_EQ(r.f32_gflops > 0, bool(TCA_WITH_CLBLAST)) << info.name;
        EXPECT_EQ(std::string(r.f32_engine).empty(), !TCA_WITH_CLBLAST) << info.name << ": " << r.f32_engine;
        tca_context_destroy(ctx);
        ++seen;
    }
    if (seen == 0) GTEST_SKIP() << "no OpenCL device";
}

#if !TCA_WITH_CLBLAST
TEST(BuildConfig, CLBlastGemmAbsent) {
    GTEST_SKIP() << "built with TCA_WITH_CLBLAST=OFF: no CLBlast GEMM reference line in roofline or bench";
}
#endif

}  // namespace
