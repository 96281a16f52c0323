// Vulkan-specific checks: every TCA op against the CPU reference on a couple of shapes, the
// feature fallbacks (no 16-bit storage, no subgroups) against the native path, determinism,
// profiling names, the pipeline cache file, error codes, and the validation layer's messages failing tests.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <utility>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest-spi.h>

#include "backends/vulkan/vulkan_testing.h"
#include "device/backends.h"
#include "device/kernel_cache.h"
#include "harness.h"

namespace tca::detail::test {
namespace {

std::vector<std::string> vulkan_devices_under_test() {
    std::vector<std::string> v;
    for (const auto& n : devices_under_test())
        if (n.rfind("vulkan:", 0) == 0) v.push_back(n);
    return v;
}

int index_of(const std::string& name) { return std::stoi(name.substr(7)); }

// A device opened with one of the internal fallback switches set (restored afterwards).
std::unique_ptr<Device> open_with_env(const std::string& name, const char* var) {
    setenv(var, "1", 1);
    auto dev = make_vulkan_device(index_of(name), BackendOptions::from_environment());
    unsetenv(var);
    return dev;
}

double tol(DType t) { return t == DType::f32 ? 1e-9 : 1e-6; }

// ---- sparse prefill -----------------------------------------------------------------------------

struct SparseCase {
    int hq, hkv, len, dim, window, q_pos0;
    DType dtype;
};

// Sorted kept lists over [0, len - window) (about a third of the tokens, always token 0).
std::vector<int32_t> kept_lists(int heads, int len, int window, int stride, std::vector<int32_t>* counts, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> idx(size_t(heads) * stride, 0);
    counts->assign(heads, 0);
    for (int h = 0; h < heads; ++h) {
        int n = 0;
        for (int j = 0; j < len - window; ++j)
            if (j == 0 || rng() % 3 == 0) idx[size_t(h) * stride + n++] = j;
        (*counts)[h] = n;
    }
    return idx;
}

std::vector<float> run_sparse(Device& dev, const SparseCase& c, const std::vector<float>& q, const std::vector<float>& k,
                              const std::vector<float>& v, const std::vector<int32_t>& idx, const std::vector<int32_t>& cnt,
                              int stride) {
    const int lq = c.len - c.q_pos0;
    auto tq = make_tensor(dev, DType::f32, c.hq, lq, c.dim, q);
    auto tk = make_tensor(dev, c.dtype, c.hkv, c.len, c.dim, k, 4);
    auto tv = make_tensor(dev, c.dtype, c.hkv, c.len, c.dim, v);
    auto to = make_output(dev, c.hq, lq, c.dim);
    auto ki = make_ints(dev, idx);
    auto kc = make_ints(dev, cnt);
    PrefillArgs a;
    a.q = tq.t, a.k = tk.t, a.v = tv.t, a.o = to.t, a.q_pos0 = c.q_pos0, a.window = c.window;
    a.kept_idx = ki.view(), a.kept_count = kc.view(), a.kept_stride = stride;
    dev.prefill(a);
    check_guards(dev, to, "o");
    return read_tensor(dev, to);
}

class VulkanOps : public ::testing::TestWithParam<std::string> {};

TEST_P(VulkanOps, SparsePrefillMatchesReference) {
    Device& dev = device(GetParam());
    for (const SparseCase& c : {SparseCase{4, 2, 300, 64, 48, 0, DType::f32}, SparseCase{8, 2, 333, 128, 100, 70, DType::f16},
                                SparseCase{2, 1, 97, 64, 5, 0, DType::f16}}) {
        const int lq = c.len - c.q_pos0;
        auto q = randn(size_t(c.hq) * lq * c.dim, 7, 1.5f);
        auto k = randn(size_t(c.hkv) * c.len * c.dim, 8), v = randn(size_t(c.hkv) * c.len * c.dim, 9);
        if (c.dtype == DType::f16) k = round_to_half(k), v = round_to_half(v);
        std::vector<int32_t> cnt;
        const int stride = c.len;
        const auto idx = kept_lists(c.hkv, c.len, c.window, stride, &cnt, 11);
        const auto ref = run_sparse(reference(), c, q, k, v, idx, cnt, stride);
        const auto got = run_sparse(dev, c, q, k, v, idx, cnt, stride);
        expect_finite(got, "sparse");
        EXPECT_LE(nmse(ref, got), tol(c.dtype)) << "L" << c.len << " d" << c.dim << " w" << c.window;
    }
}

// ---- decode with two segments and eviction probabilities -----------------------------------------

TEST_P(VulkanOps, DecodeSegmentsAndProbsMatchReference) {
    Device& dev = device(GetParam());
    for (DType dt : {DType::f32, DType::f16}) {
        const int hq = 8, hkv = 2, d = 64, t1 = 150, t2 = 400, n1 = 137, probs_n = 128;
        const std::vector<int32_t> n2 = {399, 0 + 211};
        auto q = randn(size_t(hq) * d, 21, 1.5f);
        auto k1 = randn(size_t(hkv) * t1 * d, 22), v1 = randn(size_t(hkv) * t1 * d, 23);
        auto k2 = randn(size_t(hkv) * t2 * d, 24), v2 = randn(size_t(hkv) * t2 * d, 25);
        if (dt == DType::f16) k1 = round_to_half(k1), v1 = round_to_half(v1), k2 = round_to_half(k2), v2 = round_to_half(v2);
        auto run = [&](Device& x, int splits, std::vector<float>* probs) {
            auto tq = make_tensor(x, DType::f32, hq, 1, d, q);
            auto tk1 = make_tensor(x, dt, hkv, t1, d, k1), tv1 = make_tensor(x, dt, hkv, t1, d, v1, 2);
            auto tk2 = make_tensor(x, dt, hkv, t2, d, k2, 4), tv2 = make_tensor(x, dt, hkv, t2, d, v2);
            auto to = make_output(x, hq, 1, d);
            auto tn2 = make_ints(x, n2);
            auto tp = make_empty(x, size_t(hkv) * probs_n);
            DecodeArgs a;
            a.q = tq.t, a.o = to.t, a.k1 = tk1.t, a.v1 = tv1.t, a.n1 = n1, a.k2 = tk2.t, a.v2 = tv2.t, a.n2 = tn2.view();
            a.probs = tp.view(), a.probs_n = probs_n, a.splits = splits;
            x.decode(a);
            check_guards(x, to, "o");
            check_guards(x, tp, "probs");
            *probs = read_floats(x, tp, size_t(hkv) * probs_n);
            return read_tensor(x, to);
        };
        std::vector<float> ref_p, got_p, got_p3;
        const auto ref = run(reference(), 0, &ref_p);
        const auto got = run(dev, 0, &got_p);
        const auto got3 = run(dev, 3, &got_p3);
        EXPECT_LE(nmse(ref, got), tol(dt)) << dtype_name(dt);
        EXPECT_LE(nmse(ref, got3), tol(dt)) << dtype_name(dt) << " splits=3";
        EXPECT_LE(nmse(ref_p, got_p), 1e-9) << "probs " << dtype_name(dt);
        EXPECT_LE(nmse(ref_p, got_p3), 1e-9) << "probs splits=3 " << dtype_name(dt);
    }
}

// ---- score, metric, rank, select -----------------------------------------------------------------

TEST_P(VulkanOps, ScoreMatchesReference) {
    Device& dev = device(GetParam());
    for (auto [hq, hkv, len, d, n_keys, dt] : {std::tuple{8, 2, 700, 128, 650, DType::f16}, std::tuple{3, 3, 257, 64, 257, DType::f32}}) {
        auto q = randn(size_t(hq) * 5 * d, 31, 1.5f);
        auto k = randn(size_t(hkv) * len * d, 32);
        if (dt == DType::f16) k = round_to_half(k);
        const int stride = len + 3;
        // Structured bindings are captured by copy, by name: C++17 cannot capture them implicitly.
        auto run = [&, hq = hq, hkv = hkv, len = len, d = d, n_keys = n_keys, dt = dt](Device& x) {
            auto tq = make_tensor(x, DType::f32, hq, 5, d, q, 4);
            auto tk = make_tensor(x, dt, hkv, len, d, k);
            auto ts = make_empty(x, size_t(hkv) * stride);
            ScoreArgs a;
            a.q = tq.t, a.q_row = 4, a.k = tk.t, a.n_keys = n_keys, a.s = ts.view(), a.s_stride = stride;
            x.score(a);
            check_guards(x, ts, "s");
            auto s = read_floats(x, ts, size_t(hkv) * stride);
            for (int h = 0; h < hkv; ++h) s.erase(s.begin() + size_t(h) * n_keys + n_keys, s.begin() + size_t(h) * n_keys + stride);
            return s;
        };
        EXPECT_LE(nmse(run(reference()), run(dev)), 1e-9) << "L" << len;
    }
}

// Scores with many exact ties (quantised) so the tie rules are exercised.
std::vector<float> tied_scores(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<float> s(n);
    for (float& x : s) x = float(rng() % 16) / 1024.0f;
    return s;
}

TEST_P(VulkanOps, MetricRankSelectMatchReference) {
    Device& dev = device(GetParam());
    for (auto [heads, n_global, block, stride] : {std::tuple{2, 1000, 128, 1003}, std::tuple{3, 257, 16, 300}, std::tuple{1, 70, 128, 70}}) {
        const int nb = n_blocks_of(n_global, block);
        const auto s = tied_scores(size_t(heads) * stride, 41);
        // metric
        auto metric = [&, heads = heads, n_global = n_global, block = block, stride = stride](Device& x) {
            auto ts = make_floats(x, s);
            auto th = make_empty(x, size_t(heads) * nb);
            MetricArgs a;
            a.s = ts.view(), a.heads = heads, a.s_stride = stride, a.n_global = n_global, a.block = block, a.alpha = 0.3f, a.h = th.view();
            x.metric(a);
            check_guards(x, th, "h");
            return read_floats(x, th, size_t(heads) * nb);
        };
        EXPECT_LE(nmse(metric(reference()), metric(dev)), 1e-10) << "metric nb=" << nb;
        // rank, on h with ties
        const auto h = tied_scores(size_t(heads) * nb, 42);
        auto rank = [&, heads = heads](Device& x) {
            auto th = make_floats(x, h);
            auto to = make_empty(x, size_t(heads) * nb);
            RankArgs a;
            a.h = th.view(), a.heads = heads, a.n_blocks = nb, a.order = to.view();
            x.rank(a);
            check_guards(x, to, "order");
            return read_ints(x, to, size_t(heads) * nb);
        };
        const auto order = rank(reference());
        EXPECT_EQ(order, rank(dev)) << "rank nb=" << nb;
        // select, with non-increasing budgets by rank
        std::vector<int32_t> budget(size_t(heads) * nb);
        for (int hh = 0; hh < heads; ++hh)
            for (int r = 0; r < nb; ++r) budget[size_t(hh) * nb + r] = std::max(1, block - (r * block) / std::max(1, nb - 1) + (hh % 2));
        const int idx_stride = n_global + 5;
        auto select = [&, heads = heads, n_global = n_global, block = block, stride = stride](Device& x, std::vector<int32_t>* count) {
            auto ts = make_floats(x, s);
            auto to = make_ints(x, order);
            auto tb = make_ints(x, budget);
            auto ti = make_empty(x, size_t(heads) * idx_stride);
            auto tc = make_empty(x, size_t(heads));
            SelectArgs a;
            a.s = ts.view(), a.heads = heads, a.s_stride = stride, a.n_global = n_global, a.block = block;
            a.order = to.view(), a.budget = tb.view(), a.idx = ti.view(), a.idx_stride = idx_stride, a.count = tc.view();
            x.select(a);
            check_guards(x, ti, "idx");
            check_guards(x, tc, "count");
            *count = read_ints(x, tc, size_t(heads));
            return read_ints(x, ti, size_t(heads) * idx_stride);
        };
        std::vector<int32_t> rc, gc;
        const auto ri = select(reference(), &rc);
        const auto gi = select(dev, &gc);
        EXPECT_EQ(rc, gc) << "select count";
        EXPECT_EQ(ri, gi) << "select idx";
    }
}

// ---- gather ---------------------------------------------------------------------------------------

TEST_P(VulkanOps, GatherMatchesReference) {
    Device& dev = device(GetParam());
    for (auto [dt, pad] : {std::pair{DType::f32, 0}, std::pair{DType::f16, 0}, std::pair{DType::f16, 1}}) {
        const int heads = 3, src_len = 90, dst_len = 120, d = 68;
        const auto k = randn(size_t(heads) * src_len * d, 51), v = randn(size_t(heads) * src_len * d, 52);
        const std::vector<int32_t> count = {20, 0, 33};
        std::vector<int32_t> idx(size_t(heads) * 40);
        for (size_t i = 0; i < idx.size(); ++i) idx[i] = int32_t((i * 7) % 60);
        auto run = [&, dt = dt, pad = pad](Device& x, std::vector<int32_t>* lens, std::vector<int32_t>* pos) {
            auto sk = make_tensor(x, dt, heads, src_len, d, k, pad), sv = make_tensor(x, dt, heads, src_len, d, v);
            const auto zeros = std::vector<float>(size_t(heads) * dst_len * d, 0.f);
            auto dk = make_tensor(x, dt, heads, dst_len, d, zeros, pad), dv = make_tensor(x, dt, heads, dst_len, d, zeros, 2 * pad);
            auto ti = make_ints(x, idx), tc = make_ints(x, count);
            auto off = make_ints(x, {5, 7, 80});  // also the length output: aliasing
            auto tp = make_ints(x, std::vector<int32_t>(size_t(heads) * dst_len, -1));
            GatherArgs a;
            a.src_k = sk.t, a.src_v = sv.t, a.dst_k = dk.t, a.dst_v = dv.t, a.src_row0 = 25;
            a.idx = ti.view(), a.idx_stride = 40, a.count = tc.view(), a.dst_off = off.view(), a.dst_len = off.view();
            a.pos_out = tp.view(), a.pos_stride = dst_len, a.pos_base = 1000;
            x.gather(a);
            // then an append without idx and with a uniform count, to the new lengths
            GatherArgs b = a;
            b.idx = {}, b.count = {}, b.uniform_count = 6, b.src_row0 = 3;
            x.gather(b);
            check_guards(x, dk, "dst_k");
            check_guards(x, dv, "dst_v");
            *lens = read_ints(x, off, heads);
            *pos = read_ints(x, tp, size_t(heads) * dst_len);
            auto out = read_tensor(x, dk);
            const auto vv = read_tensor(x, dv);
            out.insert(out.end(), vv.begin(), vv.end());
            return out;
        };
        std::vector<int32_t> rl, gl, rp, gp;
        const auto ref = run(reference(), &rl, &rp);
        const auto got = run(dev, &gl, &gp);
        EXPECT_EQ(rl, gl) << dtype_name(dt) << " pad " << pad;
        EXPECT_EQ(rp, gp) << dtype_name(dt) << " pad " << pad;
        EXPECT_EQ(ref, got) << dtype_name(dt) << " pad " << pad;
    }
}

// ---- colsum ---------------------------------------------------------------------------------------

TEST_P(VulkanOps, ColsumMatchesReference) {
    Device& dev = device(GetParam());
    for (auto [hq, hkv, len, d, dt] : {std::tuple{4, 2, 200, 64, DType::f32}, std::tuple{2, 1, 77, 128, DType::f16}}) {
        auto q = randn(size_t(hq) * len * d, 61, 1.5f);
        auto k = randn(size_t(hkv) * len * d, 62);
        if (dt == DType::f16) k = round_to_half(k);
        auto run = [&, hq = hq, hkv = hkv, len = len, d = d, dt = dt](Device& x) {
            auto tq = make_tensor(x, DType::f32, hq, len, d, q);
            auto tk = make_tensor(x, dt, hkv, len, d, k, 4);
            auto tc = make_empty(x, size_t(hkv) * len);
            ColsumArgs a;
            a.q = tq.t, a.k = tk.t, a.c = tc.view(), a.c_stride = len;
            x.colsum(a);
            check_guards(x, tc, "c");
            return read_floats(x, tc, size_t(hkv) * len);
        };
        EXPECT_LE(nmse(run(reference()), run(dev)), 1e-9) << "L" << len;
    }
}

// ---- determinism, profiling -----------------------------------------------------------------------

TEST_P(VulkanOps, PrefillIsBitwiseDeterministic) {
    Device& dev = device(GetParam());
    const int hq = 4, hkv = 2, len = 260, d = 64;
    const auto q = randn(size_t(hq) * len * d, 71), k = randn(size_t(hkv) * len * d, 72), v = randn(size_t(hkv) * len * d, 73);
    auto run = [&] {
        auto tq = make_tensor(dev, DType::f32, hq, len, d, q);
        auto tk = make_tensor(dev, DType::f16, hkv, len, d, k), tv = make_tensor(dev, DType::f16, hkv, len, d, v);
        auto to = make_output(dev, hq, len, d);
        PrefillArgs a;
        a.q = tq.t, a.k = tk.t, a.v = tv.t, a.o = to.t;
        dev.prefill(a);
        return read_tensor(dev, to);
    };
    const auto a = run(), b = run();
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4));
}

TEST_P(VulkanOps, ProfilingNamesEveryOp) {
    Device& dev = device(GetParam());
    const int d = 64, len = 40;
    auto tq = make_tensor(dev, DType::f32, 2, len, d, randn(size_t(2) * len * d, 81));
    auto tk = make_tensor(dev, DType::f32, 1, len, d, randn(size_t(len) * d, 82));
    auto to = make_output(dev, 2, len, d);
    auto ts = make_empty(dev, len);
    dev.set_profiling(true);
    dev.take_timings();
    PrefillArgs p;
    p.q = tq.t, p.k = tk.t, p.v = tk.t, p.o = to.t;
    dev.prefill(p);
    ScoreArgs s;
    s.q = tq.t, s.q_row = len - 1, s.k = tk.t, s.n_keys = len, s.s = ts.view(), s.s_stride = len;
    dev.score(s);
    const auto t = dev.take_timings();
    dev.set_profiling(false);
    ASSERT_EQ(t.size(), 2u);
    EXPECT_EQ(t[0].op, Op::attend_dense);
    EXPECT_EQ(t[1].op, Op::score);
    for (const auto& x : t) EXPECT_GE(x.ms, 0.0);
}

// ---- fallbacks ------------------------------------------------------------------------------------

// Dense + sparse prefill, decode and score on one device; returns every output concatenated.
std::vector<float> run_feature_mix(Device& dev) {
    const int hq = 4, hkv = 2, len = 150, d = 128;
    const auto q = randn(size_t(hq) * len * d, 91, 1.5f);
    const auto k = round_to_half(randn(size_t(hkv) * len * d, 92)), v = round_to_half(randn(size_t(hkv) * len * d, 93));
    auto tq = make_tensor(dev, DType::f32, hq, len, d, q);
    auto tk = make_tensor(dev, DType::f16, hkv, len, d, k, 1);  // odd row stride: unaligned f16 loads
    auto tv = make_tensor(dev, DType::f16, hkv, len, d, v);
    auto to = make_output(dev, hq, len, d);
    std::vector<float> all;
    PrefillArgs p;
    p.q = tq.t, p.k = tk.t, p.v = tv.t, p.o = to.t;
    dev.prefill(p);
    all = read_tensor(dev, to);
    std::vector<int32_t> cnt;
    const auto idx = kept_lists(hkv, len, 30, len, &cnt, 94);
    auto ki = make_ints(dev, idx), kc = make_ints(dev, cnt);
    p.window = 30, p.kept_idx = ki.view(), p.kept_count = kc.view(), p.kept_stride = len;
    dev.prefill(p);
    auto o2 = read_tensor(dev, to);
    all.insert(all.end(), o2.begin(), o2.end());
    auto tqd = make_tensor(dev, DType::f32, hq, 1, d, std::vector<float>(q.begin(), q.begin() + size_t(hq) * d));
    auto tod = make_output(dev, hq, 1, d);
    DecodeArgs dc;
    dc.q = tqd.t, dc.o = tod.t, dc.k1 = tk.t, dc.v1 = tv.t, dc.n1 = len;
    dev.decode(dc);
    auto o3 = read_tensor(dev, tod);
    all.insert(all.end(), o3.begin(), o3.end());
    auto ts = make_empty(dev, size_t(hkv) * len);
    ScoreArgs s;
    s.q = tq.t, s.q_row = len - 1, s.k = tk.t, s.n_keys = len, s.s = ts.view(), s.s_stride = len;
    dev.score(s);
    auto sc = read_floats(dev, ts, size_t(hkv) * len);
    all.insert(all.end(), sc.begin(), sc.end());
    return all;
}

TEST_P(VulkanOps, Fp16StorageFallbackMatchesNative) {
    Device& native = device(GetParam());
    auto fallback = open_with_env(GetParam(), "TCA_VULKAN_DISABLE_FP16_STORAGE");
    EXPECT_FALSE(vulkan_testing::uses_fp16_storage(*fallback));
    const auto a = run_feature_mix(native), b = run_feature_mix(*fallback);
    // Both read the same f16 bits and convert exactly: identical results.
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4));
}

TEST_P(VulkanOps, NoSubgroupFallbackMatchesNative) {
    Device& native = device(GetParam());
    auto fallback = open_with_env(GetParam(), "TCA_VULKAN_DISABLE_SUBGROUPS");
    EXPECT_FALSE(vulkan_testing::uses_subgroups(*fallback));
    const auto a = run_feature_mix(native), b = run_feature_mix(*fallback);
    // Workgroup reductions may associate differently; attention itself pairs identically.
    EXPECT_LE(nmse(a, b), 1e-12);
}

// ---- errors, pipeline cache, validation -----------------------------------------------------------

TEST_P(VulkanOps, AllocationPastMaximumIsOutOfMemory) {
    Device& dev = device(GetParam());
    try {
        dev.alloc(size_t(dev.info().max_allocation) + 1);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_OUT_OF_MEMORY);
    }
}

TEST_P(VulkanOps, BrokenShaderIsKernelBuildError) {
    Device& dev = device(GetParam());
    try {
        vulkan_testing::build_broken_shader(dev);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_KERNEL_BUILD);
    }
}

TEST_P(VulkanOps, PipelineCacheIsWrittenReusedAndCorruptionIgnored) {
    char tmpl[] = "/tmp/tca-vkcache-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    BackendOptions opt = BackendOptions::from_environment();
    opt.cache_dir = std::string(tmpl) + "/sub";
    auto run_one = [](Device& dev) {
        auto tq = make_tensor(dev, DType::f32, 1, 8, 64, randn(8 * 64, 1));
        auto to = make_output(dev, 1, 8, 64);
        PrefillArgs p;
        p.q = tq.t, p.k = tq.t, p.v = tq.t, p.o = to.t;
        dev.prefill(p);
        dev.finish();
    };
    std::string path;
    {
        auto dev = make_vulkan_device(index_of(GetParam()), opt);
        path = vulkan_testing::pipeline_cache_path(*dev);
        EXPECT_EQ(vulkan_testing::pipeline_cache_bytes_loaded(*dev), 0u);
        run_one(*dev);
    }
    {
        std::ifstream f(path, std::ios::binary | std::ios::ate);
        ASSERT_TRUE(f.good()) << "no cache file at " << path;
        EXPECT_GT(f.tellg(), 16);
    }
    {
        auto dev = make_vulkan_device(index_of(GetParam()), opt);
        EXPECT_GT(vulkan_testing::pipeline_cache_bytes_loaded(*dev), 0u);
        run_one(*dev);
    }
    {
        std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
        f.seekp(std::streamoff(kernel_cache::kHeaderBytes + 20));
        f.write("garbage!", 8);  // payload no longer matches its checksum
    }
    {
        auto dev = make_vulkan_device(index_of(GetParam()), opt);
        EXPECT_EQ(vulkan_testing::pipeline_cache_bytes_loaded(*dev), 0u);
        run_one(*dev);
    }
    std::remove(path.c_str());
    std::remove((std::string(tmpl) + "/sub").c_str());
    std::remove(tmpl);
}

// Performance sanity (not run by default: --gtest_also_run_disabled_tests). Dense prefill at
// L = 4096, 8 query heads / 2 KV heads, d = 128, plus a sparse prefill with window 512 and ~1/3 kept,
// a decode over the same cache and the selection ops; device times from timestamps.
TEST_P(VulkanOps, DISABLED_PerfL4096) {
    Device& dev = device(GetParam());
    const int hq = 8, hkv = 2, d = 128;
    const int len = std::getenv("TCA_PERF_LEN") ? std::atoi(std::getenv("TCA_PERF_LEN")) : 4096;
    auto q = randn(size_t(hq) * len * d, 1), k = randn(size_t(hkv) * len * d, 2), v = randn(size_t(hkv) * len * d, 3);
    for (DType dt : {DType::f32, DType::f16}) {
        auto tq = make_tensor(dev, DType::f32, hq, len, d, q);
        auto tk = make_tensor(dev, dt, hkv, len, d, k), tv = make_tensor(dev, dt, hkv, len, d, v);
        auto to = make_output(dev, hq, len, d);
        std::vector<int32_t> cnt;
        const auto idx = kept_lists(hkv, len, 512, len, &cnt, 5);
        auto ki = make_ints(dev, idx), kc = make_ints(dev, cnt);
        auto ts = make_empty(dev, size_t(hkv) * len);
        auto tqd = make_tensor(dev, DType::f32, hq, 1, d, std::vector<float>(q.begin(), q.begin() + size_t(hq) * d));
        auto tod = make_output(dev, hq, 1, d);
        dev.set_profiling(true);
        dev.take_timings();
        PrefillArgs p;
        p.q = tq.t, p.k = tk.t, p.v = tv.t, p.o = to.t;
        dev.prefill(p);  // warm-up (driver compiles on first use)
        dev.finish();
        dev.take_timings();
        dev.prefill(p);
        PrefillArgs sp = p;
        sp.window = 512, sp.kept_idx = ki.view(), sp.kept_count = kc.view(), sp.kept_stride = len;
        dev.prefill(sp);
        dev.prefill(sp);
        DecodeArgs dc;
        dc.q = tqd.t, dc.o = tod.t, dc.k1 = tk.t, dc.v1 = tv.t, dc.n1 = len;
        dev.decode(dc);
        dev.decode(dc);
        ScoreArgs sc;
        sc.q = tq.t, sc.q_row = len - 1, sc.k = tk.t, sc.n_keys = len, sc.s = ts.view(), sc.s_stride = len;
        dev.score(sc);
        dev.score(sc);
        for (const auto& t : dev.take_timings())
            std::printf("  %s %s L=%d hq=%d hkv=%d d=%d %-14s %10.1f ms\n", GetParam().c_str(), dtype_name(dt), len, hq, hkv,
                        d, op_name(t.op), t.ms);
        dev.set_profiling(false);
    }
}

// Independent ops recorded back to back need no barrier between them, yet each binds absent optional
// buffers (no kept lists, no column sums, no probabilities, no dst_len) that its shader may write.
// Sharing one dummy for them made synchronization validation report RAW/WAR/WAW hazards on it; the
// listener fails this test on any message. Results must match the reference as well.
TEST_P(VulkanOps, IndependentOpsBackToBackAreHazardFree) {
    Device& dev = device(GetParam());
    const int hq = 4, hkv = 2, len = 96, d = 64;
    const auto q = randn(size_t(hq) * len * d, 81), k = randn(size_t(hkv) * len * d, 82), v = randn(size_t(hkv) * len * d, 83);
    const auto q1 = std::vector<float>(q.begin(), q.begin() + size_t(hq) * d);
    auto run = [&](Device& x) {
        auto tq = make_tensor(x, DType::f32, hq, len, d, q), tq1 = make_tensor(x, DType::f32, hq, 1, d, q1);
        auto tk = make_tensor(x, DType::f32, hkv, len, d, k), tv = make_tensor(x, DType::f32, hkv, len, d, v);
        auto o1 = make_output(x, hq, len, d), o2 = make_output(x, hq, len, d);
        auto o3 = make_output(x, hq, 1, d), o4 = make_output(x, hq, 1, d);
        auto tiny = make_tensor(x, DType::f32, 1, 2, d, std::vector<float>(q.begin(), q.begin() + 2 * d));
        std::vector<GuardedTensor> small;
        for (int i = 0; i < 70; ++i) small.push_back(make_output(x, 1, 2, d));
        // Everything below is recorded into one command buffer (a host write would submit it).
        PrefillArgs p;
        p.q = tq.t, p.k = tk.t, p.v = tv.t, p.o = o1.t;
        x.prefill(p);
        p.o = o2.t;
        x.prefill(p);
        DecodeArgs dc;
        dc.q = tq1.t, dc.k1 = tk.t, dc.v1 = tv.t, dc.n1 = len, dc.o = o3.t;
        x.decode(dc);
        dc.o = o4.t;
        x.decode(dc);
        // More independent ops in a row than the backend keeps dummy slots for between barriers (64).
        for (const auto& g : small) {
            PrefillArgs sp;
            sp.q = tiny.t, sp.k = tiny.t, sp.v = tiny.t, sp.o = g.t;
            x.prefill(sp);
        }
        std::vector<float> all;
        for (const auto* g : {&o1, &o2, &o3, &o4}) {
            const auto r = read_tensor(x, *g);
            all.insert(all.end(), r.begin(), r.end());
        }
        for (const auto& g : small) {
            const auto r = read_tensor(x, g);
            all.insert(all.end(), r.begin(), r.end());
        }
        return all;
    };
    const auto ref = run(reference()), got = run(dev);
    expect_finite(got, "outputs");
    EXPECT_LE(nmse(ref, got), 1e-9);
}

// Under TCA_VULKAN_VALIDATION=1 (as CTest runs every test) the layer checks synchronization too.
TEST_P(VulkanOps, SynchronizationValidationIsOnUnderValidation) {
    const char* v = std::getenv("TCA_VULKAN_VALIDATION");
    if (!v || std::string(v) != "1") GTEST_SKIP() << "validation off (set TCA_VULKAN_VALIDATION=1)";
    EXPECT_TRUE(vulkan_testing::synchronization_validation_on(device(GetParam())));
}

// ---- the validation listener (vk_validation_listener.cpp) ------------------------------------------

// Run only as a child of the test below: a missing barrier, and no assertion that could fail.
TEST(VulkanValidation, DISABLED_UnsynchronisedWritesChild) {
    BackendOptions opt = BackendOptions::from_environment();
    opt.vulkan_validation = true;
    auto dev = make_vulkan_device(index_of(vulkan_devices_under_test().at(0)), opt);
    vulkan_testing::record_unsynchronised_writes(*dev);
}

// The same device work with the library's own barriers: nothing to report.
TEST(VulkanValidation, DISABLED_SynchronisedWritesChild) {
    BackendOptions opt = BackendOptions::from_environment();
    opt.vulkan_validation = true;
    auto dev = make_vulkan_device(index_of(vulkan_devices_under_test().at(0)), opt);
    Buffer b = dev->alloc(256);
    dev->fill_zero(BufView{b, 0}, 256);
    dev->fill_zero(BufView{b, 0}, 256);
    dev->finish();
}

// A leak the layer reports only when the harness's shared device is closed, after the last test.
TEST(VulkanValidation, DISABLED_LeakReportedAtCloseChild) { vulkan_testing::leak_buffer(device(vulkan_devices_under_test().at(0))); }

// Runs one of the child tests above in a process of its own (this binary); stdout and stderr together.
std::pair<int, std::string> run_child(const std::string& test) {
    char exe[4096];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return {-1, "readlink(/proc/self/exe) failed"};
    exe[n] = 0;
    const std::string cmd = "TCA_VULKAN_VALIDATION=1 '" + std::string(exe) + "' --gtest_also_run_disabled_tests --gtest_filter=" +
                            test + " 2>&1";
    std::pair<int, std::string> r{-1, ""};
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return {-1, "popen failed"};
    char buf[4096];
    while (size_t k = fread(buf, 1, sizeof buf, p)) r.second.append(buf, k);
    const int status = pclose(p);
    r.first = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

// A validation message fails the test during which it came, though the test asserts nothing; the
// same work done with barriers passes. (CTest runs each test alone, so a check in a test that runs
// "last" could never see another test's messages: the listener checks after every test instead.)
TEST(VulkanValidation, AMessageFailsTheTestThatCausedIt) {
    if (vulkan_devices_under_test().empty()) {
        if (in_ci()) FAIL() << "no Vulkan device in CI";
        GTEST_SKIP() << "no Vulkan device";
    }
    {
        BackendOptions opt = BackendOptions::from_environment();
        opt.vulkan_validation = true;
        auto dev = make_vulkan_device(index_of(vulkan_devices_under_test()[0]), opt);
        if (!vulkan_testing::synchronization_validation_on(*dev)) {
            if (in_ci()) FAIL() << "CI runs with the validation layer and its synchronization validation";
            GTEST_SKIP() << "no validation layer with synchronization validation installed";
        }
    }
    const auto bad = run_child("VulkanValidation.DISABLED_UnsynchronisedWritesChild");
    EXPECT_EQ(bad.first, 1) << bad.second;
    EXPECT_NE(bad.second.find("SYNC-HAZARD-WRITE-AFTER-WRITE"), std::string::npos) << bad.second;
    EXPECT_NE(bad.second.find("Vulkan validation message(s) during this test"), std::string::npos) << bad.second;
    EXPECT_NE(bad.second.find("[  FAILED  ] VulkanValidation.DISABLED_UnsynchronisedWritesChild"), std::string::npos)
        << bad.second;
    const auto good = run_child("VulkanValidation.DISABLED_SynchronisedWritesChild");
    EXPECT_EQ(good.first, 0) << good.second;
    EXPECT_EQ(good.second.find("[vulkan validation]"), std::string::npos) << good.second;
    // What closing the shared devices makes the layer say fails the run, though every test passed.
    const auto late = run_child("VulkanValidation.DISABLED_LeakReportedAtCloseChild");
    EXPECT_EQ(late.first, 1) << late.second;
    EXPECT_NE(late.second.find("[  PASSED  ] 1 test"), std::string::npos) << late.second;
    EXPECT_NE(late.second.find("after the last test, closing the shared devices"), std::string::npos) << late.second;
    EXPECT_NE(late.second.find("VUID-vkDestroyDevice-device-00378"), std::string::npos) << late.second;  // the leak
}

// Messages of a test's own VkInstance (its messenger hands them on) fail the test just the same.
TEST(VulkanValidation, CallersMessagesFailTheTestToo) {
    EXPECT_NONFATAL_FAILURE(
        {
            vulkan_testing::record_validation_message("a message from the caller's messenger");
            check_validation_messages("during this test");
        },
        "a message from the caller's messenger");
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(VulkanOps);
INSTANTIATE_TEST_SUITE_P(Vulkan, VulkanOps, ::testing::ValuesIn(vulkan_devices_under_test()),
                         [](const auto& info) { return safe_name(info.param); });

}  // namespace
}  // namespace tca::detail::test
