// Tensors past the device's largest buffer are split across buffers between heads
// (device/split_device.h), not rejected. With the limit forced small (TCA_MAX_BUFFER_BYTES) every
// entry point gives bit for bit what the unsplit run gives: outputs, selections, cache sizes,
// profiles. On lavapipe the real limit (128 MiB) is exceeded by a 32 query / 8 KV head query tensor.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "api/handles.h"
#include "cli_run.h"
#include "core/half.h"
#include "device/head_ranges.h"
#include "harness.h"
#include "tca/tca.h"

namespace tca::detail::test {
namespace {

// ---- C API plumbing -------------------------------------------------------------------------

struct CtxDeleter {
    void operator()(tca_context* c) const { tca_context_destroy(c); }
};
struct TensorDeleter {
    void operator()(tca_tensor* t) const { tca_tensor_destroy(t); }
};
struct CacheDeleter {
    void operator()(tca_cache* c) const { tca_cache_destroy(c); }
};
using Ctx = std::unique_ptr<tca_context, CtxDeleter>;
using Cache = std::unique_ptr<tca_cache, CacheDeleter>;
using Tens = std::unique_ptr<tca_tensor, TensorDeleter>;

// A context whose device allocates no buffer above `limit` bytes (0: the device's own limit).
Ctx open_ctx(const std::string& dev, uint64_t limit) {
    if (limit) setenv("TCA_MAX_BUFFER_BYTES", std::to_string(limit).c_str(), 1);
    tca_context* c = nullptr;
    const tca_status st = tca_context_create(dev.c_str(), &c);
    unsetenv("TCA_MAX_BUFFER_BYTES");
    EXPECT_EQ(st, TCA_OK) << tca_last_error();
    return Ctx(c);
}

uint64_t max_allocation(tca_context* ctx) {
    tca_device_info info{};
    info.struct_size = sizeof info;
    EXPECT_EQ(tca_context_device_info(ctx, &info), TCA_OK);
    return info.max_allocation;
}

std::vector<uint16_t> to_half(const std::vector<float>& x) {
    std::vector<uint16_t> h(x.size());
    for (size_t i = 0; i < x.size(); ++i) h[i] = float_to_half(x[i]);
    return h;
}

Tens make(tca_context* ctx, tca_dtype dt, int heads, int tokens, int dim, const std::vector<float>& data) {
    tca_tensor* t = nullptr;
    EXPECT_EQ(tca_tensor_create(ctx, dt, heads, tokens, dim, &t), TCA_OK) << tca_last_error();
    if (t && !data.empty()) {
        if (dt == TCA_F32) {
            EXPECT_EQ(tca_tensor_upload(t, data.data(), data.size() * 4), TCA_OK) << tca_last_error();
        } else {
            const auto h = to_half(data);
            EXPECT_EQ(tca_tensor_upload(t, h.data(), h.size() * 2), TCA_OK) << tca_last_error();
        }
    }
    return Tens(t);
}

std::vector<float> fetch(const tca_tensor* t) {
    int h = 0, l = 0, d = 0;
    EXPECT_EQ(tca_tensor_shape(t, nullptr, &h, &l, &d), TCA_OK);
    std::vector<float> out(size_t(h) * l * d);
    EXPECT_EQ(tca_tensor_download(t, out.data(), out.size() * 4), TCA_OK) << tca_last_error();
    return out;
}

bool split_tensor(const tca_tensor* t) { return t != nullptr && is_split(t->t.data); }

// Rows [r0, r0 + n) of every head of a [heads, total, d] host array, head-major.
std::vector<float> rows_of(const std::vector<float>& x, int heads, int total, int d, int r0, int n) {
    std::vector<float> out;
    for (int h = 0; h < heads; ++h)
        out.insert(out.end(), x.begin() + (size_t(h) * total + r0) * d, x.begin() + (size_t(h) * total + r0 + n) * d);
    return out;
}

// Bit-for-bit equality of float arrays, naming the first differing element.
void expect_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (size_t i = 0; i < a.size(); ++i)
        if (std::memcmp(&a[i], &b[i], 4) != 0) {
            ADD_FAILURE() << what << ": element " << i << " differs: " << a[i] << " vs " << b[i];
            return;
        }
}

// ---- what one configuration computes through every entry point ----------------------------

struct Shape {
    const char* name;
    int hq, hkv, d, prompt, steps;
    tca_dtype kv;
    uint64_t limit;  // forced buffer limit of the split run
    // Calibration needs a GQA group's query rows in one buffer (its column sums add up over the
    // group); where a group is larger than the limit it is a clean TCA_ERROR_OUT_OF_MEMORY.
    bool group_fits = true;
};

struct Outcome {
    std::vector<float> dense_prefill, chunk, decode;
    struct Cache {
        std::vector<float> prefill, decode;
        std::vector<std::vector<int32_t>> kept;
        uint64_t bytes = 0, dense_bytes = 0;
        int tokens = 0;
    } tca, dense;
    std::vector<double> keep_ratio;
    std::string profile;
    bool q_split = false;
};

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

Outcome::Cache run_cache(tca_context* ctx, const Shape& s, const tca_profile* prof, const std::vector<float>& q,
                         const std::vector<float>& k, const std::vector<float>& v) {
    const int T = s.prompt + s.steps, P = s.prompt;
    Outcome::Cache r;
    tca_cache* c = nullptr;
    EXPECT_EQ(tca_cache_create(ctx, prof, 0, s.hq, s.hkv, s.d, s.kv, T, &c), TCA_OK) << tca_last_error();
    Cache owner(c);
    tca_cache* cache = owner.get();
    if (!cache) return r;
    Tens tq = make(ctx, TCA_F32, s.hq, P, s.d, rows_of(q, s.hq, T, s.d, 0, P));
    Tens tk = make(ctx, s.kv, s.hkv, P, s.d, rows_of(k, s.hkv, T, s.d, 0, P));
    Tens tv = make(ctx, s.kv, s.hkv, P, s.d, rows_of(v, s.hkv, T, s.d, 0, P));
    Tens to = make(ctx, TCA_F32, s.hq, P, s.d, {});
    if (!tq || !tk || !tv || !to) return r;
    EXPECT_EQ(tca_cache_prefill(cache, tq.get(), tk.get(), tv.get(), to.get()), TCA_OK) << tca_last_error();
    r.prefill = fetch(to.get());
    Tens q1 = make(ctx, TCA_F32, s.hq, 1, s.d, {}), k1 = make(ctx, s.kv, s.hkv, 1, s.d, {}),
         v1 = make(ctx, s.kv, s.hkv, 1, s.d, {}), o1 = make(ctx, TCA_F32, s.hq, 1, s.d, {});
    for (int t = P; t < T; ++t) {
        const auto qr = rows_of(q, s.hq, T, s.d, t, 1);
        EXPECT_EQ(tca_tensor_upload(q1.get(), qr.data(), qr.size() * 4), TCA_OK);
        for (auto [dst, src] : {std::pair{k1.get(), &k}, std::pair{v1.get(), &v}}) {
            const auto row = rows_of(*src, s.hkv, T, s.d, t, 1);
            if (s.kv == TCA_F32) {
                EXPECT_EQ(tca_tensor_upload(dst, row.data(), row.size() * 4), TCA_OK);
            } else {
                const auto h = to_half(row);
                EXPECT_EQ(tca_tensor_upload(dst, h.data(), h.size() * 2), TCA_OK);
            }
        }
        EXPECT_EQ(tca_cache_decode(cache, q1.get(), k1.get(), v1.get(), o1.get()), TCA_OK) << tca_last_error();
        const auto o = fetch(o1.get());
        r.decode.insert(r.decode.end(), o.begin(), o.end());
    }
    EXPECT_EQ(tca_cache_size(cache, &r.bytes, &r.dense_bytes, &r.tokens), TCA_OK);
    for (int h = 0; h < s.hkv; ++h) {
        std::vector<int32_t> pos(static_cast<size_t>(T));
        int n = 0;
        EXPECT_EQ(tca_cache_kept_positions(cache, h, pos.data(), T, &n), TCA_OK);
        pos.resize(size_t(n));
        r.kept.push_back(pos);
    }
    return r;
}

Outcome run_all(const std::string& dev, const Shape& s, uint64_t limit) {
    const int T = s.prompt + s.steps, P = s.prompt, chunk = 64;
    const auto q = randn(size_t(s.hq) * T * s.d, 11), k = randn(size_t(s.hkv) * T * s.d, 12),
               v = randn(size_t(s.hkv) * T * s.d, 13);
    Outcome r;
    Ctx ctx = open_ctx(dev, limit);
    if (!ctx) return r;
    if (limit) {
        EXPECT_EQ(max_allocation(ctx.get()), limit) << "the context reports the limit in force";
    }

    // Dense prefill, chunked prefill and decode over the prompt.
    Tens tq = make(ctx.get(), TCA_F32, s.hq, P, s.d, rows_of(q, s.hq, T, s.d, 0, P));
    Tens tk = make(ctx.get(), s.kv, s.hkv, P, s.d, rows_of(k, s.hkv, T, s.d, 0, P));
    Tens tv = make(ctx.get(), s.kv, s.hkv, P, s.d, rows_of(v, s.hkv, T, s.d, 0, P));
    Tens to = make(ctx.get(), TCA_F32, s.hq, P, s.d, {});
    if (!tq || !tk || !tv || !to) return r;
    r.q_split = split_tensor(tq.get());
    EXPECT_EQ(tca_dense_prefill(ctx.get(), tq.get(), tk.get(), tv.get(), to.get(), 0.f), TCA_OK) << tca_last_error();
    r.dense_prefill = fetch(to.get());
    Tens qc = make(ctx.get(), TCA_F32, s.hq, chunk, s.d, rows_of(q, s.hq, T, s.d, P - chunk, chunk));
    Tens oc = make(ctx.get(), TCA_F32, s.hq, chunk, s.d, {});
    EXPECT_EQ(tca_dense_prefill_chunk(ctx.get(), qc.get(), tk.get(), tv.get(), oc.get(), P - chunk, 0.f), TCA_OK)
        << tca_last_error();
    r.chunk = fetch(oc.get());
    Tens q1 = make(ctx.get(), TCA_F32, s.hq, 1, s.d, rows_of(q, s.hq, T, s.d, P - 1, 1));
    Tens o1 = make(ctx.get(), TCA_F32, s.hq, 1, s.d, {});
    EXPECT_EQ(tca_dense_decode(ctx.get(), q1.get(), tk.get(), tv.get(), P, o1.get(), 0.f), TCA_OK) << tca_last_error();
    r.decode = fetch(o1.get());

    // TCA and dense caches: prefill, then decode steps past one compression of the pending block.
    tca_params params{};
    params.struct_size = sizeof params;
    tca_params_init(&params);
    params.window = 64, params.block = 32;
    tca_profile* prof = nullptr;
    EXPECT_EQ(tca_profile_fixed(&params, 1, s.hq, s.hkv, s.d, 0.3, &prof), TCA_OK) << tca_last_error();
    r.tca = run_cache(ctx.get(), s, prof, q, k, v);
    r.dense = run_cache(ctx.get(), s, nullptr, q, k, v);
    tca_profile_destroy(prof);

    // Calibration on the prompt (f32 K).
    Tens kf = make(ctx.get(), TCA_F32, s.hkv, P, s.d, rows_of(k, s.hkv, T, s.d, 0, P));
    const tca_tensor* qs[] = {tq.get()};
    const tca_tensor* ks[] = {kf.get()};
    tca_profile* cal = nullptr;
    if (limit && !s.group_fits) {
        EXPECT_EQ(tca_calibrate(ctx.get(), &params, 1, qs, ks, &cal), TCA_ERROR_OUT_OF_MEMORY);
        EXPECT_NE(std::string(tca_last_error()).find("GQA group"), std::string::npos) << tca_last_error();
        EXPECT_EQ(cal, nullptr);
        return r;
    }
    EXPECT_EQ(tca_calibrate(ctx.get(), &params, 1, qs, ks, &cal), TCA_OK) << tca_last_error();
    if (cal) {
        for (int h = 0; h < s.hkv; ++h) {
            double ratio = 0;
            EXPECT_EQ(tca_profile_keep_ratio(cal, 0, h, &ratio), TCA_OK);
            r.keep_ratio.push_back(ratio);
        }
        const auto path = std::filesystem::temp_directory_path() /
                          ("tca_split_" + std::to_string(getpid()) + "_" + std::to_string(limit) + ".json");
        EXPECT_EQ(tca_profile_save(cal, path.c_str()), TCA_OK) << tca_last_error();
        r.profile = slurp(path);
        std::filesystem::remove(path);
        tca_profile_destroy(cal);
    }
    return r;
}

void expect_cache_equal(const Outcome::Cache& a, const Outcome::Cache& b, const std::string& what) {
    expect_bits(a.prefill, b.prefill, what + " prefill");
    expect_bits(a.decode, b.decode, what + " decode");
    EXPECT_EQ(a.kept, b.kept) << what << " kept positions";
    EXPECT_EQ(a.bytes, b.bytes) << what;
    EXPECT_EQ(a.dense_bytes, b.dense_bytes) << what;
    EXPECT_EQ(a.tokens, b.tokens) << what;
}

// Each configuration splits something else: query and K/V tensors along GQA groups; f16 K/V with
// one query head per buffer; the per-head score / index / position arrays (d = 4 makes them as
// large as the tensors); query buffers of 4 heads against groups of 3 (prefill runs such a group
// in parts, the other ops on a packed copy); and groups of 3 heads larger than the limit.
const Shape kShapes[] = {
    {"gqa2", 8, 4, 32, 384, 40, TCA_F32, 96 << 10},
    {"mha_f16", 8, 8, 32, 384, 40, TCA_F16, 64 << 10},
    {"side_arrays", 32, 16, 4, 512, 40, TCA_F32, 16 << 10},
    {"straddling_groups", 12, 4, 16, 256, 40, TCA_F32, 64 << 10},
    {"group_past_limit", 12, 4, 16, 256, 40, TCA_F32, 32 << 10, false},
};
constexpr int kShapeCount = int(sizeof kShapes / sizeof kShapes[0]);

std::vector<std::string> split_devices() {
    std::vector<std::string> v{"cpu"};
    for (const auto& n : devices_under_test())
        if (n != "cpu") v.push_back(n);
    return v;
}

class BufferSplit : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(BufferSplit, SplitRunIsBitIdenticalToUnsplit) {
    const auto& [dev, which] = GetParam();
    const Shape& s = kShapes[which];
    // The configuration must really exceed its limit: the query tensor, and the caches' stores.
    const uint64_t q_bytes = uint64_t(s.hq) * s.prompt * s.d * 4;
    const uint64_t store_bytes = uint64_t(s.hkv) * (s.prompt + s.steps) * s.d * (s.kv == TCA_F32 ? 4 : 2);
    ASSERT_GT(q_bytes, s.limit);
    ASSERT_GT(store_bytes, s.limit);
    const Outcome whole = run_all(dev, s, 0), split = run_all(dev, s, s.limit);
    EXPECT_FALSE(whole.q_split);
    EXPECT_TRUE(split.q_split) << "the query tensor is stored across buffers";
    expect_bits(whole.dense_prefill, split.dense_prefill, "dense prefill");
    expect_bits(whole.chunk, split.chunk, "chunked prefill");
    expect_bits(whole.decode, split.decode, "dense decode");
    expect_cache_equal(whole.tca, split.tca, "tca cache");
    expect_cache_equal(whole.dense, split.dense, "dense cache");
    EXPECT_FALSE(whole.profile.empty());
    if (s.group_fits) {
        EXPECT_EQ(whole.keep_ratio, split.keep_ratio) << "calibration";
        EXPECT_EQ(whole.profile, split.profile) << "calibrated profile";
    }
}

INSTANTIATE_TEST_SUITE_P(Devices, BufferSplit,
                         ::testing::Combine(::testing::ValuesIn(split_devices()), ::testing::Range(0, kShapeCount)),
                         [](const auto& info) {
                             return safe_name(std::get<0>(info.param)) + "_" + kShapes[std::get<1>(info.param)].name;
                         });

// ---- limits that stay errors ----------------------------------------------------------------

TEST(BufferSplitLimits, OneHeadPastTheLimitIsOutOfMemory) {
    Ctx ctx = open_ctx("cpu", 4096);
    ASSERT_TRUE(ctx);
    tca_tensor* t = nullptr;
    // One head of 64 x 32 f32 is 8 KiB: it cannot be split further.
    EXPECT_EQ(tca_tensor_create(ctx.get(), TCA_F32, 4, 64, 32, &t), TCA_ERROR_OUT_OF_MEMORY);
    EXPECT_EQ(t, nullptr);
    EXPECT_NE(std::string(tca_last_error()).find("one head of 8192 bytes"), std::string::npos) << tca_last_error();
    // A cache whose store rows are past the limit fails the same way, at creation.
    tca_cache* c = nullptr;
    EXPECT_EQ(tca_cache_create(ctx.get(), nullptr, 0, 2, 2, 32, TCA_F32, 64, &c), TCA_ERROR_OUT_OF_MEMORY);
    EXPECT_EQ(c, nullptr);
    // Four heads of 1 KiB fit in one buffer each.
    EXPECT_EQ(tca_tensor_create(ctx.get(), TCA_F32, 4, 8, 32, &t), TCA_OK) << tca_last_error();
    tca_tensor_destroy(t);
}

TEST(BufferSplitLimits, TensorPastTheDeviceMemoryFailsAtOnce) {
    // Heads of 512 MiB fit the reference's 4 GiB buffers, but 64 of them are past its 16 GiB: an
    // error before any piece is allocated, not an attempt to take 32 GiB of host memory.
    Ctx ctx = open_ctx("cpu", 0);
    ASSERT_TRUE(ctx);
    tca_tensor* t = nullptr;
    EXPECT_EQ(tca_tensor_create(ctx.get(), TCA_F32, 64, 1 << 20, 128, &t), TCA_ERROR_OUT_OF_MEMORY);
    EXPECT_EQ(t, nullptr);
    EXPECT_NE(std::string(tca_last_error()).find("memory of"), std::string::npos) << tca_last_error();
}

TEST(BufferSplitLimits, BadLimitIsRejectedAtContextCreation) {
    for (const char* bad : {"0", "-5", "12k", "99999999999999999999"}) {
        setenv("TCA_MAX_BUFFER_BYTES", bad, 1);
        tca_context* c = nullptr;
        EXPECT_EQ(tca_context_create("cpu", &c), TCA_ERROR_INVALID_ARGUMENT) << bad;
        EXPECT_EQ(c, nullptr);
        EXPECT_NE(std::string(tca_last_error()).find("TCA_MAX_BUFFER_BYTES"), std::string::npos) << tca_last_error();
        unsetenv("TCA_MAX_BUFFER_BYTES");
    }
}

TEST(BufferSplitLimits, SplitTensorRoundTripsAndRejectsWrongSizes) {
    Ctx ctx = open_ctx("cpu", 4096);
    ASSERT_TRUE(ctx);
    const auto x = randn(size_t(5) * 16 * 32, 3);  // 5 heads of 2 KiB: 2 per buffer, 3 buffers
    Tens t = make(ctx.get(), TCA_F32, 5, 16, 32, x);
    ASSERT_TRUE(t);
    EXPECT_TRUE(split_tensor(t.get()));
    expect_bits(fetch(t.get()), x, "download of an upload");
    std::vector<float> small(x.size() - 1);
    EXPECT_EQ(tca_tensor_upload(t.get(), small.data(), small.size() * 4), TCA_ERROR_SHAPE_MISMATCH);
    EXPECT_EQ(tca_tensor_download(t.get(), small.data(), small.size() * 4), TCA_ERROR_SHAPE_MISMATCH);
    expect_bits(fetch(t.get()), x, "unchanged by the failed upload");
}

// ---- the CLI under a forced limit ----------------------------------------------------------------

// `tca calibrate`, `tca attend` (TCA and dense) write the same bytes with every buffer split
// (TCA_MAX_BUFFER_BYTES: one head per buffer), and `tca bench` runs.
TEST(BufferSplitCli, CalibrateAttendAndBenchUnderAForcedLimit) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("tca_split_cli_" + std::to_string(getpid()));
    fs::create_directories(dir);
    const std::string w = (dir / "w").string();
    // 4 heads x 600 tokens x 32: 76800 bytes a head; 100000 holds one head, not two.
    auto r = run_cli("synth --kind mix --heads 4 --kv-heads 4 --len 600 --dim 32 --seed 3 --out-dir " + w);
    ASSERT_EQ(r.code, 0) << r.output;
    const std::string qkv = " --q " + w + "/q.npy --k " + w + "/k.npy --v " + w + "/v.npy";
    auto bytes_of = [](const fs::path& p) { return slurp(p.string()); };
    for (const auto& dev : split_devices()) {
        for (const char* limit : {"", "100000"}) {
            const std::string tag = (dir / (safe_name(dev) + "_" + (*limit ? "split" : "whole"))).string();
            if (*limit) setenv("TCA_MAX_BUFFER_BYTES", limit, 1);
            r = run_cli("calibrate --q " + w + "/q.npy --k " + w + "/k.npy --block 16 --window 64 --device " + dev +
                        " --out " + tag + "_p.json");
            EXPECT_EQ(r.code, 0) << r.output;
            r = run_cli("attend" + qkv + " --profile " + tag + "_p.json --device " + dev + " --decode-steps 50 --out " +
                        tag + "_o.npy --selection " + tag + "_s.npy");
            EXPECT_EQ(r.code, 0) << r.output;
            r = run_cli("attend" + qkv + " --dense --device " + dev + " --decode-steps 50 --out " + tag + "_d.npy");
            EXPECT_EQ(r.code, 0) << r.output;
            unsetenv("TCA_MAX_BUFFER_BYTES");
        }
        const std::string whole = (dir / (safe_name(dev) + "_whole")).string(),
                          split = (dir / (safe_name(dev) + "_split")).string();
        for (const char* f : {"_p.json", "_o.npy", "_s.npy", "_d.npy"}) {
            EXPECT_FALSE(bytes_of(whole + f).empty()) << dev << f;
            EXPECT_TRUE(bytes_of(whole + f) == bytes_of(split + f)) << dev << f << " differs when split";
        }
    }
    setenv("TCA_MAX_BUFFER_BYTES", "40000", 1);  // 2 heads x 256 x 32 f32 = 65536 bytes of Q: split
    r = run_cli("bench --device cpu --lengths 192,256 --heads 2 --kv-heads 1 --dim 32 --window 64 --block 16 "
                "--keep 0.25 --runs 1 --warmup 0 --calib-length 128 --json " + (dir / "b.json").string());
    unsetenv("TCA_MAX_BUFFER_BYTES");
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_NE(slurp((dir / "b.json").string()).find("\"records\""), std::string::npos);
    fs::remove_all(dir);
}

// ---- lavapipe's real limit ----------------------------------------------------------------------

// The case: 32 query / 8 KV heads at d = 128, with f32 Q larger than the device's largest
// buffer (lavapipe: maxStorageBufferRange = 128 MiB, so Q of 8448 tokens is 132 MiB). A TCA cache
// prefill and a decode step run; the last GQA group run alone (its Q fits one buffer) gives the
// same bits, since heads are independent. Before the split this was OUT_OF_MEMORY.
TEST(BufferSplitRealLimit, QueryPastTheDevicesLargestBuffer) {
    std::string dev;
    uint64_t limit = 0;
    for (const auto& n : devices_under_test()) {
        if (n.rfind("vulkan:", 0) != 0) continue;
        Ctx c = open_ctx(n, 0);
        if (c && max_allocation(c.get()) <= (256ull << 20)) dev = n, limit = max_allocation(c.get());
        if (!dev.empty()) break;
    }
    if (dev.empty()) GTEST_SKIP() << "no Vulkan device with a buffer limit of 256 MiB or less (lavapipe has 128 MiB)";
    const int hq = 32, hkv = 8, d = 128;
    int L = 256;
    while (uint64_t(hq) * L * d * 4 <= limit) L += 256;
    const int T = L + 1;  // a prompt of L tokens, then one decode step
    const auto q = randn(size_t(hq) * T * d, 21), k = randn(size_t(hkv) * T * d, 22), v = randn(size_t(hkv) * T * d, 23);
    Ctx ctx = open_ctx(dev, 0);
    tca_params params{};
    params.struct_size = sizeof params;
    tca_params_init(&params);
    params.window = 16, params.block = 1024;  // little attention work: the test is about the buffers

    // Prefill output, one decode step's output and the kept positions of KV heads [kv0, kv0 + nkv).
    struct Run {
        std::vector<float> prefill, decode;
        std::vector<std::vector<int32_t>> kept;
        bool q_split = false;
    };
    auto run = [&](int kv0, int nkv) {
        const int g = hq / hkv, nq = nkv * g;
        Run r;
        tca_profile* prof = nullptr;
        EXPECT_EQ(tca_profile_fixed(&params, 1, nq, nkv, d, 0.02, &prof), TCA_OK) << tca_last_error();
        tca_cache* c = nullptr;
        EXPECT_EQ(tca_cache_create(ctx.get(), prof, 0, nq, nkv, d, TCA_F32, T, &c), TCA_OK) << tca_last_error();
        tca_profile_destroy(prof);
        Cache owner(c);
        tca_cache* cache = owner.get();
        if (!cache) return r;
        // Rows [r0, r0 + rows) of heads [h0, h0 + n) of a [heads, T, d] array.
        auto heads = [&](const std::vector<float>& x, int h0, int n, int r0, int rows) {
            return rows_of(std::vector<float>(x.begin() + size_t(h0) * T * d, x.begin() + size_t(h0 + n) * T * d), n, T,
                           d, r0, rows);
        };
        {
            Tens tq = make(ctx.get(), TCA_F32, nq, L, d, heads(q, kv0 * g, nq, 0, L));
            Tens tk = make(ctx.get(), TCA_F32, nkv, L, d, heads(k, kv0, nkv, 0, L));
            Tens tv = make(ctx.get(), TCA_F32, nkv, L, d, heads(v, kv0, nkv, 0, L));
            Tens to = make(ctx.get(), TCA_F32, nq, L, d, {});
            if (!tq || !tk || !tv || !to) return r;
            r.q_split = split_tensor(tq.get());
            EXPECT_EQ(tca_cache_prefill(cache, tq.get(), tk.get(), tv.get(), to.get()), TCA_OK) << tca_last_error();
            r.prefill = fetch(to.get());
        }
        Tens q1 = make(ctx.get(), TCA_F32, nq, 1, d, heads(q, kv0 * g, nq, L, 1));
        Tens k1 = make(ctx.get(), TCA_F32, nkv, 1, d, heads(k, kv0, nkv, L, 1));
        Tens v1 = make(ctx.get(), TCA_F32, nkv, 1, d, heads(v, kv0, nkv, L, 1));
        Tens o1 = make(ctx.get(), TCA_F32, nq, 1, d, {});
        EXPECT_EQ(tca_cache_decode(cache, q1.get(), k1.get(), v1.get(), o1.get()), TCA_OK) << tca_last_error();
        r.decode = fetch(o1.get());
        for (int h = 0; h < nkv; ++h) {
            std::vector<int32_t> pos(static_cast<size_t>(T));
            int n = 0;
            EXPECT_EQ(tca_cache_kept_positions(cache, h, pos.data(), T, &n), TCA_OK);
            pos.resize(size_t(n));
            r.kept.push_back(pos);
        }
        return r;
    };
    const Run all = run(0, hkv);
    EXPECT_TRUE(all.q_split) << "Q of " << uint64_t(hq) * L * d * 4 << " bytes on a " << limit << "-byte device";
    // The last GQA group alone (KV head 7, query heads 28..31): its Q fits one buffer.
    const Run part = run(hkv - 1, 1);
    EXPECT_FALSE(part.q_split);
    const int g = hq / hkv;
    const size_t pre = size_t(hq - g) * L * d, dec = size_t(hq - g) * d;
    expect_bits(std::vector<float>(all.prefill.begin() + pre, all.prefill.end()), part.prefill, "prefill of the last group");
    expect_bits(std::vector<float>(all.decode.begin() + dec, all.decode.end()), part.decode, "decode of the last group");
    ASSERT_EQ(part.kept.size(), 1u);
    EXPECT_EQ(all.kept.back(), part.kept[0]) << "kept positions of the last KV head";
}

}  // namespace
}  // namespace tca::detail::test
