// The TCA part of the C ABI: a fixed-ratio profile, a cache's prefill + decode through device
// tensors on every device equal the reference's, sizes shrink, and bad calls are clear errors.
#include <vector>

#include "core/dtype.h"
#include "harness.h"
#include "tca/tca.h"

namespace tca::detail::test {
namespace {

struct CacheRun {
    std::vector<float> prefill, decode;
    uint64_t bytes = 0, dense_bytes = 0;
};

CacheRun run_cache(const std::string& dev, bool tca) {
    const int hq = 4, hkv = 2, P = 700, d = 64, steps = 40;
    const auto q = randn(size_t(hq) * (P + steps) * d, 3), k = randn(size_t(hkv) * (P + steps) * d, 4),
               v = randn(size_t(hkv) * (P + steps) * d, 5);
    tca_context* ctx = nullptr;
    EXPECT_EQ(tca_context_create(dev.c_str(), &ctx), TCA_OK) << tca_last_error();
    tca_params params{sizeof(tca_params)};
    tca_params_init(&params);
    params.window = 128, params.block = 32;
    tca_profile* prof = nullptr;
    EXPECT_EQ(tca_profile_fixed(&params, 1, hq, hkv, d, 0.3, &prof), TCA_OK) << tca_last_error();
    tca_cache* cache = nullptr;
    EXPECT_EQ(tca_cache_create(ctx, tca ? prof : nullptr, 0, hq, hkv, d, TCA_F32, P + steps, &cache), TCA_OK)
        << tca_last_error();
    // Head-major slices of rows [r0, r0 + n) of a [heads, P + steps, d] array.
    auto slice = [&](const std::vector<float>& x, int heads, int r0, int n) {
        std::vector<float> out;
        for (int h = 0; h < heads; ++h)
            out.insert(out.end(), x.begin() + (size_t(h) * (P + steps) + r0) * d,
                       x.begin() + (size_t(h) * (P + steps) + r0 + n) * d);
        return out;
    };
    auto tensor = [&](int heads, int n, const std::vector<float>& data) {
        tca_tensor* t = nullptr;
        EXPECT_EQ(tca_tensor_create(ctx, TCA_F32, heads, n, d, &t), TCA_OK);
        if (!data.empty()) EXPECT_EQ(tca_tensor_upload(t, data.data(), data.size() * 4), TCA_OK);
        return t;
    };
    CacheRun r;
    tca_tensor *tq = tensor(hq, P, slice(q, hq, 0, P)), *tk = tensor(hkv, P, slice(k, hkv, 0, P)),
               *tv = tensor(hkv, P, slice(v, hkv, 0, P)), *to = tensor(hq, P, {});
    EXPECT_EQ(tca_cache_prefill(cache, tq, tk, tv, to), TCA_OK) << tca_last_error();
    r.prefill.resize(size_t(hq) * P * d);
    tca_tensor_download(to, r.prefill.data(), r.prefill.size() * 4);
    for (int s = 0; s < steps; ++s) {
        tca_tensor *q1 = tensor(hq, 1, slice(q, hq, P + s, 1)), *k1 = tensor(hkv, 1, slice(k, hkv, P + s, 1)),
                   *v1 = tensor(hkv, 1, slice(v, hkv, P + s, 1)), *o1 = tensor(hq, 1, {});
        EXPECT_EQ(tca_cache_decode(cache, q1, k1, v1, o1), TCA_OK) << tca_last_error();
        std::vector<float> o(size_t(hq) * d);
        tca_tensor_download(o1, o.data(), o.size() * 4);
        r.decode.insert(r.decode.end(), o.begin(), o.end());
        for (auto* t : {q1, k1, v1, o1}) tca_tensor_destroy(t);
    }
    EXPECT_EQ(tca_cache_size(cache, &r.bytes, &r.dense_bytes, nullptr), TCA_OK);
    // Bad calls: decode with the wrong shapes, prefill twice, a foreign handle.
    EXPECT_EQ(tca_cache_decode(cache, tq, tk, tv, to), TCA_ERROR_SHAPE_MISMATCH) << tca_last_error();
    EXPECT_EQ(tca_cache_prefill(cache, tq, tk, tv, to), TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tca_last_error()).find("reset"), std::string::npos) << tca_last_error();
    EXPECT_EQ(tca_cache_prefill(nullptr, tq, tk, tv, to), TCA_ERROR_INVALID_ARGUMENT);
    for (auto* t : {tq, tk, tv, to}) tca_tensor_destroy(t);
    tca_cache_destroy(cache);
    tca_profile_destroy(prof);
    tca_context_destroy(ctx);
    return r;
}

TEST(CApiTca, CacheMatchesReferenceOnEveryDevice) {
    for (bool tca : {false, true}) {
        const CacheRun ref = run_cache("cpu", tca);
        if (tca) EXPECT_LT(ref.bytes, ref.dense_bytes * 6 / 10) << "TCA cache should hold well under dense";
        else EXPECT_EQ(ref.bytes, ref.dense_bytes);
        for (const auto& dev : devices_under_test()) {
            const CacheRun got = run_cache(dev, tca);
            EXPECT_LE(nmse(ref.prefill, got.prefill), 1e-9) << dev << " tca=" << tca;
            EXPECT_LE(nmse(ref.decode, got.decode), 1e-9) << dev << " tca=" << tca;
            EXPECT_EQ(ref.bytes, got.bytes) << dev;
        }
    }
}

// bf16 K/V (spec "K/V storage formats") through the C API: the caller uploads bf16 bits, every
// device's TCA cache (prompt, then decode steps across a compression) matches the reference's on
// the same stored values; the shape reports TCA_BF16; a bf16 NaN or Inf is refused.
TEST(CApiTca, Bf16CacheMatchesReferenceOnEveryDevice) {
    const int hq = 4, hkv = 2, P = 600, d = 64, steps = 40;
    auto bits = [](const std::vector<float>& x) {
        std::vector<uint16_t> b(x.size());
        for (size_t i = 0; i < x.size(); ++i) b[i] = float_to_16bit(DType::bf16, x[i]);
        return b;
    };
    const auto q = randn(size_t(hq) * (P + steps) * d, 31), k = randn(size_t(hkv) * (P + steps) * d, 32),
               v = randn(size_t(hkv) * (P + steps) * d, 33);
    auto run = [&](const std::string& dev) {
        std::vector<float> out;
        tca_context* ctx = nullptr;
        EXPECT_EQ(tca_context_create(dev.c_str(), &ctx), TCA_OK) << tca_last_error();
        if (!ctx) return out;
        tca_params params{sizeof(tca_params)};
        tca_params_init(&params);
        params.window = 128, params.block = 32;
        tca_profile* prof = nullptr;
        EXPECT_EQ(tca_profile_fixed(&params, 1, hq, hkv, d, 0.3, &prof), TCA_OK);
        tca_cache* cache = nullptr;
        EXPECT_EQ(tca_cache_create(ctx, prof, 0, hq, hkv, d, TCA_BF16, P + steps, &cache), TCA_OK) << tca_last_error();
        std::vector<tca_tensor*> made;
        // Rows [r0, r0 + n) of every head; K/V as bf16 bits, Q as f32.
        auto tensor = [&](const std::vector<float>& x, int heads, int r0, int n, bool kv) {
            std::vector<float> rows;
            for (int h = 0; h < heads; ++h)
                rows.insert(rows.end(), x.begin() + (size_t(h) * (P + steps) + r0) * d,
                            x.begin() + (size_t(h) * (P + steps) + r0 + n) * d);
            tca_tensor* t = nullptr;
            EXPECT_EQ(tca_tensor_create(ctx, kv ? TCA_BF16 : TCA_F32, heads, n, d, &t), TCA_OK) << tca_last_error();
            if (kv) {
                const auto b = bits(rows);
                EXPECT_EQ(tca_tensor_upload(t, b.data(), b.size() * 2), TCA_OK) << tca_last_error();
            } else {
                EXPECT_EQ(tca_tensor_upload(t, rows.data(), rows.size() * 4), TCA_OK) << tca_last_error();
            }
            made.push_back(t);
            return t;
        };
        tca_tensor* o = nullptr;
        EXPECT_EQ(tca_tensor_create(ctx, TCA_F32, hq, P, d, &o), TCA_OK);
        made.push_back(o);
        tca_tensor* tk = tensor(k, hkv, 0, P, true);
        tca_dtype dt = TCA_F32;
        EXPECT_EQ(tca_tensor_shape(tk, &dt, nullptr, nullptr, nullptr), TCA_OK);
        EXPECT_EQ(dt, TCA_BF16);
        EXPECT_EQ(tca_cache_prefill(cache, tensor(q, hq, 0, P, false), tk, tensor(v, hkv, 0, P, true), o), TCA_OK)
            << tca_last_error();
        out.resize(size_t(hq) * P * d);
        EXPECT_EQ(tca_tensor_download(o, out.data(), out.size() * 4), TCA_OK);
        tca_tensor* o1 = nullptr;
        EXPECT_EQ(tca_tensor_create(ctx, TCA_F32, hq, 1, d, &o1), TCA_OK);
        made.push_back(o1);
        for (int s = 0; s < steps; ++s) {
            EXPECT_EQ(tca_cache_decode(cache, tensor(q, hq, P + s, 1, false), tensor(k, hkv, P + s, 1, true),
                                       tensor(v, hkv, P + s, 1, true), o1),
                      TCA_OK)
                << tca_last_error();
            std::vector<float> x(size_t(hq) * d);
            EXPECT_EQ(tca_tensor_download(o1, x.data(), x.size() * 4), TCA_OK);
            out.insert(out.end(), x.begin(), x.end());
        }
        // A bf16 NaN (0x7fc0) and Inf (0x7f80) are refused and leave the tensor as it was.
        tca_tensor* bad = nullptr;
        EXPECT_EQ(tca_tensor_create(ctx, TCA_BF16, 1, 1, d, &bad), TCA_OK);
        std::vector<uint16_t> row(d, 0x3f80);  // 1.0
        for (uint16_t special : {uint16_t(0x7fc0), uint16_t(0x7f80), uint16_t(0xff80)}) {
            row[5] = special;
            EXPECT_EQ(tca_tensor_upload(bad, row.data(), row.size() * 2), TCA_ERROR_NONFINITE_INPUT) << dev;
        }
        tca_tensor_destroy(bad);
        for (auto* t : made) tca_tensor_destroy(t);
        tca_cache_destroy(cache);
        tca_profile_destroy(prof);
        tca_context_destroy(ctx);
        return out;
    };
    const auto ref = run("cpu");
    ASSERT_EQ(ref.size(), size_t(hq) * (P + steps) * d);
    for (const auto& dev : devices_under_test()) EXPECT_LE(nmse(ref, run(dev)), 1e-9) << dev;
}

TEST(CApiTca, BadProfilesAndParamsAreRejected) {
    tca_profile* p = nullptr;
    EXPECT_EQ(tca_profile_fixed(nullptr, 1, 4, 3, 64, 0.3, &p), TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(tca_profile_fixed(nullptr, 1, 4, 2, 64, 1.5, &p), TCA_ERROR_INVALID_ARGUMENT);
    tca_params params{sizeof(tca_params)};
    tca_params_init(&params);
    params.block = 100;
    EXPECT_EQ(tca_profile_fixed(&params, 1, 4, 2, 64, 0.3, &p), TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tca_last_error()).find("power of two"), std::string::npos) << tca_last_error();
    EXPECT_EQ(tca_profile_load("/nonexistent/profile.json", &p), TCA_ERROR_IO);
    ASSERT_EQ(tca_profile_fixed(nullptr, 1, 4, 2, 64, 0.3, &p), TCA_OK);
    tca_context* ctx = nullptr;
    ASSERT_EQ(tca_context_create("cpu", &ctx), TCA_OK);
    tca_cache* c = nullptr;
    EXPECT_EQ(tca_cache_create(ctx, p, 0, 8, 2, 64, TCA_F32, 100, &c), TCA_ERROR_SHAPE_MISMATCH) << tca_last_error();
    EXPECT_EQ(tca_cache_create(ctx, p, 3, 4, 2, 64, TCA_F32, 100, &c), TCA_ERROR_INVALID_ARGUMENT);
    tca_profile_destroy(p);
    tca_context_destroy(ctx);
}

}  // namespace
}  // namespace tca::detail::test
