// The tuning tables' shared parts (src/device/tuning.h): device classes with the vendor fallback,
// the TCA_TUNING override parser (good and bad items), and devices opened with overrides: a bad one
// fails the creation with a clear error, a good one (the GPU rows forced onto the CPU drivers) runs
// the kernels those rows select, checked against the reference.
#include "device/backends.h"
#include "device/registry.h"
#include "device/tuning.h"
#include "harness.h"

namespace tca::detail::test {
namespace {

struct Fields {
    int tpr = 1, br = 32, stage = 0;
    std::vector<TuningField> list() {
        return {{"attn_tpr", &tpr, 1, 4, true}, {"attn_br", &br, 1, 256, false}, {"gemm_stage", &stage, 0, 1, false}};
    }
};

TEST(Tuning, GoodOverridesSetTheirFields) {
    Fields f;
    apply_tuning_overrides("", "vulkan", f.list());
    EXPECT_EQ(f.tpr, 1);
    apply_tuning_overrides("attn_tpr=4,vulkan.attn_br=64,gemm_stage=1", "vulkan", f.list());
    EXPECT_EQ(f.tpr, 4);
    EXPECT_EQ(f.br, 64);
    EXPECT_EQ(f.stage, 1);
    // Items of the other API are left to it, whatever their field names.
    apply_tuning_overrides("opencl.prefill_bq=64,vulkan.attn_tpr=2,opencl.whatever=3", "vulkan", f.list());
    EXPECT_EQ(f.tpr, 2);
    apply_tuning_overrides("attn_tpr=1,attn_tpr=4", "vulkan", f.list());
    EXPECT_EQ(f.tpr, 4) << "the last item wins";
}

TEST(Tuning, BadOverridesAreClearErrorsAndChangeNothing) {
    const char* bad[][2] = {
        {"attn_tpr", "expected field=value"},
        {"attn_tpr=", "not a non-negative decimal integer"},
        {"attn_tpr=two", "not a non-negative decimal integer"},
        {"attn_tpr=-1", "not a non-negative decimal integer"},
        {"attn_tpr= 2", "not a non-negative decimal integer"},
        {"attn_tpr=3", "power of two"},
        {"attn_tpr=8", "must be in [1, 4]"},
        {"attn_br=0", "must be in [1, 256]"},
        {"attn_br=99999999999", "not a non-negative decimal integer"},
        {"prefill_bq=64", "no tuning field 'prefill_bq' in the vulkan backend (fields: attn_tpr, attn_br, gemm_stage)"},
        {"vulkan.nope=1", "no tuning field 'nope'"},
        {"cuda.attn_tpr=2", "unknown API 'cuda'"},
        {"attn_tpr=2,", "empty item"},
        {",attn_tpr=2", "empty item"},
    };
    for (const auto& b : bad) {
        Fields f;
        try {
            apply_tuning_overrides(b[0], "vulkan", f.list());
            ADD_FAILURE() << "no error for '" << b[0] << "'";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), TCA_ERROR_INVALID_ARGUMENT) << b[0];
            const std::string msg = e.what();
            EXPECT_NE(msg.find("TCA_TUNING"), std::string::npos) << msg;
            EXPECT_NE(msg.find(b[1]), std::string::npos) << b[0] << ": " << msg;
        }
        if (std::string(b[0]).rfind("attn_tpr=2", 0) != 0) {
            EXPECT_EQ(f.tpr, 1) << b[0];
        }
    }
}

TEST(Tuning, DeviceClassesFallBackToTheGenericGpu) {
    DeviceInfo d;
    d.type = TCA_DEVICE_CPU_DRIVER;
    d.vendor = "NVIDIA";
    EXPECT_EQ(classify_device(d), DeviceClass::cpu_driver) << "the type decides before the vendor";
    d.type = TCA_DEVICE_DISCRETE_GPU;
    EXPECT_EQ(classify_device(d), DeviceClass::nvidia);
    d.vendor = "NVIDIA Corporation";
    EXPECT_EQ(classify_device(d), DeviceClass::nvidia);
    d.vendor = "Advanced Micro Devices, Inc.";
    EXPECT_EQ(classify_device(d), DeviceClass::amd);
    d.type = TCA_DEVICE_INTEGRATED_GPU;
    d.vendor = "Intel(R) Corporation";
    EXPECT_EQ(classify_device(d), DeviceClass::intel);
    d.vendor = "Qualcomm";
    EXPECT_EQ(classify_device(d), DeviceClass::gpu);
    d.type = TCA_DEVICE_OTHER;
    EXPECT_EQ(classify_device(d), DeviceClass::other);
    EXPECT_STREQ(device_class_name(DeviceClass::gpu), "gpu");
}

std::unique_ptr<Device> open_with(const std::string& name, const std::string& tuning) {
    BackendOptions o = BackendOptions::from_environment();
    o.tuning = tuning;
    return open_device(name, o);  // through the registry: builds without a backend link fine
}

class TunedDevice : public ::testing::TestWithParam<std::string> {};

TEST_P(TunedDevice, BadOverrideFailsTheCreation) {
    try {
        open_with(GetParam(), "vulkan.attn_tpr=3,opencl.prefill_bq=3");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_INVALID_ARGUMENT);
        EXPECT_NE(std::string(e.what()).find("power of two"), std::string::npos) << e.what();
    }
}

// The GPU rows (4 threads per query row on Vulkan, GPU tile sizes on OpenCL) forced onto whatever
// device this is: prefill (dense and with GQA) still matches the reference.
TEST_P(TunedDevice, GpuRowsMatchTheReference) {
    auto dev = open_with(GetParam(),
                         "vulkan.attn_tpr=4,vulkan.attn_br=32,opencl.prefill_bq=32,opencl.prefill_bk=16,"
                         "opencl.score_wg=128,opencl.reduce_wg=128,opencl.rank_wg=128");
    const int hq = 4, hkv = 2, len = 77, dim = 64;
    const auto q = randn(size_t(hq) * len * dim, 11), k = randn(size_t(hkv) * len * dim, 12),
               v = randn(size_t(hkv) * len * dim, 13);
    auto run = [&](Device& d) {
        auto tq = make_tensor(d, DType::f32, hq, len, dim, q);
        auto tk = make_tensor(d, DType::f32, hkv, len, dim, k);
        auto tv = make_tensor(d, DType::f32, hkv, len, dim, v);
        auto to = make_output(d, hq, len, dim);
        PrefillArgs a;
        a.q = tq.t, a.k = tk.t, a.v = tv.t, a.o = to.t;
        d.prefill(a);
        check_guards(d, to, "o");
        return read_tensor(d, to);
    };
    const auto ref = run(reference());
    const auto got = run(*dev);
    expect_finite(got, "o");
    EXPECT_LT(nmse(ref, got), 1e-9);
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TunedDevice);
INSTANTIATE_TEST_SUITE_P(Devices, TunedDevice, ::testing::ValuesIn(devices_under_test()),
                         [](const auto& info) { return safe_name(info.param); });

}  // namespace
}  // namespace tca::detail::test
