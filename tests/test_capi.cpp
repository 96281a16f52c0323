// The C ABI: bad input gets a status and a message, never a crash; dense attention through the
// API matches the device layer.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "harness.h"
#include "tca/tca.h"

namespace tca::detail::test {
namespace {

// Expects `call` to fail with `code` and a message mentioning `needle`.
#define EXPECT_STATUS(call, code, needle)                                                          \
    do {                                                                                           \
        const tca_status st_ = (call);                                                             \
        EXPECT_EQ(st_, code) << #call << " -> " << tca_status_name(st_) << ": " << tca_last_error(); \
        EXPECT_NE(std::string(tca_last_error()).find(needle), std::string::npos)                   \
            << "message '" << tca_last_error() << "' lacks '" << needle << "'";                    \
    } while (0)

class CApi : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_EQ(tca_context_create("cpu", &ctx), TCA_OK) << tca_last_error(); }
    void TearDown() override {
        for (tca_tensor* t : tensors) tca_tensor_destroy(t);
        tca_context_destroy(ctx);
    }
    tca_tensor* tensor(tca_dtype dt, int h, int l, int d, tca_context* c = nullptr) {
        tca_tensor* t = nullptr;
        EXPECT_EQ(tca_tensor_create(c ? c : ctx, dt, h, l, d, &t), TCA_OK) << tca_last_error();
        tensors.push_back(t);
        return t;
    }
    tca_context* ctx = nullptr;
    std::vector<tca_tensor*> tensors;
};

TEST_F(CApi, VersionMatchesHeader) {
    EXPECT_EQ(tca_version(), TCA_VERSION);
    EXPECT_STREQ(tca_version_string(), TCA_VERSION_STRING);
}

TEST_F(CApi, NullHandlesAreRejected) {
    EXPECT_STATUS(tca_context_create("cpu", nullptr), TCA_ERROR_INVALID_ARGUMENT, "null");
    EXPECT_STATUS(tca_dense_prefill(nullptr, nullptr, nullptr, nullptr, nullptr, 0), TCA_ERROR_INVALID_ARGUMENT, "context");
    EXPECT_STATUS(tca_dense_prefill(ctx, nullptr, nullptr, nullptr, nullptr, 0), TCA_ERROR_INVALID_ARGUMENT, "q");
    EXPECT_STATUS(tca_tensor_upload(nullptr, nullptr, 0), TCA_ERROR_INVALID_ARGUMENT, "tensor");
    EXPECT_STATUS(tca_device_get_info(0, nullptr), TCA_ERROR_INVALID_ARGUMENT, "null");
    EXPECT_STATUS(tca_device_count(nullptr), TCA_ERROR_INVALID_ARGUMENT, "null");
    EXPECT_EQ(tca_context_destroy(nullptr), TCA_OK);  // like free(NULL)
}

TEST_F(CApi, UnknownDeviceIsReported) {
    tca_context* c = nullptr;
    EXPECT_STATUS(tca_context_create("vulkan:42", &c), TCA_ERROR_DEVICE_NOT_FOUND, "vulkan:42");
    EXPECT_EQ(c, nullptr);
}

TEST_F(CApi, EmptyShapesAreRejected) {
    tca_tensor* t = nullptr;
    EXPECT_STATUS(tca_tensor_create(ctx, TCA_F32, 0, 10, 64, &t), TCA_ERROR_INVALID_ARGUMENT, "empty");
    EXPECT_STATUS(tca_tensor_create(ctx, TCA_F32, 1, -5, 64, &t), TCA_ERROR_INVALID_ARGUMENT, "empty");
    // Enum inputs are ints at the ABI: any value is defined behaviour, and every unknown one is rejected.
    for (int dt : {7, 3, -1, INT_MIN, INT_MAX})
        EXPECT_STATUS(tca_tensor_create(ctx, dt, 1, 5, 64, &t), TCA_ERROR_INVALID_ARGUMENT, "dtype");
    tca_cache* c = nullptr;
    for (int dt : {3, -1, INT_MAX})
        EXPECT_STATUS(tca_cache_create(ctx, nullptr, 0, 4, 2, 64, dt, 32, &c), TCA_ERROR_INVALID_ARGUMENT, "dtype");
    EXPECT_EQ(c, nullptr);
    for (int s : {-1, 13, 999, INT_MIN}) EXPECT_STREQ(tca_status_name(s), "TCA_ERROR_UNKNOWN") << s;  // 12 is TCA_ERROR_OUT_OF_RANGE
    EXPECT_STREQ(tca_status_name(TCA_ERROR_IO), "TCA_ERROR_IO");
}

TEST_F(CApi, AllocationPastTheMaximumIsOutOfMemory) {
    tca_tensor* t = nullptr;
    EXPECT_STATUS(tca_tensor_create(ctx, TCA_F32, 1024, 1 << 20, 256, &t), TCA_ERROR_OUT_OF_MEMORY, "exceeds");
}

TEST_F(CApi, MismatchedShapesAreRejected) {
    auto* q = tensor(TCA_F32, 4, 16, 64);
    auto* k = tensor(TCA_F32, 2, 16, 64);
    auto* v = tensor(TCA_F32, 2, 16, 64);
    auto* o = tensor(TCA_F32, 4, 16, 64);
    auto* short_k = tensor(TCA_F32, 2, 8, 64);
    auto* wide_v = tensor(TCA_F32, 2, 16, 128);
    auto* bad_o = tensor(TCA_F32, 4, 15, 64);
    auto* f16_v = tensor(TCA_F16, 2, 16, 64);
    EXPECT_STATUS(tca_dense_prefill(ctx, q, short_k, v, o, 0), TCA_ERROR_SHAPE_MISMATCH, "tokens");
    EXPECT_STATUS(tca_dense_prefill(ctx, q, k, wide_v, o, 0), TCA_ERROR_SHAPE_MISMATCH, "differ");
    EXPECT_STATUS(tca_dense_prefill(ctx, q, k, v, bad_o, 0), TCA_ERROR_SHAPE_MISMATCH, "does not match");
    EXPECT_STATUS(tca_dense_prefill(ctx, q, k, f16_v, o, 0), TCA_ERROR_INVALID_ARGUMENT, "dtypes differ");
    EXPECT_STATUS(tca_dense_prefill(ctx, k, k, v, o, 0), TCA_ERROR_SHAPE_MISMATCH, "does not match q");
}

TEST_F(CApi, GqaGroupsMustDivide) {
    auto* q = tensor(TCA_F32, 6, 8, 64);
    auto* k = tensor(TCA_F32, 4, 8, 64);
    auto* o = tensor(TCA_F32, 6, 8, 64);
    EXPECT_STATUS(tca_dense_prefill(ctx, q, k, k, o, 0), TCA_ERROR_SHAPE_MISMATCH, "not a multiple");
}

TEST_F(CApi, UnsupportedHeadDimIsRejected) {
    auto* q = tensor(TCA_F32, 1, 8, 66);
    auto* o = tensor(TCA_F32, 1, 8, 66);
    EXPECT_STATUS(tca_dense_prefill(ctx, q, q, q, o, 0), TCA_ERROR_INVALID_ARGUMENT, "head dim");
    auto* big = tensor(TCA_F32, 1, 8, 512);
    auto* big_o = tensor(TCA_F32, 1, 8, 512);
    EXPECT_STATUS(tca_dense_prefill(ctx, big, big, big, big_o, 0), TCA_ERROR_INVALID_ARGUMENT, "head dim");
}

TEST_F(CApi, NonFiniteInputIsReported) {
    auto* t = tensor(TCA_F32, 1, 4, 64);
    std::vector<float> data(256, 1.f);
    data[77] = NAN;
    EXPECT_STATUS(tca_tensor_upload(t, data.data(), data.size() * 4), TCA_ERROR_NONFINITE_INPUT, "element 77");
    data[77] = INFINITY;
    EXPECT_STATUS(tca_tensor_upload(t, data.data(), data.size() * 4), TCA_ERROR_NONFINITE_INPUT, "NaN or Inf");
    auto* h = tensor(TCA_F16, 1, 4, 64);
    std::vector<uint16_t> half(256, 0x3c00);
    half[3] = 0x7e00;  // fp16 NaN
    EXPECT_STATUS(tca_tensor_upload(h, half.data(), half.size() * 2), TCA_ERROR_NONFINITE_INPUT, "element 3");
}

TEST_F(CApi, WrongByteCountsAreRejected) {
    auto* t = tensor(TCA_F32, 1, 4, 64);
    std::vector<float> data(256, 1.f);
    EXPECT_STATUS(tca_tensor_upload(t, data.data(), 100), TCA_ERROR_SHAPE_MISMATCH, "bytes");
    EXPECT_STATUS(tca_tensor_download(t, data.data(), 2000), TCA_ERROR_SHAPE_MISMATCH, "bytes");
}

TEST_F(CApi, TensorFromAnotherContextIsRejected) {
    tca_context* other = nullptr;
    ASSERT_EQ(tca_context_create("cpu", &other), TCA_OK);
    auto* q = tensor(TCA_F32, 1, 4, 64);
    auto* foreign = tensor(TCA_F32, 1, 4, 64, other);
    auto* o = tensor(TCA_F32, 1, 4, 64);
    EXPECT_STATUS(tca_dense_prefill(ctx, q, foreign, q, o, 0), TCA_ERROR_INVALID_ARGUMENT, "another context");
    // foreign goes with its context; TearDown destroys the rest (each tensor exactly once).
    tensors.erase(std::find(tensors.begin(), tensors.end(), foreign));
    EXPECT_EQ(tca_tensor_destroy(foreign), TCA_OK);
    tca_context_destroy(other);
    EXPECT_EQ(tensors.size(), 2u);
}

TEST_F(CApi, DecodeNeedsKeys) {
    auto* q = tensor(TCA_F32, 2, 1, 64);
    auto* k = tensor(TCA_F32, 1, 10, 64);
    auto* o = tensor(TCA_F32, 2, 1, 64);
    EXPECT_STATUS(tca_dense_decode(ctx, q, k, k, 0, o, 0), TCA_ERROR_SHAPE_MISMATCH, "n_keys");
    EXPECT_STATUS(tca_dense_decode(ctx, q, k, k, 11, o, 0), TCA_ERROR_SHAPE_MISMATCH, "outside");
}

// struct_size (tca.h, "Conventions"): a caller built against the first, smaller version of a struct
// -- sizeof without trailing padding -- and one built against a newer, bigger version both work,
// and the library touches no byte past struct_size.
template <class T>
struct Probe {
    // The struct in a byte buffer with room after it; every byte starts as a canary.
    explicit Probe(size_t struct_size) : bytes(sizeof(T) + 64, 0xAB) { get()->struct_size = struct_size; }
    T* get() { return reinterpret_cast<T*>(bytes.data()); }
    bool untouched_from(size_t n) const {
        return std::all_of(bytes.begin() + std::ptrdiff_t(n), bytes.end(), [](unsigned char b) { return b == 0xAB; });
    }
    std::vector<unsigned char> bytes;  // operator new: aligned for any of the structs
};

// The end of each struct's last field: the first released version's size.
constexpr size_t kInfoV1 = offsetof(tca_device_info, subgroup_size) + sizeof(uint32_t);
constexpr size_t kStatsV1 = offsetof(tca_call_stats, kept_tokens) + sizeof(int64_t);
constexpr size_t kParamsV1 = offsetof(tca_params, alpha) + sizeof(double);

TEST_F(CApi, StructsOfTheFirstVersionAreAccepted) {
    static_assert(kInfoV1 < sizeof(tca_device_info), "tca_device_info has trailing padding on this ABI");
    Probe<tca_device_info> info(kInfoV1);
    ASSERT_EQ(tca_device_get_info(0, info.get()), TCA_OK) << tca_last_error();
    EXPECT_STREQ(info.get()->name, "cpu");
    EXPECT_EQ(info.get()->type, TCA_DEVICE_REFERENCE);
    EXPECT_EQ(info.get()->struct_size, kInfoV1) << "the caller's struct_size is kept";
    EXPECT_TRUE(info.untouched_from(kInfoV1)) << "nothing written past struct_size";
    Probe<tca_device_info> ctx_info(kInfoV1);
    ASSERT_EQ(tca_context_device_info(ctx, ctx_info.get()), TCA_OK) << tca_last_error();
    EXPECT_TRUE(ctx_info.untouched_from(kInfoV1));

    Probe<tca_call_stats> stats(kStatsV1);
    ASSERT_EQ(tca_context_last_stats(ctx, stats.get()), TCA_OK) << tca_last_error();
    EXPECT_TRUE(stats.untouched_from(kStatsV1));

    Probe<tca_params> params(kParamsV1);
    ASSERT_EQ(tca_params_init(params.get()), TCA_OK) << tca_last_error();
    EXPECT_EQ(params.get()->block, 128);
    EXPECT_TRUE(params.untouched_from(kParamsV1));
    tca_profile* prof = nullptr;
    params.get()->window = 4;
    ASSERT_EQ(tca_profile_fixed(params.get(), 1, 2, 1, 64, 0.5, &prof), TCA_OK) << tca_last_error();
    tca_profile_destroy(prof);
}

TEST_F(CApi, StructsOfANewerBiggerVersionAreAccepted) {
    const size_t bigger = sizeof(tca_device_info) + 32;
    Probe<tca_device_info> info(bigger);
    ASSERT_EQ(tca_device_get_info(0, info.get()), TCA_OK) << tca_last_error();
    EXPECT_STREQ(info.get()->name, "cpu");
    EXPECT_EQ(info.get()->struct_size, bigger);
    EXPECT_TRUE(info.untouched_from(sizeof(tca_device_info))) << "fields this library does not know stay as they were";
    Probe<tca_params> params(sizeof(tca_params) + 16);
    ASSERT_EQ(tca_params_init(params.get()), TCA_OK) << tca_last_error();
    EXPECT_TRUE(params.untouched_from(sizeof(tca_params)));
    tca_profile* prof = nullptr;
    params.get()->window = 4;
    ASSERT_EQ(tca_profile_fixed(params.get(), 1, 2, 1, 64, 0.5, &prof), TCA_OK) << tca_last_error();
    tca_profile_destroy(prof);
}

TEST_F(CApi, StructSizeBelowTheFirstVersionIsRejected) {
    for (size_t size : {size_t(0), size_t(8), kInfoV1 - 1}) {
        Probe<tca_device_info> info(size);
        EXPECT_STATUS(tca_device_get_info(0, info.get()), TCA_ERROR_INVALID_ARGUMENT, "struct_size");
        EXPECT_TRUE(info.untouched_from(sizeof(size_t))) << size;
    }
    Probe<tca_call_stats> stats(kStatsV1 - 1);
    EXPECT_STATUS(tca_context_last_stats(ctx, stats.get()), TCA_ERROR_INVALID_ARGUMENT, "struct_size");
    Probe<tca_params> params(kParamsV1 - 1);
    EXPECT_STATUS(tca_params_init(params.get()), TCA_ERROR_INVALID_ARGUMENT, "struct_size");
    tca_profile* prof = nullptr;
    EXPECT_STATUS(tca_profile_fixed(params.get(), 1, 2, 1, 64, 0.5, &prof), TCA_ERROR_INVALID_ARGUMENT, "struct_size");
}

// TCA_DEVICE naming no device is an error where the default is asked for, not a name passed on.
TEST_F(CApi, UnknownTcaDeviceIsNotADefault) {
    const char* old = std::getenv("TCA_DEVICE");
    const std::string saved = old ? old : "";
    ::setenv("TCA_DEVICE", "nope", 1);
    char name[64] = "unchanged";
    const tca_status st = tca_default_device_name(name, sizeof name);
    tca_context* c = nullptr;
    const tca_status st_ctx = tca_context_create(nullptr, &c);
    const std::string msg = tca_last_error();
    ::setenv("TCA_DEVICE", "cpu", 1);
    const tca_status st_ok = tca_default_device_name(name, sizeof name);
    if (old) ::setenv("TCA_DEVICE", saved.c_str(), 1);
    else ::unsetenv("TCA_DEVICE");
    EXPECT_EQ(st, TCA_ERROR_DEVICE_NOT_FOUND) << tca_status_name(st);
    EXPECT_EQ(st_ctx, TCA_ERROR_DEVICE_NOT_FOUND);
    EXPECT_EQ(c, nullptr);
    EXPECT_NE(msg.find("TCA_DEVICE"), std::string::npos) << msg;
    EXPECT_NE(msg.find("nope"), std::string::npos) << msg;
    EXPECT_EQ(st_ok, TCA_OK);
    EXPECT_STREQ(name, "cpu");
    if (c) tca_context_destroy(c);
}

// Dense prefill through the API on every device equals the reference through the API.
TEST(CApiDevices, DensePrefillMatchesReferenceThroughTheApi) {
    const int hq = 4, hkv = 2, len = 100, dim = 64;
    const auto q = randn(size_t(hq) * len * dim, 5), k = randn(size_t(hkv) * len * dim, 6),
               v = randn(size_t(hkv) * len * dim, 7);
    auto run = [&](const std::string& dev) {
        tca_context* c = nullptr;
        EXPECT_EQ(tca_context_create(dev.c_str(), &c), TCA_OK) << tca_last_error();
        tca_tensor *tq, *tk, *tv, *to;
        tca_tensor_create(c, TCA_F32, hq, len, dim, &tq);
        tca_tensor_create(c, TCA_F32, hkv, len, dim, &tk);
        tca_tensor_create(c, TCA_F32, hkv, len, dim, &tv);
        tca_tensor_create(c, TCA_F32, hq, len, dim, &to);
        tca_tensor_upload(tq, q.data(), q.size() * 4);
        tca_tensor_upload(tk, k.data(), k.size() * 4);
        tca_tensor_upload(tv, v.data(), v.size() * 4);
        EXPECT_EQ(tca_dense_prefill(c, tq, tk, tv, to, 0), TCA_OK) << tca_last_error();
        std::vector<float> out(q.size());
        EXPECT_EQ(tca_tensor_download(to, out.data(), out.size() * 4), TCA_OK);
        for (auto* t : {tq, tk, tv, to}) tca_tensor_destroy(t);
        tca_context_destroy(c);
        return out;
    };
    const auto expect = run("cpu");
    for (const auto& dev : devices_under_test()) EXPECT_LE(nmse(expect, run(dev)), 1e-9) << dev;
}

}  // namespace
}  // namespace tca::detail::test
