// The C API's additions for clients (the CLI and the benchmark use them like any program):
// synthetic workloads (tca_synth_workload, tca_synth_head_kind), profile inspection
// (tca_profile_params, tca_profile_head_info) and subgroup_ops in tca_device_info. Each is checked
// against what the library's internals hold, so a wrong field or a copy of the wrong tensor fails.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "device/registry.h"
#include "method/synth.h"
#include "tca/tca.h"

namespace tca::detail::test {
namespace {

tca_synth_spec spec_of(const char* kind, int hq, int hkv, int L, int d, uint64_t seed) {
    tca_synth_spec s{};
    s.struct_size = sizeof s;
    s.kind = kind, s.q_heads = hq, s.kv_heads = hkv, s.tokens = L, s.head_dim = d, s.seed = seed;
    return s;
}

TEST(CApiSynth, EqualsTheGeneratorForEveryKind) {
    for (auto kind : method::all_synth_kinds()) {
        const char* name = method::synth_kind_name(kind);
        method::SynthSpec ms;
        ms.kind = kind, ms.q_heads = 4, ms.kv_heads = 2, ms.len = 96, ms.dim = 16, ms.seed = 7;
        const auto want = method::synthesize(ms);
        const auto s = spec_of(name, 4, 2, 96, 16, 7);
        std::vector<float> q(4 * 96 * 16), k(2 * 96 * 16), v(2 * 96 * 16);
        ASSERT_EQ(tca_synth_workload(&s, q.data(), q.size(), k.data(), k.size(), v.data(), v.size()), TCA_OK)
            << name << ": " << tca_last_error();
        EXPECT_EQ(q, want.q.data) << name;
        EXPECT_EQ(k, want.k.data) << name;
        EXPECT_EQ(v, want.v.data) << name;
        for (int h = 0; h < 2; ++h) {
            const char* got = nullptr;
            ASSERT_EQ(tca_synth_head_kind(&s, h, &got), TCA_OK) << tca_last_error();
            EXPECT_STREQ(got, method::synth_kind_name(want.head_kinds[h])) << name << " head " << h;
        }
    }
}

TEST(CApiSynth, MixGivesHeadsDifferentKindsAndSeedsDifferentData) {
    const auto s = spec_of("mix", 6, 6, 32, 8, 1);
    std::vector<std::string> kinds;
    for (int h = 0; h < 6; ++h) {
        const char* k = nullptr;
        ASSERT_EQ(tca_synth_head_kind(&s, h, &k), TCA_OK);
        kinds.push_back(k);
    }
    EXPECT_EQ(kinds, (std::vector<std::string>{"local", "sink", "retrieval", "local", "bipolar", "random"}));
    const auto a = spec_of("random", 2, 1, 32, 8, 1), b = spec_of("random", 2, 1, 32, 8, 2);
    std::vector<float> qa(512), ka(256), va(256), qb(512), kb(256), vb(256), qa2(512), ka2(256), va2(256);
    ASSERT_EQ(tca_synth_workload(&a, qa.data(), 512, ka.data(), 256, va.data(), 256), TCA_OK);
    ASSERT_EQ(tca_synth_workload(&a, qa2.data(), 512, ka2.data(), 256, va2.data(), 256), TCA_OK);
    ASSERT_EQ(tca_synth_workload(&b, qb.data(), 512, kb.data(), 256, vb.data(), 256), TCA_OK);
    EXPECT_EQ(qa, qa2) << "deterministic in the spec";
    EXPECT_NE(qa, qb) << "the seed changes the data";
}

TEST(CApiSynth, AFailedCallWritesNothing) {
    auto s = spec_of("local", 4, 2, 16, 8, 1);
    std::vector<float> q(512, 42.0f), k(256, 42.0f), v(256, 42.0f);
    // v's count is wrong: q and k must stay untouched too (every check precedes every write).
    EXPECT_EQ(tca_synth_workload(&s, q.data(), 512, k.data(), 256, v.data(), 255), TCA_ERROR_SHAPE_MISMATCH);
    EXPECT_NE(std::string(tca_last_error()).find("v_count"), std::string::npos) << tca_last_error();
    s.kind = "spiky";
    EXPECT_EQ(tca_synth_workload(&s, q.data(), 512, k.data(), 256, v.data(), 256), TCA_ERROR_INVALID_ARGUMENT);
    for (auto* x : {&q, &k, &v})
        for (float f : *x) ASSERT_EQ(f, 42.0f);
    // A spec from a newer header (bigger struct_size) is read up to what this library knows.
    struct Bigger {
        tca_synth_spec s;
        int future_field;
    } big{spec_of("sink", 2, 1, 16, 8, 3), 99};
    big.s.struct_size = sizeof big;
    EXPECT_EQ(tca_synth_workload(&big.s, q.data(), 256, k.data(), 128, v.data(), 128), TCA_OK) << tca_last_error();
}

TEST(CApiProfileInfo, ParamsAndHeadsOfAFixedProfile) {
    tca_params p{};
    p.struct_size = sizeof p;
    ASSERT_EQ(tca_params_init(&p), TCA_OK);
    p.block = 32, p.window = 64, p.tau = 0.8, p.alpha = 0.25;
    tca_profile* prof = nullptr;
    ASSERT_EQ(tca_profile_fixed(&p, 2, 4, 2, 64, 0.25, &prof), TCA_OK) << tca_last_error();
    tca_params got{};
    got.struct_size = sizeof got;
    ASSERT_EQ(tca_profile_params(prof, &got), TCA_OK) << tca_last_error();
    EXPECT_EQ(got.struct_size, sizeof got);
    EXPECT_EQ(got.block, 32);
    EXPECT_EQ(got.window, 64);
    EXPECT_EQ(got.tau, 0.8);
    EXPECT_EQ(got.alpha, 0.25);
    for (int l = 0; l < 2; ++l)
        for (int h = 0; h < 2; ++h) {
            tca_profile_head info{};
            info.struct_size = sizeof info;
            ASSERT_EQ(tca_profile_head_info(prof, l, h, &info), TCA_OK) << tca_last_error();
            double ratio = 0;
            ASSERT_EQ(tca_profile_keep_ratio(prof, l, h, &ratio), TCA_OK);
            EXPECT_EQ(info.keep_ratio, ratio);
            EXPECT_NEAR(info.mean_keep / 32, 0.25, 1e-6) << "a fixed profile's expected keep per block";
            EXPECT_EQ(info.covered_mass, 0.0) << "unmeasured";
        }
    tca_profile_destroy(prof);
}

// A calibrated profile: every field equals the one the saved JSON holds (docs/profile.md).
TEST(CApiProfileInfo, HeadsOfACalibratedProfileMatchItsFile) {
    tca_context* ctx = nullptr;
    ASSERT_EQ(tca_context_create("cpu", &ctx), TCA_OK);
    const int hq = 4, hkv = 2, L = 512, d = 32;
    const auto s = spec_of("mix", hq, hkv, L, d, 5);
    std::vector<float> q(hq * L * d), k(hkv * L * d), v(hkv * L * d);
    ASSERT_EQ(tca_synth_workload(&s, q.data(), q.size(), k.data(), k.size(), v.data(), v.size()), TCA_OK);
    tca_tensor *tq = nullptr, *tk = nullptr;
    ASSERT_EQ(tca_tensor_create(ctx, TCA_F32, hq, L, d, &tq), TCA_OK);
    ASSERT_EQ(tca_tensor_create(ctx, TCA_F32, hkv, L, d, &tk), TCA_OK);
    ASSERT_EQ(tca_tensor_upload(tq, q.data(), q.size() * 4), TCA_OK);
    ASSERT_EQ(tca_tensor_upload(tk, k.data(), k.size() * 4), TCA_OK);
    tca_params p{};
    p.struct_size = sizeof p;
    tca_params_init(&p);
    p.block = 32, p.window = 128;
    const tca_tensor* qs[] = {tq};
    const tca_tensor* ks[] = {tk};
    tca_profile* prof = nullptr;
    ASSERT_EQ(tca_calibrate(ctx, &p, 1, qs, ks, &prof), TCA_OK) << tca_last_error();
    const std::string path = ::testing::TempDir() + "tca_inspect_profile.json";
    ASSERT_EQ(tca_profile_save(prof, path.c_str()), TCA_OK);
    const auto j = nlohmann::json::parse(std::ifstream(path));
    ASSERT_EQ(j["heads"].size(), size_t(hkv));
    for (const auto& hj : j["heads"]) {
        tca_profile_head info{};
        info.struct_size = sizeof info;
        ASSERT_EQ(tca_profile_head_info(prof, hj["layer"], hj["kv_head"], &info), TCA_OK) << tca_last_error();
        EXPECT_EQ(info.candidate, hj["candidate"].get<int>());
        EXPECT_EQ(info.covered_mass, hj["covered_mass"].get<double>());
        EXPECT_EQ(info.kept_tokens, hj["kept_tokens"].get<int>());
        EXPECT_EQ(info.global_tokens, hj["global_tokens"].get<int>());
        EXPECT_EQ(info.keep_ratio, hj["keep_ratio"].get<double>());
        double mean = 0;  // sum_k k p_k over the keep counts
        for (size_t i = 0; i < hj["p"].size(); ++i) mean += j["candidates"]["keep_counts"][i].get<double>() * hj["p"][i].get<double>();
        EXPECT_NEAR(info.mean_keep, mean, 1e-9);
    }
    std::remove(path.c_str());
    tca_profile_destroy(prof);
    tca_tensor_destroy(tq);
    tca_tensor_destroy(tk);
    tca_context_destroy(ctx);
}

TEST(CApiDeviceInfo, SubgroupOpsIsTheDevicesOwn) {
    const auto& all = list_devices();
    int n = 0;
    ASSERT_EQ(tca_device_count(&n), TCA_OK);
    ASSERT_EQ(size_t(n), all.size());
    for (int i = 0; i < n; ++i) {
        tca_device_info info{};
        info.struct_size = sizeof info;
        info.subgroup_ops = 7;
        ASSERT_EQ(tca_device_get_info(i, &info), TCA_OK);
        EXPECT_EQ(info.subgroup_ops, all[i].subgroup_ops ? 1 : 0) << info.name;
    }
    // A caller built against the first version's struct (without subgroup_ops) is not written past it.
    struct Old {
        tca_device_info info;
    } old{};
    const size_t first = offsetof(tca_device_info, subgroup_size) + sizeof(uint32_t);
    old.info.struct_size = first;
    old.info.subgroup_ops = 7;
    ASSERT_EQ(tca_device_get_info(0, &old.info), TCA_OK) << tca_last_error();
    EXPECT_EQ(old.info.subgroup_ops, 7) << "written past the caller's struct_size";
}

}  // namespace
}  // namespace tca::detail::test
