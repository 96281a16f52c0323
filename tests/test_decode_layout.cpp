// The coalesced decode layout (cl/decode.cl, shaders/decode.glsl, src/iface/iface_decode.h) against the
// CPU reference: GQA groups 1, 2, 4, 8 x head dims 64, 128 x f32 / f16 K/V, two segments with a
// different n2 per KV head, one key, lengths that are no multiple of the tile, several split-K
// partitions and a too small n2_max hint (the last split must still take the rest).
//   DecodeLayout.*   the device's own tuning row;
//   DecodeGpuRows.*  the GPU rows forced on whatever device runs them (on CI: the CPU drivers), with
//                    subgroups on and off and several lanes-per-row, so code only GPUs take is checked.
#include <algorithm>
#include <functional>

#include "backends/opencl/opencl_testing.h"
#include "backends/vulkan/vulkan_testing.h"
#include "device/decode_tuning.h"
#include "harness.h"

namespace tca::detail::test {
namespace {

struct Case {
    int group, hkv, dim;
    DType dtype;
    int n1;                // segment-1 rows (the window)
    std::vector<int> n2;   // per KV head; empty: no segment 2
    int probs_n;
};

std::string case_name(const Case& c) {
    std::string s = "g" + std::to_string(c.group) + "_hkv" + std::to_string(c.hkv) + "_d" + std::to_string(c.dim) + "_" +
                    dtype_name(c.dtype) + "_n1_" + std::to_string(c.n1) + "_n2";
    for (int n : c.n2) s += "_" + std::to_string(n);
    return s;
}

std::vector<Case> matrix() {
    std::vector<Case> out;
    for (int g : {1, 2, 4, 8})
        for (int d : {64, 128})
            for (DType t : {DType::f32, DType::f16}) out.push_back({g, 2, d, t, 97 + g, {300 - 7 * g, 13}, 32});
    out.push_back({1, 1, 64, DType::f32, 1, {}, 1});          // one key
    out.push_back({4, 2, 128, DType::f16, 1, {0, 1}, 1});     // one key, then two
    out.push_back({2, 2, 128, DType::f32, 3, {0, 0}, 0});     // segment 2 empty everywhere
    out.push_back({8, 1, 128, DType::f16, 129, {1000}, 64});  // long segment 2
    out.push_back({4, 2, 128, DType::bf16, 131, {300, 13}, 32});  // bf16 K/V
    out.push_back({2, 2, 64, DType::bf16, 5, {77, 200}, 4});
    return out;
}

// o (and probs) of one decode of `c` on `d`; `splits` and `n2_max` as DecodeArgs takes them.
std::pair<std::vector<float>, std::vector<float>> run(Device& d, const Case& c, int splits, int n2_max) {
    const int hq = c.group * c.hkv, cap2 = c.n2.empty() ? 0 : std::max(1, *std::max_element(c.n2.begin(), c.n2.end()) + 5);
    auto kvh = [&](std::vector<float> x) { return round_to_format(c.dtype, x); };
    auto q = make_tensor(d, DType::f32, hq, 1, c.dim, randn(size_t(hq) * c.dim, 11, 1.5f));
    auto k1 = make_tensor(d, c.dtype, c.hkv, c.n1 + 3, c.dim, kvh(randn(size_t(c.hkv) * (c.n1 + 3) * c.dim, 12)), 4);
    auto v1 = make_tensor(d, c.dtype, c.hkv, c.n1 + 3, c.dim, kvh(randn(size_t(c.hkv) * (c.n1 + 3) * c.dim, 13)));
    auto o = make_output(d, hq, 1, c.dim);
    auto probs = make_floats(d, std::vector<float>(size_t(c.hkv) * std::max(1, c.probs_n), NAN));
    DecodeArgs a;
    a.q = q.t, a.o = o.t, a.k1 = k1.t, a.v1 = v1.t, a.n1 = c.n1, a.splits = splits;
    GuardedTensor k2, v2;
    GuardedArray n2;
    if (!c.n2.empty()) {
        k2 = make_tensor(d, c.dtype, c.hkv, cap2, c.dim, kvh(randn(size_t(c.hkv) * cap2 * c.dim, 14)));
        v2 = make_tensor(d, c.dtype, c.hkv, cap2, c.dim, kvh(randn(size_t(c.hkv) * cap2 * c.dim, 15)), 4);
        n2 = make_ints(d, std::vector<int32_t>(c.n2.begin(), c.n2.end()));
        a.k2 = k2.t, a.v2 = v2.t, a.n2 = n2.view(), a.n2_max = n2_max;
    }
    if (c.probs_n) a.probs = probs.view(), a.probs_n = c.probs_n;
    d.decode(a);
    check_guards(d, o, "o");
    check_guards(d, probs, "probs");
    return {read_tensor(d, o), c.probs_n ? read_floats(d, probs, size_t(c.hkv) * c.probs_n) : std::vector<float>{}};
}

// The GPU-row variants take a cover of the matrix (every group, dim and type at least once, both
// edge cases), so that each variant builds few programs on a CPU driver.
std::vector<Case> cover() {
    std::vector<Case> out;
    for (const Case& c : matrix()) {
        const bool pick = (c.group == 1 && c.dim == 64 && c.dtype == DType::f32) ||
                          (c.group == 2 && c.dim == 128 && c.dtype == DType::f16) ||
                          (c.group == 4 && c.dim == 64 && c.dtype == DType::f16) ||
                          (c.group == 8 && c.dim == 128 && c.dtype == DType::f32) || c.n1 <= 3;
        if (pick) out.push_back(c);
    }
    return out;
}

void check_all_cases(Device& dev, const std::vector<Case>& cases) {
    for (const Case& c : cases) {
        const int live = c.n2.empty() ? 0 : *std::max_element(c.n2.begin(), c.n2.end());
        const auto expect = run(reference(), c, 0, -1);
        const double tol = c.dtype == DType::f32 ? 1e-9 : 1e-6;
        // (splits, n2_max): the device's plan; several partitions; a hint below the live rows.
        for (const auto& [splits, n2_max] : {std::pair{0, -1}, std::pair{0, live}, std::pair{5, live}, std::pair{3, 0}}) {
            const auto got = run(dev, c, splits, n2_max);
            expect_finite(got.first, "o");
            EXPECT_LE(nmse(expect.first, got.first), tol) << case_name(c) << " splits=" << splits << " n2_max=" << n2_max;
            EXPECT_LE(nmse(expect.second, got.second), tol) << case_name(c) << " probs, splits=" << splits;
        }
    }
}

// Sets a decode row on a GPU-API device for the test's duration.
class TuningScope {
public:
    TuningScope(Device& d, const DecodeTuning& t) : d_(d) {
        if (d.info().api == Api::opencl) old_ = opencl_testing::set_decode_tuning(d, t);
        else old_ = vulkan_testing::set_decode_tuning(d, t);
    }
    ~TuningScope() {
        if (d_.info().api == Api::opencl) opencl_testing::set_decode_tuning(d_, old_);
        else vulkan_testing::set_decode_tuning(d_, old_);
    }

private:
    Device& d_;
    DecodeTuning old_;
};

class DecodeLayout : public ::testing::TestWithParam<std::string> {};

TEST_P(DecodeLayout, MatchesReferenceOverGroupsDimsTypesAndSegments) { check_all_cases(device(GetParam()), matrix()); }

// The regression of "decode cost follows the store's capacity": with a huge segment-2 capacity and
// few live rows, the split-K plan follows the live rows (n2_max), not the capacity.
TEST_P(DecodeLayout, SplitsFollowLiveRowsNotCapacity) {
    Device& dev = device(GetParam());
    for (const DecodeTuning& row : {kDecodeCpuRow, kDecodeGpuRow}) {
        TuningScope scope(dev, row);
        // One KV head, so that the occupancy target alone would ask for several splits.
        auto q = make_tensor(dev, DType::f32, 1, 1, 64, randn(64, 1));
        auto k1 = make_tensor(dev, DType::f32, 1, 16, 64, randn(16 * 64, 2));
        auto k2 = make_tensor(dev, DType::f32, 1, 1 << 14, 64, std::vector<float>(size_t(64) << 14, 0.5f));
        auto n2 = make_ints(dev, std::vector<int32_t>(1, 100));
        auto o = make_output(dev, 1, 1, 64);
        DecodeArgs a;
        a.q = q.t, a.o = o.t, a.k1 = a.v1 = k1.t, a.n1 = 16, a.k2 = a.v2 = k2.t, a.n2 = n2.view();
        a.n2_max = 100;
        EXPECT_EQ(a.planned_rows(), 116);
        // 116 rows: fewer than one split's minimum, whatever the occupancy target.
        EXPECT_EQ(dev.decode_splits(a), 1) << "wg " << row.wg;
        a.n2_max = -1;
        EXPECT_GT(dev.decode_splits(a), 1) << "without the bound the plan covers the capacity";
    }
}

struct Variant {
    const char* name;
    DecodeTuning t;
};

const Variant kVariants[] = {
    {"GpuRow", kDecodeGpuRow},
    {"GpuRowNoSubgroups", [] { auto t = kDecodeGpuRow; t.subgroups = false; return t; }()},
    {"Tpr4Subgroups", [] { auto t = kDecodeGpuRow; t.tpr = 4; return t; }()},
    {"Tpr4NoSubgroupsTile32", [] { auto t = kDecodeGpuRow; t.tpr = 4, t.subgroups = false, t.tile = 32; return t; }()},
    {"Tpr32SubgroupsWg256", [] { auto t = kDecodeGpuRow; t.tpr = 32, t.wg = 256; return t; }()},
    {"Tpr1Wg32Tile32", [] { auto t = kDecodeGpuRow; t.tpr = 1, t.wg = 32, t.tile = 32; return t; }()},
    {"CpuRowNoSubgroups", [] { auto t = kDecodeCpuRow; t.subgroups = false; return t; }()},
    {"WholeRowTpr0Tile128", [] { auto t = kDecodeCpuRow; t.tpr = 0; return t; }()},
};

class DecodeGpuRows : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(DecodeGpuRows, MatchesReference) {
    Device& dev = device(std::get<0>(GetParam()));
    TuningScope scope(dev, kVariants[std::get<1>(GetParam())].t);
    check_all_cases(dev, cover());
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(DecodeLayout);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(DecodeGpuRows);
INSTANTIATE_TEST_SUITE_P(AllDevices, DecodeLayout, ::testing::ValuesIn(devices_under_test()),
                         [](const auto& info) { return safe_name(info.param); });
INSTANTIATE_TEST_SUITE_P(AllDevices, DecodeGpuRows,
                         ::testing::Combine(::testing::ValuesIn(devices_under_test()),
                                            ::testing::Range(0, int(std::size(kVariants)))),
                         [](const auto& info) {
                             return safe_name(std::get<0>(info.param)) + "_" + kVariants[std::get<1>(info.param)].name;
                         });

}  // namespace
}  // namespace tca::detail::test
