// OpenCL-specific checks: program cache, build failures, allocation limits, and the TCA ops
// (sparse prefill, decode segments/probs, score, metric, rank, select, gather, colsum) against
// the CPU reference on a few small shapes, plus run-to-run determinism and profiling records.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <random>

#include "backends/opencl/opencl_testing.h"
#include "device/kernel_cache.h"
#include "device/backends.h"
#include "harness.h"
#include "op_runs.h"

namespace tca::detail::test {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> opencl_devices_under_test() {
    std::vector<std::string> out;
    for (const auto& n : devices_under_test())
        if (n.rfind("opencl:", 0) == 0) out.push_back(n);
    return out;
}

int index_of(const std::string& name) { return std::stoi(name.substr(name.find(':') + 1)); }

// A fresh, empty directory removed at the end of the test.
struct TempDir {
    fs::path path;
    TempDir() {
        std::random_device rd;
        path = fs::temp_directory_path() / ("tca-ocl-test-" + std::to_string(rd()) + std::to_string(rd()));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::vector<fs::path> files() const {
        std::vector<fs::path> v;
        for (const auto& e : fs::directory_iterator(path)) v.push_back(e.path());
        return v;
    }
};

// A cheap op whose program is small: metric on a few blocks.
void run_small_op(Device& dev) {
    auto s = make_floats(dev, std::vector<float>(64, 0.25f));
    auto h = make_empty(dev, 4);
    MetricArgs a;
    a.s = s.view(), a.heads = 1, a.s_stride = 64, a.n_global = 64, a.block = 16, a.h = h.view();
    dev.metric(a);
    const auto v = read_floats(dev, h, 4);
    EXPECT_NEAR(v[0], 0.5 * 4.0 + 0.5 * (1.0 - 1.0 / 16), 1e-5);
}

class OpenCLBackend : public ::testing::TestWithParam<std::string> {
protected:
    Device& dev() { return device(GetParam()); }
    std::unique_ptr<Device> open(const std::string& cache_dir) {
        BackendOptions o;
        o.cache_dir = cache_dir;
        return make_opencl_device(index_of(GetParam()), o);
    }
};

TEST_P(OpenCLBackend, SecondOpenLoadsFromCache) {
    TempDir dir;
    {
        auto d = open(dir.path.string());
        run_small_op(*d);
        const auto st = opencl_testing::cache_stats(*d);
        EXPECT_EQ(st.built, 1);
        EXPECT_EQ(st.stored, 1);
        EXPECT_EQ(st.loaded, 0);
    }
    ASSERT_EQ(dir.files().size(), 1u);  // no temporary files left behind
    auto d = open(dir.path.string());
    run_small_op(*d);
    const auto st = opencl_testing::cache_stats(*d);
    EXPECT_EQ(st.loaded, 1);
    EXPECT_EQ(st.built, 0);
    EXPECT_EQ(st.rejected, 0);
}

TEST_P(OpenCLBackend, CorruptCacheEntryIsRebuilt) {
    TempDir dir;
    run_small_op(*open(dir.path.string()));
    ASSERT_EQ(dir.files().size(), 1u);
    const fs::path entry = dir.files()[0];
    const auto good_size = fs::file_size(entry);
    auto rebuilt_then_loaded = [&](const char* what) {
        {
            auto d = open(dir.path.string());
            run_small_op(*d);
            const auto st = opencl_testing::cache_stats(*d);
            EXPECT_EQ(st.rejected, 1) << what;
            EXPECT_EQ(st.built, 1) << what;
            EXPECT_EQ(st.stored, 1) << what;
        }
        auto d = open(dir.path.string());
        run_small_op(*d);
        EXPECT_EQ(opencl_testing::cache_stats(*d).loaded, 1) << what;
    };
    // Garbage.
    std::ofstream(entry, std::ios::binary | std::ios::trunc) << "definitely not a program binary";
    rebuilt_then_loaded("garbage");
    // Truncated.
    fs::resize_file(entry, good_size / 2);
    rebuilt_then_loaded("truncated");
    // One payload byte flipped.
    {
        std::fstream f(entry, std::ios::binary | std::ios::in | std::ios::out);
        f.seekp(std::streamoff(good_size - 7));
        f.put('\x5a');
    }
    rebuilt_then_loaded("flipped byte");
    // A well-formed entry whose payload is not a binary: the driver itself must refuse it.
    {
        std::ifstream in(entry, std::ios::binary);
        const std::vector<unsigned char> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        uint64_t key = 0;
        ASSERT_TRUE(kernel_cache::peek_key(file, &key));
        const std::string payload(4096, '\x3c');
        const auto forged = kernel_cache::encode(key, payload.data(), payload.size());
        std::ofstream f(entry, std::ios::binary | std::ios::trunc);
        f.write(reinterpret_cast<const char*>(forged.data()), std::streamsize(forged.size()));
    }
    rebuilt_then_loaded("payload refused by the driver");
}

TEST_P(OpenCLBackend, EmptyCacheDirDisablesCaching) {
    auto d = open("");
    run_small_op(*d);
    const auto st = opencl_testing::cache_stats(*d);
    EXPECT_EQ(st.built, 1);
    EXPECT_EQ(st.stored, 0);
    EXPECT_EQ(st.loaded, 0);
}

TEST_P(OpenCLBackend, UnwritableCacheDirIsNotFatal) {
    TempDir dir;
    const fs::path blocker = dir.path / "file";
    std::ofstream(blocker) << "x";  // a file where the cache directory should be
    auto d = open((blocker / "cache").string());
    run_small_op(*d);
    EXPECT_EQ(opencl_testing::cache_stats(*d).stored, 0);
}

TEST_P(OpenCLBackend, BuildFailureReportsKernelBuildWithLog) {
    auto d = open("");
    try {
        opencl_testing::build_source(*d, "__kernel void broken(__global float* x) { x[0] = undeclared_name; }\n", "");
        FAIL() << "a broken kernel built";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_KERNEL_BUILD);
        EXPECT_NE(std::string(e.what()).find("build log"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("undeclared_name"), std::string::npos) << e.what();
    }
}

TEST_P(OpenCLBackend, AllocationPastMaximumIsOutOfMemory) {
    try {
        dev().alloc(dev().info().max_allocation + 1);
        FAIL() << "allocation past the maximum succeeded";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_OUT_OF_MEMORY);
    }
}

TEST_P(OpenCLBackend, DeviceInfo) {
    const auto& i = dev().info();
    EXPECT_EQ(i.name, GetParam());
    EXPECT_EQ(i.api, Api::opencl);
    EXPECT_FALSE(i.device.empty());
    EXPECT_GT(i.global_memory, 0u);
    EXPECT_GT(i.max_allocation, 0u);
    EXPECT_TRUE(i.fp16_storage);
}

// ---- ops against the reference (the runners are in op_runs.h) -------------------------------

using namespace op_runs;

TEST_P(OpenCLBackend, SparsePrefillMatchesReference) {
    const SparseCase cases[] = {
        {{4, 2, 300, 64, DType::f32}, 300, 32, 0.2},
        {{4, 1, 517, 128, DType::f16}, 200, 64, 0.1},
        {{2, 2, 260, 64, DType::f32}, 100, 1, 0.5},
        {{8, 1, 333, 64, DType::f16}, 333, 500, 0.3},  // window wider than the context: dense
    };
    for (const auto& c : cases) {
        const auto ref = run_sparse(reference(), c, 0);
        const auto got = run_sparse(dev(), c, 4);
        expect_finite(got, "sparse prefill");
        EXPECT_LE(nmse(ref, got), tolerance(c.s.dtype)) << "L=" << c.s.len << " window=" << c.window;
        EXPECT_EQ(got, run_sparse(dev(), c, 4)) << "not deterministic";
    }
}

TEST_P(OpenCLBackend, DecodeTwoSegmentsAndProbsMatchReference) {
    const DecodeCase cases[] = {
        {{4, 2, 200, 64, DType::f32}, 150, 300, {0, 257}, 150, 0},
        {{8, 2, 129, 128, DType::f16}, 129, 64, {64, 1}, 100, 0},
        {{4, 1, 40, 64, DType::f32}, 0, 1000, {999}, 0, 7},
        {{2, 2, 1000, 64, DType::f16}, 1000, 2000, {1500, 3}, 64, 5},
    };
    for (const auto& c : cases) {
        const auto [ro, rp] = run_decode(reference(), c);
        const auto [go, gp] = run_decode(dev(), c);
        expect_finite(go, "decode o");
        EXPECT_LE(nmse(ro, go), tolerance(c.s.dtype)) << "n1=" << c.n1;
        if (c.probs_n) {
            expect_finite(gp, "probs");
            EXPECT_LE(nmse(rp, gp), 1e-9) << "probs n1=" << c.n1;
        }
        const auto [go2, gp2] = run_decode(dev(), c);
        EXPECT_EQ(go, go2) << "not deterministic";
        EXPECT_EQ(gp, gp2) << "not deterministic";
    }
}

// Only the probs rows differ from the plain decode: check the no-probs path too.
TEST_P(OpenCLBackend, DecodeWithoutProbs) {
    DecodeCase c{{4, 2, 100, 64, DType::f32}, 100, 10, {3, 0}, 0, 0};
    EXPECT_LE(nmse(run_decode(reference(), c).first, run_decode(dev(), c).first), 1e-9);
}

TEST_P(OpenCLBackend, ScoreMatchesReference) {
    const std::tuple<Shape, int, int> cases[] = {
        {{4, 1, 5000, 128, DType::f32}, 2, 4999},
        {{2, 2, 700, 64, DType::f16}, 0, 700},
        {{8, 2, 333, 64, DType::f32}, 1, 1},
    };
    for (const auto& [s, row, n] : cases) {
        const auto ref = run_score(reference(), s, row, n);
        const auto got = run_score(dev(), s, row, n);
        EXPECT_LE(nmse(ref, got), 1e-9) << "n_keys=" << n;
        EXPECT_EQ(got, run_score(dev(), s, row, n)) << "not deterministic";
    }
}

TEST_P(OpenCLBackend, MetricRankSelectMatchReference) {
    for (const SelectCase c : {SelectCase{2, 1000, 128, 1003}, SelectCase{1, 64, 8, 64}, SelectCase{3, 4100, 16, 4200},
                               SelectCase{1, 77, 128, 80}}) {
        const auto s = fake_scores(c.heads, c.stride, 31);
        const auto rh = run_metric(reference(), c, s), gh = run_metric(dev(), c, s);
        for (size_t i = 0; i < rh.size(); ++i) EXPECT_NEAR(rh[i], gh[i], 1e-6 + 1e-5 * std::abs(rh[i])) << i;
        // rank, on the reference's h with ties added
        auto h = rh;
        for (size_t i = 0; i < h.size(); i += 5) h[i] = 0.25f;
        const auto order = run_rank(reference(), c, h);
        EXPECT_EQ(order, run_rank(dev(), c, h));
        const auto budget = select_budget(c);
        EXPECT_EQ(run_select(reference(), c, s, order, budget), run_select(dev(), c, s, order, budget))
            << "n_global=" << c.n_global;
    }
}

TEST_P(OpenCLBackend, GatherMatchesReference) {
    for (DType dt : {DType::f32, DType::f16}) EXPECT_EQ(run_gather(reference(), dt), run_gather(dev(), dt)) << dtype_name(dt);
}

TEST_P(OpenCLBackend, ColsumMatchesReference) {
    for (const Shape& s : {Shape{4, 2, 333, 64, DType::f32}, Shape{2, 1, 200, 128, DType::f16}, Shape{1, 1, 1, 64, DType::f32}}) {
        const auto ref = run_colsum(reference(), s);
        const auto got = run_colsum(dev(), s);
        EXPECT_LE(nmse(ref, got), 1e-9) << "L=" << s.len;
        EXPECT_EQ(got, run_colsum(dev(), s)) << "not deterministic";
    }
}

// Head dims other than the tuned 64 / 128: the smallest, an odd multiple of 4, the largest.
TEST_P(OpenCLBackend, OtherHeadDims) {
    for (int dim : {36, 256}) {
        const Shape s{4, 2, 70, dim, DType::f16};
        EXPECT_LE(nmse(run_dense_prefill(reference(), s), run_dense_prefill(dev(), s)), 1e-6) << "prefill d=" << dim;
        const DecodeCase c{s, 50, 30, {30, 7}, 20, 0};
        const auto [ro, rp] = run_decode(reference(), c);
        const auto [go, gp] = run_decode(dev(), c);
        EXPECT_LE(nmse(ro, go), 1e-6) << "decode d=" << dim;
        EXPECT_LE(nmse(rp, gp), 1e-9) << "probs d=" << dim;
        EXPECT_LE(nmse(run_score(reference(), s, 1, 70), run_score(dev(), s, 1, 70)), 1e-9) << "score d=" << dim;
        EXPECT_LE(nmse(run_colsum(reference(), s), run_colsum(dev(), s)), 1e-9) << "colsum d=" << dim;
    }
}

TEST_P(OpenCLBackend, ProfilingRecordsOneTimingPerOp) {
    Device& d = dev();
    d.take_timings();
    d.set_profiling(true);
    run_small_op(d);
    run_score(d, {2, 1, 100, 64, DType::f32}, 0, 100);
    d.set_profiling(false);
    run_small_op(d);
    const auto t = d.take_timings();
    ASSERT_EQ(t.size(), 2u);
    EXPECT_EQ(t[0].op, Op::metric);
    EXPECT_EQ(t[1].op, Op::score);
    for (const auto& r : t) EXPECT_GE(r.ms, 0.0);
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OpenCLBackend);
INSTANTIATE_TEST_SUITE_P(Devices, OpenCLBackend, ::testing::ValuesIn(opencl_devices_under_test()),
                         [](const auto& info) { return safe_name(info.param); });

}  // namespace
}  // namespace tca::detail::test
