// The roofline probes (copy, multiply-add peak and GEMM, device.h) on every OpenCL/Vulkan device
// against the CPU reference, and the C API that measures them. The copy must be bit-exact; the
// GEMM is compared by normalised MSE (f32 1e-10; f16 outputs are rounded to half, so 1e-5). Sizes
// are small and odd so every edge path of the tiles runs. The multiply-add probe is compared
// per work-item with the reference's double recurrence (relative 1e-5 for f32, 1e-2 for f16
// arithmetic), at round counts where the seeds still show (1-5 rounds) and where they are gone.
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "device/roofline.h"
#include "harness.h"
#include "tca/tca.h"

namespace tca::detail::test {
namespace {

class RooflineOps : public ::testing::TestWithParam<std::string> {
protected:
    Device& dev() { return device(GetParam()); }
};

std::vector<int32_t> random_words(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> v(n);
    for (auto& x : v) x = int32_t(rng());
    return v;
}

TEST_P(RooflineOps, CopyIsExactAndStaysInRange) {
    for (size_t words : {size_t(4), size_t(1000), size_t(1 << 18)}) {
        const auto src = random_words(words, uint32_t(words));
        auto s = make_ints(dev(), src);
        auto d = make_empty(dev(), words);
        dev().stream_copy(CopyArgs{s.view(), d.view(), words * 4});
        EXPECT_EQ(read_ints(dev(), d, words), src) << words << " words";
        check_guards(dev(), d, "copy dst");
        check_guards(dev(), s, "copy src");
    }
}

TEST_P(RooflineOps, CopyRejectsBadArguments) {
    auto s = make_ints(dev(), random_words(64, 1));
    auto d = make_empty(dev(), 64);
    try {
        dev().stream_copy(CopyArgs{s.view(), d.view(), 10});
        FAIL() << "a size that is not a multiple of 16 was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_INVALID_ARGUMENT);
    }
    try {
        dev().stream_copy(CopyArgs{s.view(), d.view(), 64 * 4 + 16 * 1024});
        FAIL() << "a copy past the buffer was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_SHAPE_MISMATCH);
    }
}

// C = A B on `d` and on the reference, same inputs; returns (device, reference) outputs as float.
std::pair<std::vector<float>, std::vector<float>> run_gemm(Device& d, DType t, int m, int n, int k) {
    const auto a = randn(size_t(m) * k, uint32_t(m * 7 + k), 1.f), b = randn(size_t(k) * n, uint32_t(n * 13 + k), 1.f);
    std::vector<float> outs[2];
    int i = 0;
    for (Device* dv : {&d, &reference()}) {
        auto pack = [&](const std::vector<float>& x) {
            if (t == DType::f32) {
                std::vector<int32_t> w(x.size());
                std::memcpy(w.data(), x.data(), x.size() * 4);
                return make_ints(*dv, w);
            }
            std::vector<int32_t> w((x.size() + 1) / 2, 0);  // two halves per word
            auto* h = reinterpret_cast<uint16_t*>(w.data());
            for (size_t j = 0; j < x.size(); ++j) h[j] = float_to_half(x[j]);
            return make_ints(*dv, w);
        };
        auto ga = pack(a), gb = pack(b);
        const size_t c_words = t == DType::f32 ? size_t(m) * n : (size_t(m) * n + 1) / 2;
        auto gc = make_empty(*dv, c_words);
        dv->gemm(GemmArgs{ga.view(), gb.view(), gc.view(), t, m, n, k});
        const auto w = read_ints(*dv, gc, c_words);
        check_guards(*dv, gc, "gemm c");
        std::vector<float> c(size_t(m) * n);
        if (t == DType::f32) std::memcpy(c.data(), w.data(), c.size() * 4);
        else
            for (size_t j = 0; j < c.size(); ++j) c[j] = half_to_float(reinterpret_cast<const uint16_t*>(w.data())[j]);
        outs[i++] = std::move(c);
    }
    return {outs[0], outs[1]};
}

TEST_P(RooflineOps, GemmMatchesReference) {
    for (DType t : {DType::f32, DType::f16}) {
        if (!dev().gemm_supported(t)) {
            auto a = make_empty(dev(), 64), b = make_empty(dev(), 64), c = make_empty(dev(), 64);
            try {
                dev().gemm(GemmArgs{a.view(), b.view(), c.view(), t, 4, 4, 4});
                ADD_FAILURE() << "gemm ran a dtype gemm_supported() denies";
            } catch (const Error& e) {
                EXPECT_EQ(e.code(), TCA_ERROR_UNSUPPORTED);
            }
            continue;
        }
        EXPECT_FALSE(dev().gemm_engine(t).empty());
        for (auto [m, n, k] : {std::tuple{1, 1, 1}, std::tuple{67, 45, 33}, std::tuple{128, 128, 64}, std::tuple{130, 70, 257}}) {
            const auto [got, want] = run_gemm(dev(), t, m, n, k);
            expect_finite(got, "gemm");
            EXPECT_LE(nmse(want, got), t == DType::f32 ? 1e-10 : 1e-5)
                << dtype_name(t) << " m=" << m << " n=" << n << " k=" << k;
        }
    }
}

std::vector<float> run_fma(Device& d, const FmaArgs& proto) {
    auto out = make_empty(d, proto.items);
    FmaArgs f = proto;
    f.out = out.view();
    d.fma_probe(f);
    check_guards(d, out, "fma out");
    const auto w = read_ints(d, out, proto.items);
    std::vector<float> v(w.size());
    std::memcpy(v.data(), w.data(), v.size() * 4);
    return v;
}

TEST_P(RooflineOps, FmaProbeMatchesReference) {
    for (DType t : {DType::f32, DType::f16}) {
        FmaArgs f;
        f.dtype = t;
        if (!dev().fma_supported(t)) {
            auto out = make_empty(dev(), 64);
            f.out = out.view(), f.items = 64, f.iters = 1;
            try {
                dev().fma_probe(f);
                ADD_FAILURE() << "the fma probe ran a dtype fma_supported() denies";
            } catch (const Error& e) {
                EXPECT_EQ(e.code(), TCA_ERROR_UNSUPPORTED);
            }
            continue;
        }
        // 1000 items: not a multiple of any work-group size, so the bounds check runs too.
        for (auto [items, iters, a, b] : {std::tuple{1000u, 1u, 0.5f, 0.25f}, std::tuple{1000u, 2u, -0.75f, 0.125f},
                                          std::tuple{1000u, 5u, 0.5f, -1.0f}, std::tuple{1000u, 300u, 0.5f, 0.25f}}) {
            f.items = items, f.iters = iters, f.a = a, f.b = b;
            const auto got = run_fma(dev(), f), want = run_fma(reference(), f);
            expect_finite(got, "fma");
            const double tol = t == DType::f32 ? 1e-5 : 1e-2;
            int bad = 0;
            for (size_t i = 0; i < got.size(); ++i)
                if (std::abs(double(got[i]) - want[i]) > tol * std::max(1.0, std::abs(double(want[i]))) && bad++ < 5)
                    ADD_FAILURE() << dtype_name(t) << " iters=" << iters << " item " << i << ": " << got[i] << " vs "
                                  << want[i];
            EXPECT_EQ(bad, 0);
        }
    }
}

TEST_P(RooflineOps, FmaProbeRejectsBadArguments) {
    auto out = make_empty(dev(), 64);
    FmaArgs f;
    f.out = out.view(), f.items = 64, f.iters = 1;
    auto expect = [&](FmaArgs x, tca_status code, const char* what) {
        try {
            dev().fma_probe(x);
            ADD_FAILURE() << what << " was accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), code) << what;
        }
    };
    FmaArgs x = f;
    x.items = 1u << 24;  // past the buffer and its guards
    expect(x, TCA_ERROR_SHAPE_MISMATCH, "an output past its buffer");
    x = f, x.iters = 0;
    expect(x, TCA_ERROR_INVALID_ARGUMENT, "zero rounds");
    x = f, x.a = 1.f;
    expect(x, TCA_ERROR_INVALID_ARGUMENT, "a non-contracting a");
    x = f, x.b = std::nanf("");
    expect(x, TCA_ERROR_INVALID_ARGUMENT, "a NaN b");
}

TEST_P(RooflineOps, MeasuredRooflineIsPositive) {
    const Roofline r = measure_roofline(dev());
    EXPECT_GT(r.copy_gbps, 0);
    EXPECT_EQ(r.f32_gflops > 0, dev().gemm_supported(DType::f32));
    EXPECT_EQ(r.f16_gflops > 0, dev().gemm_supported(DType::f16));
    EXPECT_GT(r.fma_f32_gflops, 0);
    EXPECT_EQ(r.fma_f16_gflops > 0, dev().fma_supported(DType::f16));
    EXPECT_FALSE(r.fma_engine.empty());
    EXPECT_FALSE(dev().profiling()) << "profiling must be left as it was";
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(RooflineOps);
INSTANTIATE_TEST_SUITE_P(AllDevices, RooflineOps, ::testing::ValuesIn(devices_under_test()),
                         [](const auto& info) { return safe_name(info.param); });

}  // namespace
}  // namespace tca::detail::test
