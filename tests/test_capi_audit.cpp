// Every C API entry point against bad input, table-driven: null handles, a handle of the wrong kind,
// wrong sizes (struct_size, byte counts, buffers), mismatched shapes and a handle from another
// context, where each applies. Each row must fail with its status and a message naming the problem.
// A last test reads tca.h and fails when a declared function has no row, so new entry points come
// with their bad-input cases.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tca/tca.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace {

struct Case {
    const char* function;
    const char* what;
    std::function<tca_status()> call;
    tca_status expect;
    const char* needle;
};

// Functions that take no input a caller could get wrong.
const std::set<std::string> kNoInput = {"tca_version", "tca_version_string", "tca_last_error", "tca_build_revision"};

class CApiAudit : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_EQ(tca_context_create("cpu", &ctx), TCA_OK);
        ASSERT_EQ(tca_context_create("cpu", &other), TCA_OK);
        auto make = [&](tca_context* c, tca_dtype dt, int h, int l, int d) {
            tca_tensor* t = nullptr;
            EXPECT_EQ(tca_tensor_create(c, dt, h, l, d, &t), TCA_OK);
            std::vector<float> zero(size_t(h) * l * d, 0.01f);
            if (dt == TCA_F32) EXPECT_EQ(tca_tensor_upload(t, zero.data(), zero.size() * 4), TCA_OK);
            tensors.push_back(t);
            return t;
        };
        q = make(ctx, TCA_F32, 4, 16, 64), k = make(ctx, TCA_F32, 2, 16, 64), v = make(ctx, TCA_F32, 2, 16, 64);
        o = make(ctx, TCA_F32, 4, 16, 64), q1 = make(ctx, TCA_F32, 4, 1, 64), k1 = make(ctx, TCA_F32, 2, 1, 64);
        o1 = make(ctx, TCA_F32, 4, 1, 64), k3 = make(ctx, TCA_F32, 3, 16, 64), k16 = make(ctx, TCA_F16, 2, 16, 64);
        qd32 = make(ctx, TCA_F32, 4, 16, 32);
        foreign = make(other, TCA_F32, 2, 16, 64);
        tca_params p{sizeof(tca_params)};
        tca_params_init(&p);
        p.window = 4, p.block = 4;
        ASSERT_EQ(tca_profile_fixed(&p, 1, 4, 2, 64, 0.5, &profile), TCA_OK);
        ASSERT_EQ(tca_cache_create(ctx, profile, 0, 4, 2, 64, TCA_F32, 32, &fresh), TCA_OK);
        ASSERT_EQ(tca_cache_create(ctx, nullptr, 0, 4, 2, 64, TCA_F32, 32, &primed), TCA_OK);
        ASSERT_EQ(tca_cache_prefill(primed, q, k, v, o), TCA_OK) << tca_last_error();
    }
    void TearDown() override {
        tca_cache_destroy(fresh);
        tca_cache_destroy(primed);
        tca_profile_destroy(profile);
        for (auto* t : tensors) tca_tensor_destroy(t);
        tca_context_destroy(ctx);
        tca_context_destroy(other);
    }

    std::vector<Case> cases();

    tca_context *ctx = nullptr, *other = nullptr;
    tca_tensor *q, *k, *v, *o, *q1, *k1, *o1, *k3, *k16, *qd32, *foreign;
    std::vector<tca_tensor*> tensors;
    tca_profile* profile = nullptr;
    tca_cache *fresh = nullptr, *primed = nullptr;
};

// Handles of the wrong kind: each starts with a magic number that tells them apart.
template <class To, class From>
To* as(From* p) {
    return reinterpret_cast<To*>(p);
}

std::vector<Case> CApiAudit::cases() {
    constexpr auto INV = TCA_ERROR_INVALID_ARGUMENT;
    constexpr auto SHAPE = TCA_ERROR_SHAPE_MISMATCH;
    static char buf[64];
    static int n;
    static double ratio;
    static tca_device_info info;
    static tca_call_stats stats;
    static tca_params params;
    static tca_tensor* tout;
    static tca_context* cout;
    static tca_profile* pout;
    static tca_cache* kout;
    static float host[4 * 16 * 64];
    static uint64_t bytes;
    info = tca_device_info{sizeof(tca_device_info)};
    stats = tca_call_stats{sizeof(tca_call_stats)};
    params = tca_params{sizeof(tca_params)};
    tca_params_init(&params);
    tca_device_info small_info{4};
    tca_call_stats small_stats{4};
    tca_params small_params{4};
    const tca_tensor* qs[] = {q};
    const tca_tensor* ks[] = {k};
    const tca_tensor* null_ks[] = {nullptr};
    const tca_tensor* foreign_ks[] = {foreign};
    const tca_tensor* qd32s[] = {qd32};
    const tca_tensor* k16s[] = {k16};
    const tca_tensor_desc desc{sizeof(tca_tensor_desc), TCA_F32, 1, 1, 64, 0, 0};
    const std::string bad_json = ::testing::TempDir() + "tca_audit_bad.json";
    std::ofstream(bad_json) << "{ \"version\": 1, \"oops\": ";
    auto P = [](auto f) { return std::function<tca_status()>(f); };
    // A backend left out at configure time answers its interop calls with TCA_ERROR_UNSUPPORTED
    // once the arguments it can check without the backend are fine (test_build_config.cpp).
    int cl_built = 0, vk_built = 0;
    tca_build_has("opencl", &cl_built);
    tca_build_has("vulkan", &vk_built);
    const tca_status CL_INV = cl_built ? INV : TCA_ERROR_UNSUPPORTED, VK_INV = vk_built ? INV : TCA_ERROR_UNSUPPORTED;
    static tca_synth_spec synth;
    synth = tca_synth_spec{sizeof(tca_synth_spec), "mix", 4, 2, 16, 64, 1};
    static tca_profile_head head;
    head = tca_profile_head{sizeof(tca_profile_head)};
    return {
        {"tca_status_name", "unknown code", P([] { return std::string(tca_status_name(999)) == "TCA_ERROR_UNKNOWN"
                                                        ? TCA_ERROR_INVALID_ARGUMENT : TCA_OK; }), INV, ""},
        {"tca_device_count", "null count", P([] { return tca_device_count(nullptr); }), INV, "null"},
        {"tca_device_get_info", "index -1", P([] { return tca_device_get_info(-1, &info); }), INV, "out of range"},
        {"tca_device_get_info", "index past the end", P([] { return tca_device_get_info(1000, &info); }), INV, "out of range"},
        {"tca_device_get_info", "null info", P([] { return tca_device_get_info(0, nullptr); }), INV, "null"},
        {"tca_device_get_info", "struct_size too small", P([=]() mutable { return tca_device_get_info(0, &small_info); }), INV, "struct_size"},
        {"tca_default_device_name", "null buffer", P([] { return tca_default_device_name(nullptr, 8); }), INV, "null"},
        {"tca_default_device_name", "size 0", P([] { return tca_default_device_name(buf, 0); }), INV, "empty"},
        {"tca_default_device_name", "buffer too small", P([] { return tca_default_device_name(buf, 2); }), INV, "too small"},
        {"tca_context_create", "null out", P([] { return tca_context_create("cpu", nullptr); }), INV, "null"},
        {"tca_context_create", "unknown device", P([] { return tca_context_create("nodevice:3", &cout); }), TCA_ERROR_DEVICE_NOT_FOUND, "nodevice:3"},
        {"tca_context_destroy", "a tensor handle", P([=] { return tca_context_destroy(as<tca_context>(q)); }), INV, "invalid context"},
        {"tca_context_device_info", "null context", P([] { return tca_context_device_info(nullptr, &info); }), INV, "invalid context"},
        {"tca_context_device_info", "null info", P([=] { return tca_context_device_info(ctx, nullptr); }), INV, "null"},
        {"tca_context_device_info", "struct_size too small", P([=]() mutable { return tca_context_device_info(ctx, &small_info); }), INV, "struct_size"},
        {"tca_context_set_profiling", "null context", P([] { return tca_context_set_profiling(nullptr, 1); }), INV, "invalid context"},
        {"tca_context_set_profiling", "a profile handle", P([=] { return tca_context_set_profiling(as<tca_context>(profile), 1); }), INV, "invalid context"},
        {"tca_context_last_stats", "null context", P([] { return tca_context_last_stats(nullptr, &stats); }), INV, "invalid context"},
        {"tca_context_last_stats", "null stats", P([=] { return tca_context_last_stats(ctx, nullptr); }), INV, "null"},
        {"tca_context_last_stats", "struct_size too small", P([=]() mutable { return tca_context_last_stats(ctx, &small_stats); }), INV, "struct_size"},
        {"tca_context_counters", "null context", P([] { tca_counters c{}; c.struct_size = sizeof(tca_counters); return tca_context_counters(nullptr, &c); }), INV, "invalid context"},
        {"tca_context_counters", "null counters", P([=] { return tca_context_counters(ctx, nullptr); }), INV, "null"},
        {"tca_context_counters", "struct_size too small", P([=] { tca_counters c{}; c.struct_size = 4; return tca_context_counters(ctx, &c); }), INV, "struct_size"},
        {"tca_context_opencl_wait_for", "null context", P([] { return tca_context_opencl_wait_for(nullptr, 0, nullptr); }), INV, "invalid context"},
        {"tca_context_opencl_wait_for", "not an OpenCL context", P([=] { return tca_context_opencl_wait_for(ctx, 0, nullptr); }), CL_INV, ""},
        {"tca_context_opencl_last_event", "null context", P([] { struct _cl_event* e = nullptr; return tca_context_opencl_last_event(nullptr, &e); }), INV, "invalid context"},
        {"tca_context_opencl_last_event", "null event", P([=] { return tca_context_opencl_last_event(ctx, nullptr); }), INV, "null"},
        {"tca_context_finish", "null context", P([] { return tca_context_finish(nullptr); }), INV, "invalid context"},
        {"tca_tensor_create", "null context", P([] { return tca_tensor_create(nullptr, TCA_F32, 1, 1, 64, &tout); }), INV, "invalid context"},
        {"tca_tensor_create", "null out", P([=] { return tca_tensor_create(ctx, TCA_F32, 1, 1, 64, nullptr); }), INV, "null"},
        {"tca_tensor_create", "unknown dtype", P([=] { return tca_tensor_create(ctx, 3, 1, 1, 64, &tout); }), INV, "dtype"},
        {"tca_tensor_create", "empty shape", P([=] { return tca_tensor_create(ctx, TCA_F32, 1, 0, 64, &tout); }), INV, "empty"},
        {"tca_tensor_destroy", "a context handle", P([=] { return tca_tensor_destroy(as<tca_tensor>(ctx)); }), INV, "invalid tensor"},
        {"tca_tensor_shape", "null tensor", P([] { return tca_tensor_shape(nullptr, nullptr, &n, nullptr, nullptr); }), INV, "invalid tensor"},
        {"tca_tensor_shape", "a cache handle", P([=] { return tca_tensor_shape(as<tca_tensor>(fresh), nullptr, &n, nullptr, nullptr); }), INV, "invalid tensor"},
        {"tca_tensor_upload", "null tensor", P([] { return tca_tensor_upload(nullptr, host, 256); }), INV, "invalid tensor"},
        {"tca_tensor_upload", "null host", P([=] { return tca_tensor_upload(q1, nullptr, 1024); }), INV, "null"},
        {"tca_tensor_upload", "wrong byte count", P([=] { return tca_tensor_upload(q1, host, 1020); }), SHAPE, "bytes"},
        {"tca_tensor_download", "null tensor", P([] { return tca_tensor_download(nullptr, host, 256); }), INV, "invalid tensor"},
        {"tca_tensor_download", "null host", P([=] { return tca_tensor_download(q1, nullptr, 1024); }), INV, "null"},
        {"tca_tensor_download", "wrong byte count", P([=] { return tca_tensor_download(q1, host, 2048); }), SHAPE, "bytes"},
        {"tca_dense_prefill", "null context", P([=] { return tca_dense_prefill(nullptr, q, k, v, o, 0); }), INV, "invalid context"},
        {"tca_dense_prefill", "null v", P([=] { return tca_dense_prefill(ctx, q, k, nullptr, o, 0); }), INV, "v: invalid tensor"},
        {"tca_dense_prefill", "null o", P([=] { return tca_dense_prefill(ctx, q, k, v, nullptr, 0); }), INV, "o: invalid tensor"},
        {"tca_dense_prefill", "k of 3 heads for 4 q heads", P([=] { return tca_dense_prefill(ctx, q, k3, k3, o, 0); }), SHAPE, "not a multiple"},
        {"tca_dense_prefill", "head dims differ", P([=] { return tca_dense_prefill(ctx, qd32, k, v, qd32, 0); }), SHAPE, "head dims differ"},
        {"tca_dense_prefill", "k from another context", P([=] { return tca_dense_prefill(ctx, q, foreign, v, o, 0); }), INV, "another context"},
        {"tca_dense_prefill_chunk", "null context", P([=] { return tca_dense_prefill_chunk(nullptr, q1, k, v, o1, 0, 0); }), INV, "invalid context"},
        {"tca_dense_prefill_chunk", "null q", P([=] { return tca_dense_prefill_chunk(ctx, nullptr, k, v, o1, 0, 0); }), INV, "q: invalid tensor"},
        {"tca_dense_prefill_chunk", "negative q_pos0", P([=] { return tca_dense_prefill_chunk(ctx, q1, k, v, o1, -1, 0); }), SHAPE, "positions"},
        {"tca_dense_prefill_chunk", "queries past the keys", P([=] { return tca_dense_prefill_chunk(ctx, q1, k, v, o1, 16, 0); }), SHAPE, "positions"},
        {"tca_dense_prefill_chunk", "o shape differs from q", P([=] { return tca_dense_prefill_chunk(ctx, q1, k, v, o, 0, 0); }), SHAPE, "does not match"},
        {"tca_dense_prefill_chunk", "v from another context", P([=] { return tca_dense_prefill_chunk(ctx, q1, k, foreign, o1, 0, 0); }), INV, "another context"},
        {"tca_dense_decode", "null context", P([=] { return tca_dense_decode(nullptr, q1, k, v, 4, o1, 0); }), INV, "invalid context"},
        {"tca_dense_decode", "null k", P([=] { return tca_dense_decode(ctx, q1, nullptr, v, 4, o1, 0); }), INV, "k: invalid tensor"},
        {"tca_dense_decode", "n_keys 0", P([=] { return tca_dense_decode(ctx, q1, k, v, 0, o1, 0); }), SHAPE, "n_keys"},
        {"tca_dense_decode", "n_keys past k", P([=] { return tca_dense_decode(ctx, q1, k, v, 17, o1, 0); }), SHAPE, "outside"},
        {"tca_dense_decode", "k and v differ", P([=] { return tca_dense_decode(ctx, q1, k, k1, 1, o1, 0); }), SHAPE, "differ"},
        {"tca_dense_decode", "o from another context", P([=] { return tca_dense_decode(ctx, q1, k, v, 4, foreign, 0); }), INV, "another context"},
        {"tca_params_init", "null params", P([] { return tca_params_init(nullptr); }), INV, "null"},
        {"tca_params_init", "struct_size too small", P([=]() mutable { return tca_params_init(&small_params); }), INV, "struct_size"},
        {"tca_profile_load", "null path", P([] { return tca_profile_load(nullptr, &pout); }), INV, "null"},
        {"tca_profile_load", "null out", P([] { return tca_profile_load("x.json", nullptr); }), INV, "null"},
        {"tca_profile_load", "missing file", P([] { return tca_profile_load("/nonexistent/p.json", &pout); }), TCA_ERROR_IO, "/nonexistent/p.json"},
        {"tca_profile_load", "malformed file", P([=] { return tca_profile_load(bad_json.c_str(), &pout); }), TCA_ERROR_IO, "tca_audit_bad.json"},
        {"tca_profile_save", "null profile", P([] { return tca_profile_save(nullptr, "/tmp/x.json"); }), INV, "invalid profile"},
        {"tca_profile_save", "a context handle", P([=] { return tca_profile_save(as<tca_profile>(ctx), "/tmp/x.json"); }), INV, "invalid profile"},
        {"tca_profile_save", "null path", P([=] { return tca_profile_save(profile, nullptr); }), INV, "null"},
        {"tca_profile_save", "unwritable path", P([=] { return tca_profile_save(profile, "/nonexistent/dir/p.json"); }), TCA_ERROR_IO, "/nonexistent/dir"},
        {"tca_profile_destroy", "a tensor handle", P([=] { return tca_profile_destroy(as<tca_profile>(q)); }), INV, "invalid profile"},
        {"tca_profile_shape", "null profile", P([] { return tca_profile_shape(nullptr, &n, &n, &n, &n); }), INV, "invalid profile"},
        {"tca_profile_keep_ratio", "null profile", P([] { return tca_profile_keep_ratio(nullptr, 0, 0, &ratio); }), INV, "invalid profile"},
        {"tca_profile_keep_ratio", "null ratio", P([=] { return tca_profile_keep_ratio(profile, 0, 0, nullptr); }), INV, "null"},
        {"tca_profile_keep_ratio", "layer out of range", P([=] { return tca_profile_keep_ratio(profile, 1, 0, &ratio); }), INV, "out of range"},
        {"tca_profile_keep_ratio", "kv_head out of range", P([=] { return tca_profile_keep_ratio(profile, 0, 2, &ratio); }), INV, "out of range"},
        {"tca_profile_slice", "null profile", P([] { return tca_profile_slice(nullptr, 0, 1, &pout); }), INV, "invalid profile"},
        {"tca_profile_slice", "null out", P([=] { return tca_profile_slice(profile, 0, 1, nullptr); }), INV, "null"},
        {"tca_profile_slice", "empty range", P([=] { return tca_profile_slice(profile, 0, 0, &pout); }), INV, "range"},
        {"tca_profile_slice", "negative first head", P([=] { return tca_profile_slice(profile, -1, 1, &pout); }), INV, "range"},
        {"tca_profile_slice", "past the last head", P([=] { return tca_profile_slice(profile, 1, 2, &pout); }), INV, "range"},
        {"tca_profile_slice", "end overflows int", P([=] { return tca_profile_slice(profile, 1, 2147483647, &pout); }), INV, "range"},
        {"tca_profile_fixed", "null out", P([] { return tca_profile_fixed(nullptr, 1, 4, 2, 64, 0.5, nullptr); }), INV, "null"},
        {"tca_profile_fixed", "params struct_size too small", P([=]() mutable { return tca_profile_fixed(&small_params, 1, 4, 2, 64, 0.5, &pout); }), INV, "struct_size"},
        {"tca_profile_fixed", "q heads not a multiple of kv heads", P([] { return tca_profile_fixed(nullptr, 1, 4, 3, 64, 0.5, &pout); }), INV, "multiple"},
        {"tca_profile_fixed", "keep ratio above 1", P([] { return tca_profile_fixed(nullptr, 1, 4, 2, 64, 1.5, &pout); }), INV, "keep"},
        {"tca_profile_fixed", "no layers", P([] { return tca_profile_fixed(nullptr, 0, 4, 2, 64, 0.5, &pout); }), INV, "layers"},
        {"tca_calibrate", "null context", P([=] { return tca_calibrate(nullptr, nullptr, 1, qs, ks, &pout); }), INV, "invalid context"},
        {"tca_calibrate", "null out", P([=] { return tca_calibrate(ctx, nullptr, 1, qs, ks, nullptr); }), INV, "null"},
        {"tca_calibrate", "no layers", P([=] { return tca_calibrate(ctx, nullptr, 0, qs, ks, &pout); }), INV, "at least one layer"},
        {"tca_calibrate", "null k array", P([=] { return tca_calibrate(ctx, nullptr, 1, qs, nullptr, &pout); }), INV, "at least one layer"},
        {"tca_calibrate", "null k tensor", P([=] { return tca_calibrate(ctx, nullptr, 1, qs, null_ks, &pout); }), INV, "k: invalid tensor"},
        {"tca_calibrate", "k from another context", P([=] { return tca_calibrate(ctx, nullptr, 1, qs, foreign_ks, &pout); }), INV, "another context"},
        {"tca_calibrate", "f16 k", P([=] { return tca_calibrate(ctx, nullptr, 1, qs, k16s, &pout); }), INV, "f32"},
        {"tca_calibrate", "q and k head dims differ", P([=] { return tca_calibrate(ctx, &params, 1, qd32s, ks, &pout); }), SHAPE, ""},
        {"tca_calibrate", "sequence not longer than the window", P([=] { return tca_calibrate(ctx, nullptr, 1, qs, ks, &pout); }), INV, "window"},
        {"tca_calibrate", "params struct_size too small", P([=]() mutable { return tca_calibrate(ctx, &small_params, 1, qs, ks, &pout); }), INV, "struct_size"},
        {"tca_cache_create", "null context", P([=] { return tca_cache_create(nullptr, profile, 0, 4, 2, 64, TCA_F32, 32, &kout); }), INV, "invalid context"},
        {"tca_cache_create", "null out", P([=] { return tca_cache_create(ctx, profile, 0, 4, 2, 64, TCA_F32, 32, nullptr); }), INV, "null"},
        {"tca_cache_create", "zero max_tokens", P([=] { return tca_cache_create(ctx, profile, 0, 4, 2, 64, TCA_F32, 0, &kout); }), INV, "positive"},
        {"tca_cache_create", "q heads not a multiple of kv heads", P([=] { return tca_cache_create(ctx, nullptr, 0, 4, 3, 64, TCA_F32, 32, &kout); }), SHAPE, "not a multiple"},
        {"tca_cache_create", "shape differs from the profile's", P([=] { return tca_cache_create(ctx, profile, 0, 8, 2, 64, TCA_F32, 32, &kout); }), SHAPE, ""},
        {"tca_cache_create", "layer outside the profile", P([=] { return tca_cache_create(ctx, profile, 1, 4, 2, 64, TCA_F32, 32, &kout); }), INV, "layer"},
        {"tca_cache_create", "unknown dtype", P([=] { return tca_cache_create(ctx, profile, 0, 4, 2, 64, 9, 32, &kout); }), INV, "dtype"},
        {"tca_cache_create", "a tensor as profile", P([=] { return tca_cache_create(ctx, as<tca_profile>(q), 0, 4, 2, 64, TCA_F32, 32, &kout); }), INV, "invalid profile"},
        {"tca_cache_destroy", "a profile handle", P([=] { return tca_cache_destroy(as<tca_cache>(profile)); }), INV, "invalid cache"},
        {"tca_cache_reset", "null cache", P([] { return tca_cache_reset(nullptr); }), INV, "invalid cache"},
        {"tca_cache_prefill", "null cache", P([=] { return tca_cache_prefill(nullptr, q, k, v, o); }), INV, "invalid cache"},
        {"tca_cache_prefill", "null o", P([=] { return tca_cache_prefill(fresh, q, k, v, nullptr); }), INV, "o: invalid tensor"},
        {"tca_cache_prefill", "k of another shape", P([=] { return tca_cache_prefill(fresh, q, k3, k3, o); }), SHAPE, ""},
        {"tca_cache_prefill", "v from another context", P([=] { return tca_cache_prefill(fresh, q, k, foreign, o); }), INV, "another context"},
        {"tca_cache_prefill", "a second prompt without reset", P([=] { return tca_cache_prefill(primed, q, k, v, o); }), INV, "reset"},
        {"tca_cache_decode", "null cache", P([=] { return tca_cache_decode(nullptr, q1, k1, k1, o1); }), INV, "invalid cache"},
        {"tca_cache_decode", "before prefill", P([=] { return tca_cache_decode(fresh, q1, k1, k1, o1); }), INV, "before prefill"},
        {"tca_cache_decode", "more than one token", P([=] { return tca_cache_decode(primed, q, k, v, o); }), SHAPE, ""},
        {"tca_cache_decode", "null q", P([=] { return tca_cache_decode(primed, nullptr, k1, k1, o1); }), INV, "q: invalid tensor"},
        {"tca_cache_decode", "k from another context", P([=] { return tca_cache_decode(primed, q1, foreign, k1, o1); }), INV, "another context"},
        {"tca_cache_options_init", "null options", P([] { return tca_cache_options_init(nullptr); }), INV, "null"},
        {"tca_cache_options_init", "struct_size too small", P([] { tca_cache_options o{4}; return tca_cache_options_init(&o); }), INV, "struct_size"},
        {"tca_cache_create_ex", "null context", P([=] { return tca_cache_create_ex(nullptr, profile, 0, 4, 2, 64, TCA_F32, 32, nullptr, &kout); }), INV, "invalid context"},
        {"tca_cache_create_ex", "options struct_size 0", P([=] { tca_cache_options o{0, TCA_CACHE_CHUNKED, 8}; return tca_cache_create_ex(ctx, profile, 0, 4, 2, 64, TCA_F32, 32, &o, &kout); }), INV, "struct_size"},
        {"tca_cache_create_ex", "unknown mode", P([=] { tca_cache_options o{sizeof o, 7, 8}; return tca_cache_create_ex(ctx, profile, 0, 4, 2, 64, TCA_F32, 32, &o, &kout); }), INV, "mode"},
        {"tca_cache_create_ex", "chunked, max_chunk 0", P([=] { tca_cache_options o{sizeof o, TCA_CACHE_CHUNKED, 0}; return tca_cache_create_ex(ctx, profile, 0, 4, 2, 64, TCA_F32, 32, &o, &kout); }), INV, "max_chunk"},
        {"tca_cache_create_ex", "chunked, max_chunk negative", P([=] { tca_cache_options o{sizeof o, TCA_CACHE_CHUNKED, -3}; return tca_cache_create_ex(ctx, nullptr, 0, 4, 2, 64, TCA_F32, 32, &o, &kout); }), INV, "max_chunk"},
        {"tca_cache_create_ex", "zero max_tokens", P([=] { tca_cache_options o{sizeof o, TCA_CACHE_CHUNKED, 8}; return tca_cache_create_ex(ctx, profile, 0, 4, 2, 64, TCA_F32, 0, &o, &kout); }), INV, "positive"},
        {"tca_cache_create_ex", "pool of the wrong kind", P([=] { tca_cache_options o{sizeof o, 0, 0, as<tca_cache_pool>(ctx)}; return tca_cache_create_ex(ctx, profile, 0, 4, 2, 64, TCA_F32, 32, &o, &kout); }), INV, "invalid pool"},
        {"tca_cache_decode_batch", "null caches", P([=] { return tca_cache_decode_batch(nullptr, 1, q1, k1, k1, o1); }), INV, "n >= 1"},
        {"tca_cache_decode_batch", "n = 0", P([=] { tca_cache* c[1] = {primed}; return tca_cache_decode_batch(c, 0, q1, k1, k1, o1); }), INV, "n >= 1"},
        {"tca_cache_decode_batch", "a null cache", P([=] { tca_cache* c[2] = {primed, nullptr}; return tca_cache_decode_batch(c, 2, q1, k1, k1, o1); }), INV, "caches[1] is null"},
        {"tca_cache_decode_batch", "a repeated cache", P([=] { tca_cache* c[2] = {primed, primed}; return tca_cache_decode_batch(c, 2, q1, k1, k1, o1); }), INV, "repeats"},
        {"tca_cache_decode_batch", "a context handle", P([=] { tca_cache* c[1] = {as<tca_cache>(ctx)}; return tca_cache_decode_batch(c, 1, q1, k1, k1, o1); }), INV, "invalid cache"},
        {"tca_cache_decode_batch", "a cache not prefilled", P([=] { tca_cache* c[2] = {primed, fresh}; return tca_cache_decode_batch(c, 2, q1, k1, k1, o1); }), INV, "before prefill"},
        {"tca_cache_decode_batch", "q of one sequence for two", P([=] { tca_cache* c[1] = {primed}; return tca_cache_decode_batch(c, 1, q, k1, k1, o1); }), SHAPE, "q and o must be"},
        {"tca_cache_decode_batch", "k from another context", P([=] { tca_cache* c[1] = {primed}; return tca_cache_decode_batch(c, 1, q1, foreign, k1, o1); }), INV, "another context"},
        {"tca_cache_pool_create", "null context", P([] { tca_cache_pool* p; return tca_cache_pool_create(nullptr, 1024, &p); }), INV, "invalid context"},
        {"tca_cache_pool_create", "null out", P([=] { return tca_cache_pool_create(ctx, 1024, nullptr); }), INV, "null"},
        {"tca_cache_pool_create", "0 bytes", P([=] { tca_cache_pool* p; return tca_cache_pool_create(ctx, 0, &p); }), INV, "bytes > 0"},
        {"tca_cache_pool_create", "past the largest buffer", P([=] { tca_cache_pool* p; return tca_cache_pool_create(ctx, UINT64_MAX, &p); }), TCA_ERROR_OUT_OF_MEMORY, "largest buffer"},
        {"tca_cache_pool_destroy", "a context handle", P([=] { return tca_cache_pool_destroy(as<tca_cache_pool>(ctx)); }), INV, "invalid cache pool"},
        {"tca_cache_pool_usage", "null pool", P([] { return tca_cache_pool_usage(nullptr, &bytes, &bytes); }), INV, "invalid cache pool"},
        {"tca_cache_pool_usage", "a cache handle", P([=] { return tca_cache_pool_usage(as<tca_cache_pool>(fresh), &bytes, &bytes); }), INV, "invalid cache pool"},
        {"tca_cache_peak_size", "null cache", P([] { return tca_cache_peak_size(nullptr, &bytes, nullptr); }), INV, "invalid cache"},
        {"tca_cache_peak_size", "a context handle", P([=] { return tca_cache_peak_size(as<tca_cache>(ctx), &bytes, nullptr); }), INV, "invalid cache"},
        {"tca_cache_size", "null cache", P([] { return tca_cache_size(nullptr, &bytes, nullptr, nullptr); }), INV, "invalid cache"},
        {"tca_cache_size", "a context handle", P([=] { return tca_cache_size(as<tca_cache>(ctx), &bytes, nullptr, nullptr); }), INV, "invalid cache"},
        // Benchmarking support.
        {"tca_device_roofline", "null context", P([] { tca_roofline r{sizeof r}; return tca_device_roofline(nullptr, &r); }), INV, "invalid context"},
        {"tca_device_roofline", "null out", P([=] { return tca_device_roofline(ctx, nullptr); }), INV, "null"},
        {"tca_device_roofline", "struct_size too small", P([=] { tca_roofline r{4}; return tca_device_roofline(ctx, &r); }), INV, "struct_size"},
        {"tca_device_roofline", "a cache handle", P([=] { tca_roofline r{sizeof r}; return tca_device_roofline(as<tca_context>(fresh), &r); }), INV, "invalid context"},
        {"tca_cache_kept_positions", "null cache", P([] { int n; return tca_cache_kept_positions(nullptr, 0, nullptr, 0, &n); }), INV, "invalid cache"},
        {"tca_cache_kept_positions", "a context handle", P([=] { int n; return tca_cache_kept_positions(as<tca_cache>(ctx), 0, nullptr, 0, &n); }), INV, "invalid cache"},
        {"tca_cache_kept_positions", "kv head out of range", P([=] { int n; return tca_cache_kept_positions(primed, 2, nullptr, 0, &n); }), INV, "kv_head"},
        {"tca_cache_kept_positions", "null count", P([=] { return tca_cache_kept_positions(primed, 0, nullptr, 0, nullptr); }), INV, "null"},
        {"tca_cache_kept_positions", "null positions with capacity", P([=] { int n; return tca_cache_kept_positions(primed, 0, nullptr, 4, &n); }), INV, "null"},
        // Interop entry points: what needs no device here (the device cases are in test_interop.cpp).
        {"tca_context_create_opencl", "null handles", P([] { return tca_context_create_opencl(nullptr, nullptr, nullptr, &cout); }), CL_INV, cl_built ? "null" : "TCA_WITH_OPENCL=OFF"},
        {"tca_context_create_opencl", "null out", P([] { return tca_context_create_opencl(nullptr, nullptr, nullptr, nullptr); }), INV, "out is null"},
        {"tca_context_create_vulkan", "null handles", P([] { return tca_context_create_vulkan(nullptr, &cout); }), INV, "handles is null"},
        {"tca_context_create_vulkan", "struct_size too small", P([] { tca_vulkan_handles h{4}; return tca_context_create_vulkan(&h, &cout); }), INV, "struct_size"},
        {"tca_context_create_vulkan", "null device handles", P([] { tca_vulkan_handles h{sizeof h}; h.api_version = (1u << 22) | (1u << 12); return tca_context_create_vulkan(&h, &cout); }), VK_INV, vk_built ? "null" : "TCA_WITH_VULKAN=OFF"},
        {"tca_tensor_wrap_opencl", "null context", P([=] { return tca_tensor_wrap_opencl(nullptr, nullptr, 0, &desc, &tout); }), INV, "invalid context"},
        {"tca_tensor_wrap_opencl", "not an OpenCL context", P([=] { return tca_tensor_wrap_opencl(ctx, nullptr, 0, &desc, &tout); }), CL_INV, cl_built ? "not an OpenCL context" : "TCA_WITH_OPENCL=OFF"},
        {"tca_tensor_wrap_opencl", "null desc", P([=] { return tca_tensor_wrap_opencl(ctx, nullptr, 0, nullptr, &tout); }), INV, "desc is null"},
        {"tca_tensor_wrap_vulkan", "null context", P([=] { return tca_tensor_wrap_vulkan(nullptr, 1, 64, 0, &desc, &tout); }), INV, "invalid context"},
        {"tca_tensor_wrap_vulkan", "not a Vulkan context", P([=] { return tca_tensor_wrap_vulkan(ctx, 1, 64, 0, &desc, &tout); }), VK_INV, vk_built ? "not a Vulkan context" : "TCA_WITH_VULKAN=OFF"},
        {"tca_tensor_wrap_vulkan", "null out", P([=] { return tca_tensor_wrap_vulkan(ctx, 1, 64, 0, &desc, nullptr); }), INV, "out is null"},
        {"tca_context_vulkan_begin_recording", "null context", P([] { return tca_context_vulkan_begin_recording(nullptr, nullptr); }), INV, "invalid context"},
        {"tca_context_vulkan_begin_recording", "not a Vulkan context", P([=] { return tca_context_vulkan_begin_recording(ctx, nullptr); }), VK_INV, vk_built ? "not a Vulkan context" : "TCA_WITH_VULKAN=OFF"},
        {"tca_context_vulkan_end_recording", "null context", P([] { uint64_t t = 0; return tca_context_vulkan_end_recording(nullptr, &t); }), INV, "invalid context"},
        {"tca_context_vulkan_end_recording", "null ticket", P([=] { return tca_context_vulkan_end_recording(ctx, nullptr); }), INV, "ticket is null"},
        {"tca_context_vulkan_end_recording", "not a Vulkan context", P([=] { uint64_t t = 0; return tca_context_vulkan_end_recording(ctx, &t); }), VK_INV, vk_built ? "not a Vulkan context" : "TCA_WITH_VULKAN=OFF"},
        {"tca_context_vulkan_release", "null context", P([] { return tca_context_vulkan_release(nullptr, 1); }), INV, "invalid context"},
        {"tca_context_vulkan_release", "not a Vulkan context", P([=] { return tca_context_vulkan_release(ctx, 1); }), VK_INV, vk_built ? "not a Vulkan context" : "TCA_WITH_VULKAN=OFF"},
        // What the build has.
        {"tca_build_has", "unknown component", P([] { return tca_build_has("cuda", &n); }), INV, "unknown component"},
        {"tca_build_has", "null component", P([] { return tca_build_has(nullptr, &n); }), INV, "null"},
        {"tca_build_has", "null built", P([] { return tca_build_has("vulkan", nullptr); }), INV, "null"},
        // Profile inspection.
        {"tca_profile_params", "null profile", P([] { return tca_profile_params(nullptr, &params); }), INV, "invalid profile"},
        {"tca_profile_params", "null params", P([=] { return tca_profile_params(profile, nullptr); }), INV, "null"},
        {"tca_profile_params", "struct_size too small", P([=]() mutable { return tca_profile_params(profile, &small_params); }), INV, "struct_size"},
        {"tca_profile_head_info", "a cache as profile", P([=] { return tca_profile_head_info(as<tca_profile>(fresh), 0, 0, &head); }), INV, "invalid profile"},
        {"tca_profile_head_info", "kv head out of range", P([=] { return tca_profile_head_info(profile, 0, 2, &head); }), INV, "out of range"},
        {"tca_profile_head_info", "layer out of range", P([=] { return tca_profile_head_info(profile, -1, 0, &head); }), INV, "out of range"},
        {"tca_profile_head_info", "null info", P([=] { return tca_profile_head_info(profile, 0, 0, nullptr); }), INV, "null"},
        {"tca_profile_head_info", "struct_size too small", P([=] { tca_profile_head h{4}; return tca_profile_head_info(profile, 0, 0, &h); }), INV, "struct_size"},
        // Synthetic workloads.
        {"tca_synth_workload", "null spec", P([] { return tca_synth_workload(nullptr, host, 4096, host, 2048, host, 2048); }), INV, "spec is null"},
        {"tca_synth_workload", "struct_size too small", P([] { tca_synth_spec s{4}; return tca_synth_workload(&s, host, 4096, host, 2048, host, 2048); }), INV, "struct_size"},
        {"tca_synth_workload", "null kind", P([] { tca_synth_spec s = synth; s.kind = nullptr; return tca_synth_workload(&s, host, 4096, host, 2048, host, 2048); }), INV, "kind is null"},
        {"tca_synth_workload", "unknown kind", P([] { tca_synth_spec s = synth; s.kind = "spiky"; return tca_synth_workload(&s, host, 4096, host, 2048, host, 2048); }), INV, "spiky"},
        {"tca_synth_workload", "q heads not a multiple of kv heads", P([] { tca_synth_spec s = synth; s.kv_heads = 3; return tca_synth_workload(&s, host, 4096, host, 3072, host, 3072); }), INV, "multiple"},
        {"tca_synth_workload", "odd head dim", P([] { tca_synth_spec s = synth; s.head_dim = 63; return tca_synth_workload(&s, host, 4032, host, 2016, host, 2016); }), INV, "even"},
        {"tca_synth_workload", "q count off by one", P([] { return tca_synth_workload(&synth, host, 4095, host, 2048, host, 2048); }), SHAPE, "q_count"},
        {"tca_synth_workload", "null v", P([] { return tca_synth_workload(&synth, host, 4096, host, 2048, nullptr, 2048); }), INV, "v is null"},
        {"tca_synth_head_kind", "kv head out of range", P([] { const char* k; return tca_synth_head_kind(&synth, 2, &k); }), INV, "kv_head"},
        {"tca_synth_head_kind", "null kind", P([] { return tca_synth_head_kind(&synth, 0, nullptr); }), INV, "null"},
        {"tca_synth_head_kind", "unknown kind", P([] { tca_synth_spec s = synth; s.kind = "spiky"; const char* k; return tca_synth_head_kind(&s, 0, &k); }), INV, "spiky"},
    };
}

TEST_F(CApiAudit, EveryBadCallFailsWithAMessage) {
    for (const Case& c : cases()) {
        const tca_status st = c.call();
        EXPECT_EQ(st, c.expect) << c.function << " (" << c.what << ") -> " << tca_status_name(st) << ": " << tca_last_error();
        if (c.expect != TCA_OK && c.needle[0])
            EXPECT_NE(std::string(tca_last_error()).find(c.needle), std::string::npos)
                << c.function << " (" << c.what << "): message '" << tca_last_error() << "' lacks '" << c.needle << "'";
        if (c.expect != TCA_OK && std::string(c.function) != "tca_status_name")
            EXPECT_STRNE(tca_last_error(), "") << c.function << " (" << c.what << "): no message";
    }
}

// The handles the failed calls were given still work: a failure changes nothing.
TEST_F(CApiAudit, FailedCallsLeaveHandlesUsable) {
    for (const Case& c : cases()) c.call();
    EXPECT_EQ(tca_dense_prefill(ctx, q, k, v, o, 0), TCA_OK) << tca_last_error();
    EXPECT_EQ(tca_cache_decode(primed, q1, k1, k1, o1), TCA_OK) << tca_last_error();
    EXPECT_EQ(tca_last_error(), std::string());
}

TEST_F(CApiAudit, EveryEntryPointHasBadInputCases) {
    std::ifstream header(TCA_HEADER_PATH);
    ASSERT_TRUE(header) << TCA_HEADER_PATH;
    std::set<std::string> covered(kNoInput);
    for (const Case& c : cases()) covered.insert(c.function);
    const std::regex decl(R"(^TCA_API\s+[^(]*?\b(tca_[a-z0-9_]+)\s*\()");
    std::string line;
    int declared = 0;
    while (std::getline(header, line)) {
        std::smatch m;
        if (!std::regex_search(line, m, decl)) continue;
        ++declared;
        EXPECT_TRUE(covered.count(m[1])) << m[1] << " is declared in tca.h but has no bad-input case here";
    }
    EXPECT_GE(declared, 39);  // the parse found the declarations (39 when this test was written)
}

}  // namespace
