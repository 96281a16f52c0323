// The input range (tca.h, "input range"): finite inputs whose attention float32 cannot represent
// are rejected with TCA_ERROR_OUT_OF_RANGE, identically on every device, before anything is
// written; inputs just inside the limits give finite results that agree across devices. No call
// may return NaN with TCA_OK.
#include <cmath>
#include <filesystem>
#include <vector>

#include <unistd.h>

#include "cli_run.h"
#include "harness.h"
#include "io/npy.h"
#include "method/session.h"
#include "tca/tca.h"

namespace tca::detail::test {
namespace {

std::vector<std::string> all_devices() {
    std::vector<std::string> d = {"cpu"};
    for (const auto& n : devices_under_test()) d.push_back(n);
    return d;
}

// Every row (dim elements) rescaled to L2 norm `norm` exactly as far as floats allow.
std::vector<float> rows_of_norm(size_t rows, int dim, double norm, uint32_t seed) {
    std::vector<float> x = randn(rows * size_t(dim), seed);
    for (size_t r = 0; r < rows; ++r) {
        double ss = 0;
        for (int i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
        for (int i = 0; i < dim; ++i) x[r * dim + i] = float(x[r * dim + i] * (norm / std::sqrt(ss)));
    }
    return x;
}

std::vector<float> alternating(size_t n, float a) {
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = i % 2 ? -a : a;
    return x;
}

// A call's status with its message, taken before any later call clears it.
struct Outcome {
    tca_status st;
    std::string msg;
};
Outcome outcome(tca_status st) { return {st, tca_last_error()}; }

bool all_finite(const std::vector<float>& x) {
    for (float v : x)
        if (!std::isfinite(v)) return false;
    return true;
}

class CApiRange : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override { ASSERT_EQ(tca_context_create(GetParam().c_str(), &ctx), TCA_OK) << tca_last_error(); }
    void TearDown() override {
        for (tca_tensor* t : tensors) tca_tensor_destroy(t);
        tca_context_destroy(ctx);
    }
    tca_tensor* tensor(int heads, int tokens, const std::vector<float>& data, tca_dtype dt = TCA_F32) {
        tca_tensor* t = nullptr;
        EXPECT_EQ(tca_tensor_create(ctx, dt, heads, tokens, kDim, &t), TCA_OK) << tca_last_error();
        tensors.push_back(t);
        if (!data.empty() && dt == TCA_F32) {
            EXPECT_EQ(tca_tensor_upload(t, data.data(), data.size() * 4), TCA_OK) << tca_last_error();
        }
        return t;
    }
    std::vector<float> download(const tca_tensor* t, int heads, int tokens) {
        std::vector<float> x(size_t(heads) * tokens * kDim);
        EXPECT_EQ(tca_tensor_download(t, x.data(), x.size() * 4), TCA_OK) << tca_last_error();
        return x;
    }
    // Expects `st` to be the range error with a message naming `limit`; an OK must at least be finite.
    void expect_rejected(const Outcome& r, const std::vector<float>& out_after, const char* limit, const std::string& what) {
        if (r.st == TCA_OK) {
            EXPECT_TRUE(all_finite(out_after)) << what << ": TCA_OK with non-finite outputs";
        }
        EXPECT_EQ(r.st, TCA_ERROR_OUT_OF_RANGE) << what << " -> " << tca_status_name(r.st) << ": " << r.msg;
        EXPECT_NE(r.msg.find(limit), std::string::npos) << what << ": " << r.msg;
    }

    static constexpr int kHq = 4, kHkv = 2, kLen = 64, kDim = 64;
    tca_context* ctx = nullptr;
    std::vector<tca_tensor*> tensors;
};

TEST(CApiRangeStatus, HasAName) { EXPECT_STREQ(tca_status_name(TCA_ERROR_OUT_OF_RANGE), "TCA_ERROR_OUT_OF_RANGE"); }

// The case: q = +-3e38, k = 1e30 made every output NaN on opencl:0 and vulkan:0.
TEST_P(CApiRange, HugeQueriesAndKeysAreRejected) {
    const size_t nq = size_t(kHq) * kLen * kDim, nk = size_t(kHkv) * kLen * kDim;
    auto* q = tensor(kHq, kLen, alternating(nq, 3e38f));
    auto* k = tensor(kHkv, kLen, std::vector<float>(nk, 1e30f));
    auto* v = tensor(kHkv, kLen, randn(nk, 3));
    const std::vector<float> sentinel(nq, 7.f);
    auto* o = tensor(kHq, kLen, sentinel);
    const Outcome r = outcome(tca_dense_prefill(ctx, q, k, v, o, 0));
    const auto after = download(o, kHq, kLen);
    expect_rejected(r, after, "TCA_SCORE_LIMIT", "prefill");
    if (r.st != TCA_OK) {
        EXPECT_EQ(after, sentinel) << "a failed call wrote its output";
    }
    {
        const Outcome r = outcome(tca_dense_prefill_chunk(ctx, q, k, v, o, 0, 0));
        expect_rejected(r, download(o, kHq, kLen), "TCA_SCORE_LIMIT", "chunk");
    }
    auto* q1 = tensor(kHq, 1, alternating(size_t(kHq) * kDim, 3e38f));
    auto* o1 = tensor(kHq, 1, {});
    {
        const Outcome r = outcome(tca_dense_decode(ctx, q1, k, v, kLen, o1, 0));
        expect_rejected(r, download(o1, kHq, 1), "TCA_SCORE_LIMIT", "decode");
    }
}

// Gaussian q and k scaled by 1e18 (scores ~1e36, below the mask value) gave NaN rows on vulkan:0.
TEST_P(CApiRange, GaussianTimes1e18IsRejected) {
    const size_t nq = size_t(kHq) * kLen * kDim, nk = size_t(kHkv) * kLen * kDim;
    auto* q = tensor(kHq, kLen, randn(nq, 5, 1e18f));
    auto* k = tensor(kHkv, kLen, randn(nk, 6, 1e18f));
    auto* v = tensor(kHkv, kLen, randn(nk, 7));
    auto* o = tensor(kHq, kLen, {});
    const Outcome r = outcome(tca_dense_prefill(ctx, q, k, v, o, 0));
    expect_rejected(r, download(o, kHq, kLen), "TCA_SCORE_LIMIT", "prefill");
}

// q * scale overflowed before any key was looked at: with k = 0 every score is 0 mathematically,
// but OpenCL formed inf * 0 = NaN.
TEST_P(CApiRange, ScaledQueryPastTheLimitIsRejected) {
    const size_t nq = size_t(kHq) * kLen * kDim, nk = size_t(kHkv) * kLen * kDim;
    auto* q = tensor(kHq, kLen, alternating(nq, 3e38f));
    auto* k = tensor(kHkv, kLen, std::vector<float>(nk, 0.f));
    auto* v = tensor(kHkv, kLen, randn(nk, 8));
    auto* o = tensor(kHq, kLen, {});
    const Outcome r = outcome(tca_dense_prefill(ctx, q, k, v, o, 10.f));
    expect_rejected(r, download(o, kHq, kLen), "|scale| * max||q||", "prefill");
}

TEST_P(CApiRange, ScaleMustBeFinite) {
    auto* q = tensor(kHq, kLen, {});
    auto* k = tensor(kHkv, kLen, {});
    auto* o = tensor(kHq, kLen, {});
    EXPECT_EQ(tca_dense_prefill(ctx, q, k, k, o, NAN), TCA_ERROR_INVALID_ARGUMENT) << tca_last_error();
    EXPECT_EQ(tca_dense_prefill(ctx, q, k, k, o, INFINITY), TCA_ERROR_INVALID_ARGUMENT) << tca_last_error();
    EXPECT_EQ(tca_dense_prefill(ctx, q, k, k, o, 0), TCA_OK) << tca_last_error();  // zeros: a defined input
}

TEST_P(CApiRange, ValuesPastTheLimitAreRejected) {
    const size_t nk = size_t(kHkv) * kLen * kDim;
    auto* q = tensor(kHq, kLen, randn(size_t(kHq) * kLen * kDim, 9));
    auto* k = tensor(kHkv, kLen, randn(nk, 10));
    auto* v = tensor(kHkv, kLen, rows_of_norm(size_t(kHkv) * kLen, kDim, 2e20, 11));
    auto* o = tensor(kHq, kLen, {});
    {
        const Outcome r = outcome(tca_dense_prefill(ctx, q, k, v, o, 0));
        expect_rejected(r, download(o, kHq, kLen), "TCA_VALUE_LIMIT", "prefill");
    }
}

// Just inside the limits (|scale| ||q|| ||k|| = 0.9e20, ||v|| = 0.9e20): accepted, finite and the
// same on every device; just outside (1.1e20): rejected on every device.
TEST_P(CApiRange, EdgeOfTheLimit) {
    const double scale = 0.125;  // 1/sqrt(64), the default
    auto run = [&](const std::string& dev, double score_bound, tca_status* st) {
        tca_context* c = nullptr;
        EXPECT_EQ(tca_context_create(dev.c_str(), &c), TCA_OK);
        const double qn = 1e10, kn = score_bound / (scale * qn);
        const auto qd = rows_of_norm(size_t(kHq) * kLen, kDim, qn, 12), kd = rows_of_norm(size_t(kHkv) * kLen, kDim, kn, 13),
                   vd = rows_of_norm(size_t(kHkv) * kLen, kDim, 0.9e20, 14);
        tca_tensor *q, *k, *v, *o;
        tca_tensor_create(c, TCA_F32, kHq, kLen, kDim, &q);
        tca_tensor_create(c, TCA_F32, kHkv, kLen, kDim, &k);
        tca_tensor_create(c, TCA_F32, kHkv, kLen, kDim, &v);
        tca_tensor_create(c, TCA_F32, kHq, kLen, kDim, &o);
        tca_tensor_upload(q, qd.data(), qd.size() * 4);
        tca_tensor_upload(k, kd.data(), kd.size() * 4);
        tca_tensor_upload(v, vd.data(), vd.size() * 4);
        *st = tca_dense_prefill(c, q, k, v, o, 0);
        std::vector<float> out(qd.size());
        tca_tensor_download(o, out.data(), out.size() * 4);
        for (auto* t : {q, k, v, o}) tca_tensor_destroy(t);
        tca_context_destroy(c);
        return out;
    };
    tca_status st;
    const auto expect = run("cpu", 0.9e20, &st);
    ASSERT_EQ(st, TCA_OK) << tca_last_error();
    const auto got = run(GetParam(), 0.9e20, &st);
    ASSERT_EQ(st, TCA_OK) << tca_last_error();
    expect_finite(got, GetParam());
    EXPECT_LE(nmse(expect, got), 1e-9) << GetParam();
    run(GetParam(), 1.1e20, &st);
    EXPECT_EQ(st, TCA_ERROR_OUT_OF_RANGE) << tca_last_error();
}

// A cache bounds the new query against every key it took, not only the call's own: keys of 1e30
// entered with tiny queries, then a query of 1e15 and a zero key (the product 1e45 made q.k inf
// and the output NaN on the GPUs). The rejected step changes nothing; reset forgets the keys.
TEST_P(CApiRange, CacheTracksTheLargestKeyTaken) {
    const int P = 16;
    tca_cache* cache = nullptr;
    ASSERT_EQ(tca_cache_create(ctx, nullptr, 0, kHq, kHkv, kDim, TCA_F32, P + 8, &cache), TCA_OK) << tca_last_error();
    auto* q = tensor(kHq, P, std::vector<float>(size_t(kHq) * P * kDim, 1e-25f));
    auto* k = tensor(kHkv, P, alternating(size_t(kHkv) * P * kDim, 1e30f));
    auto* v = tensor(kHkv, P, randn(size_t(kHkv) * P * kDim, 15));
    auto* o = tensor(kHq, P, {});
    ASSERT_EQ(tca_cache_prefill(cache, q, k, v, o), TCA_OK) << tca_last_error();
    auto* q1 = tensor(kHq, 1, alternating(size_t(kHq) * kDim, 1e15f));
    auto* k1 = tensor(kHkv, 1, {});
    auto* v1 = tensor(kHkv, 1, randn(size_t(kHkv) * kDim, 16));
    auto* o1 = tensor(kHq, 1, {});
    {
        const Outcome r = outcome(tca_cache_decode(cache, q1, k1, v1, o1));
        expect_rejected(r, download(o1, kHq, 1), "TCA_SCORE_LIMIT", "cache decode");
    }
    int tokens = 0;
    ASSERT_EQ(tca_cache_size(cache, nullptr, nullptr, &tokens), TCA_OK);
    EXPECT_EQ(tokens, P) << "a rejected step entered the cache";
    auto* small_q = tensor(kHq, 1, std::vector<float>(size_t(kHq) * kDim, 1e-25f));
    EXPECT_EQ(tca_cache_decode(cache, small_q, k1, v1, o1), TCA_OK) << tca_last_error();
    // After a reset, keys of an ordinary prompt no longer limit the query of 1e15.
    ASSERT_EQ(tca_cache_reset(cache), TCA_OK);
    auto* k_small = tensor(kHkv, P, randn(size_t(kHkv) * P * kDim, 17, 1e-6f));
    ASSERT_EQ(tca_cache_prefill(cache, q, k_small, v, o), TCA_OK) << tca_last_error();
    EXPECT_EQ(tca_cache_decode(cache, q1, k1, v1, o1), TCA_OK) << tca_last_error();
    expect_finite(download(o1, kHq, 1), "o after reset");
    tca_cache_destroy(cache);
}

// The same through a TCA cache (selection, sparse prefill, eviction): prompt and steps are checked.
TEST_P(CApiRange, TcaCacheRejectsOutOfRangePrompt) {
    tca_params params{};
    params.struct_size = sizeof(tca_params);
    tca_params_init(&params);
    params.window = 16, params.block = 16;
    tca_profile* prof = nullptr;
    ASSERT_EQ(tca_profile_fixed(&params, 1, kHq, kHkv, kDim, 0.5, &prof), TCA_OK) << tca_last_error();
    tca_cache* cache = nullptr;
    ASSERT_EQ(tca_cache_create(ctx, prof, 0, kHq, kHkv, kDim, TCA_F32, kLen + 4, &cache), TCA_OK) << tca_last_error();
    const size_t nq = size_t(kHq) * kLen * kDim, nk = size_t(kHkv) * kLen * kDim;
    auto* q = tensor(kHq, kLen, alternating(nq, 3e38f));
    auto* k = tensor(kHkv, kLen, std::vector<float>(nk, 1e30f));
    auto* v = tensor(kHkv, kLen, randn(nk, 18));
    auto* o = tensor(kHq, kLen, {});
    {
        const Outcome r = outcome(tca_cache_prefill(cache, q, k, v, o));
        expect_rejected(r, download(o, kHq, kLen), "TCA_SCORE_LIMIT", "cache prefill");
    }
    int tokens = -1;
    ASSERT_EQ(tca_cache_size(cache, nullptr, nullptr, &tokens), TCA_OK);
    EXPECT_EQ(tokens, 0);
    auto* q_ok = tensor(kHq, kLen, randn(nq, 19));
    auto* k_ok = tensor(kHkv, kLen, randn(nk, 20));
    EXPECT_EQ(tca_cache_prefill(cache, q_ok, k_ok, v, o), TCA_OK) << tca_last_error();
    tca_cache_destroy(cache);
    tca_profile_destroy(prof);
}

// An output's bound is its values' (softmax averages): an output of 1e19-long rows used as the
// next call's q against keys of 1e10 is out of range, though the output was never uploaded.
TEST_P(CApiRange, OutputsCarryTheBoundOfTheirValues) {
    const size_t nk = size_t(kHkv) * kLen * kDim;
    auto* q = tensor(kHq, kLen, randn(size_t(kHq) * kLen * kDim, 21));
    auto* k = tensor(kHkv, kLen, randn(nk, 22));
    auto* v = tensor(kHkv, kLen, rows_of_norm(size_t(kHkv) * kLen, kDim, 1e19, 23));
    auto* o = tensor(kHq, kLen, {});
    ASSERT_EQ(tca_dense_prefill(ctx, q, k, v, o, 0), TCA_OK) << tca_last_error();
    auto* k_big = tensor(kHkv, kLen, rows_of_norm(size_t(kHkv) * kLen, kDim, 1e10, 24));
    auto* o2 = tensor(kHq, kLen, {});
    {
        const Outcome r = outcome(tca_dense_prefill(ctx, o, k_big, v, o2, 0));
        expect_rejected(r, download(o2, kHq, kLen), "TCA_SCORE_LIMIT",
                    "prefill on an output");
    }
    // A tensor never uploaded holds zeros: in range whatever it meets.
    auto* fresh = tensor(kHq, kLen, {});
    EXPECT_EQ(tca_dense_prefill(ctx, fresh, k_big, v, o2, 0), TCA_OK) << tca_last_error();
}

TEST_P(CApiRange, CalibrationRejectsOutOfRangeInputs) {
    const int L = 80;
    auto* q = tensor(kHq, L, randn(size_t(kHq) * L * kDim, 25, 1e15f));
    auto* k = tensor(kHkv, L, randn(size_t(kHkv) * L * kDim, 26, 1e15f));
    tca_params params{};
    params.struct_size = sizeof(tca_params);
    tca_params_init(&params);
    params.window = 16, params.block = 16;
    const tca_tensor* qs[] = {q};
    const tca_tensor* ks[] = {k};
    tca_profile* prof = reinterpret_cast<tca_profile*>(this);  // must come back null
    EXPECT_EQ(tca_calibrate(ctx, &params, 1, qs, ks, &prof), TCA_ERROR_OUT_OF_RANGE) << tca_last_error();
    EXPECT_EQ(prof, nullptr);
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CApiRange);
INSTANTIATE_TEST_SUITE_P(AllDevices, CApiRange, ::testing::ValuesIn(all_devices()),
                         [](const auto& info) { return safe_name(info.param); });

// The host wrappers of a session (what `tca attend` runs) apply the same check.
TEST(SessionRange, HostWrappersCheckTheRange) {
    const method::AttnShape shape{2, 1, 64};
    auto s = method::make_dense_session(reference(), shape, 20);
    method::HostTensor q(2, 8, 64), k(1, 8, 64), v(1, 8, 64);
    for (float& x : k.data) x = 1e30f;
    for (float& x : q.data) x = 1e-25f;
    s->prefill(q, k, v);  // 1e-25 * 1e30 * 64 / 8: fine
    std::vector<float> q1(2 * 64, 1e15f), k1(64, 0.f), v1(64, 0.f);
    try {
        s->decode(q1.data(), k1.data(), v1.data());
        ADD_FAILURE() << "decode against keys of 1e30 with a query of 1e15 was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_OUT_OF_RANGE) << e.what();
    }
    EXPECT_EQ(s->account().tokens_seen, 8);
}

TEST(CliRange, AttendRejectsOutOfRangeInputs) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("tca_test_range_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const int heads = 2, len = 40, dim = 32;
    io::write_npy((dir / "q.npy").string(), io::make_f32({heads, len, dim}, alternating(size_t(heads) * len * dim, 3e38f)));
    io::write_npy((dir / "k.npy").string(),
                  io::make_f32({heads, len, dim}, std::vector<float>(size_t(heads) * len * dim, 1e30f)));
    const fs::path out = dir / "o.npy";
    const auto r = run_cli("attend --q " + (dir / "q.npy").string() + " --k " + (dir / "k.npy").string() + " --v " +
                           (dir / "k.npy").string() + " --dense --device cpu --out " + out.string());
    EXPECT_NE(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("TCA_ERROR_OUT_OF_RANGE"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out)) << "an output was written";
    fs::remove_all(dir);
}

}  // namespace
}  // namespace tca::detail::test
