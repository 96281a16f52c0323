// Size arithmetic never wraps: core/checked.h itself, and the requests whose byte counts pass 2^64
// (or int limits) failing with a status on every device instead of succeeding with a tiny buffer.
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "core/checked.h"
#include "harness.h"
#include "tca/tca.h"

namespace tca::detail::test {
namespace {

// Runs f and returns the status of the tca::detail::Error it throws (TCA_OK when it throws nothing).
template <class F>
tca_status status_of(F&& f, std::string* message = nullptr) {
    try {
        f();
    } catch (const Error& e) {
        if (message) *message = e.what();
        return e.code();
    }
    return TCA_OK;
}

TEST(Checked, MultiplyAndAddThrowInsteadOfWrapping) {
    EXPECT_EQ(checked_mul(size_t(1) << 31, size_t(1) << 31, "x"), size_t(1) << 62);
    EXPECT_EQ(checked_add(SIZE_MAX - 1, 1, "x"), SIZE_MAX);
    std::string msg;
    EXPECT_EQ(status_of([] { checked_mul(size_t(1) << 32, size_t(1) << 32, "tensor bytes"); }, &msg),
              TCA_ERROR_OUT_OF_MEMORY);
    EXPECT_NE(msg.find("tensor bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("overflows"), std::string::npos) << msg;
    EXPECT_EQ(status_of([] { checked_add(SIZE_MAX, 1, "x"); }), TCA_ERROR_OUT_OF_MEMORY);
    EXPECT_EQ(status_of([] { checked_mul_i64(INT64_MAX / 2 + 1, 2, "x"); }), TCA_ERROR_OUT_OF_MEMORY);
    EXPECT_EQ(status_of([] { checked_add_i64(INT64_MAX, 1, "x"); }), TCA_ERROR_OUT_OF_MEMORY);
    EXPECT_EQ(checked_mul_i64(-3, 4, "x"), -12);
}

TEST(Checked, ProductRejectsNegativeCountsAndOverflow) {
    EXPECT_EQ(checked_product({2, 3, 4}, "x"), 24u);
    EXPECT_EQ(checked_product({}, "x"), 1u);
    EXPECT_EQ(checked_product({5, 0, INT64_MAX}, "x"), 0u);
    std::string msg;
    EXPECT_EQ(status_of([] { checked_product({4, -1, 4}, "elements"); }, &msg), TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(msg.find("negative"), std::string::npos) << msg;
    // (2^30, 2^30, 16) f32: 2^66 bytes, exactly what wrapped to 0 before.
    EXPECT_EQ(status_of([] { checked_product({1 << 30, 1 << 30, 16, 4}, "x"); }), TCA_ERROR_OUT_OF_MEMORY);
    EXPECT_EQ(status_of([] { checked_product({INT_MAX, INT_MAX, INT_MAX}, "x"); }), TCA_ERROR_OUT_OF_MEMORY);
}

TEST(Checked, NarrowingAndRanges) {
    EXPECT_EQ(checked_narrow<int>(uint64_t(INT_MAX), "x"), INT_MAX);
    EXPECT_EQ(status_of([] { checked_narrow<int>(uint64_t(INT_MAX) + 1, "rows"); }), TCA_ERROR_UNSUPPORTED);
    EXPECT_EQ(status_of([] { checked_narrow<uint32_t>(uint64_t(1) << 32, "groups"); }), TCA_ERROR_UNSUPPORTED);
    EXPECT_TRUE(range_fits(0, 16, 16));
    EXPECT_TRUE(range_fits(16, 0, 16));
    EXPECT_FALSE(range_fits(8, 9, 16));
    EXPECT_FALSE(range_fits(17, 0, 16));
    EXPECT_FALSE(range_fits(8, SIZE_MAX, 16)) << "offset + bytes wraps to 7";
}

std::vector<std::string> every_device() {
    std::vector<std::string> all{"cpu"};
    for (const auto& d : devices_under_test()) all.push_back(d);
    return all;
}

// tca_tensor_create with shapes whose byte count passes 2^64 (or any device): never TCA_OK.
TEST(CApiSizes, WrappingTensorShapesAreRejectedOnEveryDevice) {
    struct Shape {
        int dtype, heads, tokens, dim;
    };
    const std::vector<Shape> shapes = {
        {TCA_F32, 1 << 30, 1 << 30, 16},    // 2^66 bytes: wrapped to 0
        {TCA_F16, 1 << 30, 1 << 30, 32},    // 2^66 bytes in f16
        {TCA_F32, 1 << 30, 1 << 30, 4},     // 2^64 bytes exactly: wrapped to 0
        {TCA_F32, INT_MAX, INT_MAX, INT_MAX},
        {TCA_F32, 1 << 24, 1 << 24, 1 << 16},  // 2^66 again, another split
        {TCA_F16, 65536, 65536, 65536},     // 2^49 bytes: no wrap, but no device has it
    };
    for (const auto& dev : every_device()) {
        tca_context* ctx = nullptr;
        ASSERT_EQ(tca_context_create(dev.c_str(), &ctx), TCA_OK) << dev << ": " << tca_last_error();
        for (const Shape& s : shapes) {
            tca_tensor* t = reinterpret_cast<tca_tensor*>(&ctx);  // must be reset to null
            const tca_status st = tca_tensor_create(ctx, s.dtype, s.heads, s.tokens, s.dim, &t);
            const std::string what = dev + " [" + std::to_string(s.heads) + ", " + std::to_string(s.tokens) + ", " +
                                     std::to_string(s.dim) + "]";
            EXPECT_EQ(st, TCA_ERROR_OUT_OF_MEMORY) << what << ": " << tca_status_name(st) << " " << tca_last_error();
            EXPECT_EQ(t, nullptr) << what;
            EXPECT_STRNE(tca_last_error(), "") << what;
            if (st == TCA_OK) tca_tensor_destroy(t);
        }
        tca_context_destroy(ctx);
    }
}

// A cache whose K/V store (kv_heads * max_tokens * head_dim * 4 bytes) passes 2^64.
TEST(CApiSizes, WrappingCacheSizesAreRejected) {
    tca_context* ctx = nullptr;
    ASSERT_EQ(tca_context_create("cpu", &ctx), TCA_OK);
    tca_cache* c = nullptr;
    // 2^16 * 2^30 * 2^16 * 4 = 2^64: wrapped to a 0-byte store before.
    tca_status st = tca_cache_create(ctx, nullptr, 0, 65536, 65536, 65536, TCA_F32, 1 << 30, &c);
    EXPECT_EQ(st, TCA_ERROR_OUT_OF_MEMORY) << tca_status_name(st) << ": " << tca_last_error();
    EXPECT_EQ(c, nullptr);
    if (c) tca_cache_destroy(c);
    // With a profile: the TCA store, the window buffers and the position table are checked too.
    tca_params p{};
    p.struct_size = sizeof p;
    ASSERT_EQ(tca_params_init(&p), TCA_OK);
    p.block = 16, p.window = INT_MAX - 8;  // window + block passes INT_MAX
    tca_profile* prof = nullptr;
    ASSERT_EQ(tca_profile_fixed(&p, 1, 4, 2, 64, 0.5, &prof), TCA_OK) << tca_last_error();
    st = tca_cache_create(ctx, prof, 0, 4, 2, 64, TCA_F32, 64, &c);
    EXPECT_NE(st, TCA_OK);
    EXPECT_EQ(c, nullptr);
    if (c) tca_cache_destroy(c);
    tca_profile_destroy(prof);
    tca_context_destroy(ctx);
}

// The device layer itself: a tensor whose span wraps (a contiguous [2^30, 2^30, 16] f32 view spans
// 2^66 bytes, computed as 0 before) over a 4 KiB buffer must fail validation, on every backend,
// before any kernel reads past the buffer.
TEST(CApiSizes, AttentionNeverRunsOnAnUndersizedBuffer) {
    for (const auto& name : every_device()) {
        Device& dev = name == "cpu" ? reference() : device(name);
        const Buffer buf = dev.alloc(4096);
        const Tensor huge = Tensor::contiguous(BufView{buf, 0}, DType::f32, 1 << 30, 1 << 30, 16);
        std::string msg;
        EXPECT_THROW(huge.span_bytes(), Error) << name;
        PrefillArgs a;
        a.q = a.k = a.v = a.o = huge;
        EXPECT_NE(status_of([&] { dev.prefill(a); }, &msg), TCA_OK) << name;
        EXPECT_FALSE(msg.empty()) << name;
        // Decode: one query row, keys from the huge view.
        const Tensor row = Tensor::contiguous(BufView{dev.alloc(64 * 4), 0}, DType::f32, 1, 1, 64);
        const Tensor keys = Tensor::contiguous(BufView{buf, 0}, DType::f32, 1, 1 << 30, 64);  // 2^38 bytes
        DecodeArgs d;
        d.q = d.o = row;
        d.k1 = d.v1 = keys;
        d.n1 = 1 << 30;
        EXPECT_EQ(status_of([&] { dev.decode(d); }), TCA_ERROR_SHAPE_MISMATCH) << name;
        // Strides whose products pass int64.
        Tensor strided = Tensor::contiguous(BufView{buf, 0}, DType::f32, 4, 4, 64);
        strided.head_stride = INT64_MAX / 2;
        EXPECT_NE(status_of([&] { strided.span_bytes(); }), TCA_OK) << name;
        dev.finish();
    }
}

}  // namespace
}  // namespace tca::detail::test
