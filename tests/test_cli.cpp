// The CLI contract, end to end through the built binary: synth -> calibrate -> attend on the
// reference device, and bad input failing with a message, a non-zero exit and no output file.
#include <algorithm>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "cli_run.h"
#include "harness.h"
#include "io/npy.h"

namespace tca {
namespace {

namespace fs = std::filesystem;

using Result = test::CliRun;
Result tca(const std::string& args) { return test::run_cli(args); }

class Cli : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = fs::temp_directory_path() / ("tca_test_cli_" + std::to_string(::getpid()));
        fs::create_directories(dir_);
        const auto r = tca("synth --kind mix --heads 4 --kv-heads 2 --len 600 --dim 32 --seed 3 --out-dir " + d("w") +
                           " --device cpu");
        ASSERT_NE(r.code, 0) << "synth takes no --device";  // CLI11 rejects unknown flags
        const auto s = tca("synth --kind mix --heads 4 --kv-heads 2 --len 600 --dim 32 --seed 3 --out-dir " + d("w"));
        ASSERT_EQ(s.code, 0) << s.output;
        const auto c = tca("calibrate --q " + d("w/q.npy") + " --k " + d("w/k.npy") +
                           " --block 16 --window 64 --device cpu --out " + d("p.json"));
        ASSERT_EQ(c.code, 0) << c.output;
    }
    static std::string d(const std::string& name) { return (dir_ / name).string(); }
    static fs::path dir_;
};
fs::path Cli::dir_;

TEST_F(Cli, AttendWritesOutputSelectionAndStats) {
    const auto r = tca("attend --q " + d("w/q.npy") + " --k " + d("w/k.npy") + " --v " + d("w/v.npy") + " --profile " +
                       d("p.json") + " --device cpu --out " + d("o.npy") + " --selection " + d("s.npy") + " --stats " +
                       d("st.json"));
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("device cpu"), std::string::npos) << "the chosen device is reported";
    const auto o = io::read_npy(d("o.npy"));
    EXPECT_EQ(o.shape, (std::vector<int64_t>{4, 600, 32}));
    const auto s = io::read_npy(d("s.npy"));
    EXPECT_EQ(s.type, io::NpyType::u8);
    EXPECT_EQ(s.shape, (std::vector<int64_t>{2, 600}));
    // The last w = 64 tokens are the window (2), the rest kept (1) or dropped (0).
    for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 600; ++j) EXPECT_EQ(s.data[h * 600 + j] == 2, j >= 536) << h << " " << j;
    std::ifstream f(d("st.json"));
    const auto st = nlohmann::json::parse(f);
    ASSERT_EQ(st["kv_heads"].size(), 2u);
    ASSERT_EQ(st["q_heads"].size(), 4u);
    for (int h = 0; h < 2; ++h) {
        int kept = 0;
        for (int j = 0; j < 600; ++j) kept += s.data[h * 600 + j] != 0;
        EXPECT_EQ(st["kv_heads"][h]["kept_tokens"].get<int>(), kept);
        EXPECT_EQ(st["kv_heads"][h]["kv_bytes_tca"].get<int64_t>(), int64_t(kept) * 2 * 32 * 4);
        EXPECT_EQ(st["kv_heads"][h]["kv_bytes_dense"].get<int64_t>(), 600 * 2 * 32 * 4);
    }
    EXPECT_EQ(st["totals"]["bound_violations"].get<int>(), 0);
}

TEST_F(Cli, DecodeStepsAndDense) {
    auto r = tca("attend --q " + d("w/q.npy") + " --k " + d("w/k.npy") + " --v " + d("w/v.npy") + " --profile " +
                 d("p.json") + " --device cpu --decode-steps 100 --out " + d("od.npy") + " --selection " + d("sd.npy") +
                 " --stats " + d("sd.json"));
    ASSERT_EQ(r.code, 0) << r.output;
    std::ifstream f(d("sd.json"));
    const auto st = nlohmann::json::parse(f);
    EXPECT_EQ(st["decode_steps"].get<int>(), 100);
    EXPECT_EQ(st["totals"]["bound_violations"].get<int>(), 0);
    // 100 steps from a window of 64 with b = 16: 6 compressions, 4 tokens pending.
    EXPECT_EQ(st["kv_heads"][0]["pending_tokens"].get<int>(), 4);
    EXPECT_EQ(st["kv_heads"][0]["ring_tokens"].get<int>(), 64);
    r = tca("attend --q " + d("w/q.npy") + " --k " + d("w/k.npy") + " --v " + d("w/v.npy") +
            " --dense --device cpu --decode-steps 10 --out " + d("odense.npy") + " --selection " + d("sdense.npy"));
    ASSERT_EQ(r.code, 0) << r.output;
    const auto s = io::read_npy(d("sdense.npy"));
    for (auto x : s.data) EXPECT_EQ(x, 2) << "dense keeps every token uncompressed";
}

TEST_F(Cli, BadInputFailsCleanly) {
    // A truncated .npy, a rank-2 .npy, a float64 .npy.
    {
        auto bytes = io::encode_npy(io::make_f32({4, 600, 32}, std::vector<float>(4 * 600 * 32, 0.f)));
        bytes.resize(bytes.size() - 100);
        std::ofstream(d("trunc.npy"), std::ios::binary).write(reinterpret_cast<char*>(bytes.data()), bytes.size());
        io::write_npy(d("rank2.npy"), io::make_f32({600, 32}, std::vector<float>(600 * 32, 0.f)));
    }
    const std::string kv = " --k " + d("w/k.npy") + " --v " + d("w/v.npy");
    struct Case {
        std::string args, message;
    };
    const std::vector<Case> cases = {
        {"attend --q " + d("trunc.npy") + kv + " --dense --device cpu --out " + d("x.npy"), "truncated"},
        {"attend --q " + d("rank2.npy") + kv + " --dense --device cpu --out " + d("x.npy"), "rank"},
        {"attend --q " + d("missing.npy") + kv + " --dense --device cpu --out " + d("x.npy"), "cannot open"},
        {"attend --q " + d("w/q.npy") + kv + " --device cpu --out " + d("x.npy"), "--profile or --dense"},
        {"attend --q " + d("w/k.npy") + " --k " + d("w/k.npy") + " --v " + d("w/v.npy") + " --profile " + d("p.json") +
             " --device cpu --out " + d("x.npy"),
         "profile is for"},
        {"calibrate --q " + d("w/q.npy") + " --k " + d("w/k.npy") + " --block 100 --window 64 --out " + d("x.json"),
         "power of two"},
        {"calibrate --q " + d("w/q.npy") + " --k " + d("w/k.npy") + " --window 600 --out " + d("x.json"), "window 600"},
        {"calibrate --q " + d("w/q.npy") + " --k " + d("w/k.npy") + " --window 64 --tau 0 --out " + d("x.json"), "tau"},
        {"calibrate --q " + d("w/q.npy") + " --k " + d("w/k.npy") + " --window 64 --tau 1.5 --out " + d("x.json"), "tau"},
        {"attend --q " + d("w/q.npy") + kv + " --dense --device nosuch --out " + d("x.npy"), "nosuch"},
        {"synth --kind spiky --out-dir " + d("x"), "unknown synthetic kind"},
    };
    for (const auto& c : cases) {
        const auto r = tca(c.args);
        EXPECT_NE(r.code, 0) << c.args;
        EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
        EXPECT_FALSE(fs::exists(d("x.npy")) || fs::exists(d("x.json")) || fs::exists(d("x"))) << c.args;
    }
    // No temporary files left behind either.
    for (const auto& e : fs::directory_iterator(dir_))
        EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

// tca bench on the reference backend at a tiny size: JSON and CSV are written and parse, with one
// record per (length, profile) and the device facts in every record. (The schema itself is checked
// by scripts/test with scripts/check-bench-json.)
TEST_F(Cli, BenchWritesJsonAndCsv) {
    const auto r = tca("bench --device cpu --lengths 192,256 --heads 2 --kv-heads 1 --dim 32 --window 64 --block 16 "
                       "--keep 0.25 --runs 1 --warmup 0 --calib-length 128 --json " + d("b.json") + " --csv " + d("b.csv"));
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("calibrated:mix"), std::string::npos) << r.output;
    std::ifstream f(d("b.json"));
    const auto j = nlohmann::json::parse(f);
    EXPECT_EQ(j["schema"], "tca-bench");
    EXPECT_EQ(j["schema_version"], 1);
    EXPECT_FALSE(j["library"]["revision"].get<std::string>().empty());
    EXPECT_GT(j["devices"][0]["roofline"]["copy_gbps"].get<double>(), 0);
    ASSERT_EQ(j["records"].size(), 6u) << "2 lengths x (dense, keep=0.25, calibrated)";
    for (const auto& rec : j["records"]) {
        EXPECT_EQ(rec["device"]["api"], "reference");
        EXPECT_GT(rec["prefill_ms"].get<double>(), 0);
        if (rec["method"] == "tca") {
            EXPECT_GE(rec["error"]["worst_bound_slack"].get<double>(), -1e-5) << rec.dump();
        }
    }
    std::ifstream c(d("b.csv"));
    std::string header, line;
    ASSERT_TRUE(std::getline(c, header));
    const auto columns = std::count(header.begin(), header.end(), ',');
    int rows = 0;
    while (std::getline(c, line)) {
        ++rows;
        // Quoted fields hold no commas here (device names), so a plain count matches the header.
        EXPECT_EQ(std::count(line.begin(), line.end(), ','), columns) << line;
    }
    EXPECT_EQ(rows, 6);

    const auto bad = tca("bench --device cpu --lengths 256 --workload spiky");
    EXPECT_NE(bad.code, 0);
    EXPECT_NE(bad.output.find("unknown synthetic kind"), std::string::npos) << bad.output;
}

TEST_F(Cli, WindowLongerThanSequenceMeansDenseForAttend) {
    // A profile with w = 1024 on a 600-token input: nothing outside the window, dense attention.
    std::ifstream f(d("p.json"));
    auto p = nlohmann::json::parse(f);
    p["params"]["window"] = 1024;
    std::ofstream(d("pw.json")) << p.dump();
    const auto r = tca("attend --q " + d("w/q.npy") + " --k " + d("w/k.npy") + " --v " + d("w/v.npy") + " --profile " +
                       d("pw.json") + " --device cpu --out " + d("ow.npy") + " --selection " + d("sw.npy") + " --stats " +
                       d("sw.json"));
    ASSERT_EQ(r.code, 0) << r.output;
    const auto s = io::read_npy(d("sw.npy"));
    for (auto x : s.data) EXPECT_EQ(x, 2);
    std::ifstream g(d("sw.json"));
    const auto st = nlohmann::json::parse(g);
    EXPECT_EQ(st["totals"]["kv_reduction"].get<double>(), 0.0);
    EXPECT_LT(st["totals"]["max_rel_error"].get<double>(), 1e-5);
}


// Issue contract: `tca attend` gives the same selection and cache (S.npy bit for bit) and the same
// output (NMSE <= 1e-9, float32 storage) on the reference and on every OpenCL/Vulkan device, for
// every synthetic kind, with and without --decode-steps.
TEST_F(Cli, AttendAgreesAcrossDevicesOnEveryKind) {
    const std::vector<std::string> kinds = {"sink", "local", "uniform", "bipolar", "retrieval", "random", "mix"};
    for (const auto& kind : kinds) {
        const std::string w = d("k_" + kind);
        auto r = tca("synth --kind " + kind + " --heads 4 --kv-heads 2 --len 700 --dim 64 --seed 4 --out-dir " + w);
        ASSERT_EQ(r.code, 0) << r.output;
        const std::string qkv = " --q " + w + "/q.npy --k " + w + "/k.npy --v " + w + "/v.npy";
        r = tca("calibrate --q " + w + "/q.npy --k " + w + "/k.npy --block 32 --window 128 --device cpu --out " + w +
                "/p.json");
        ASSERT_EQ(r.code, 0) << r.output;
        for (const std::string steps : {"0", "150"}) {
            auto run = [&](const std::string& dev) {
                const std::string tag = w + "/" + test::safe_name(dev) + "_" + steps;
                const auto a = tca("attend" + qkv + " --profile " + w + "/p.json --device " + dev + " --decode-steps " +
                                   steps + " --out " + tag + "_o.npy --selection " + tag + "_s.npy");
                EXPECT_EQ(a.code, 0) << a.output;
                return std::make_pair(io::read_npy(tag + "_o.npy"), io::read_npy(tag + "_s.npy"));
            };
            const auto ref = run("cpu");
            auto as_floats = [](const io::NpyArray& a) {
                std::vector<float> f(a.data.size() / 4);
                std::memcpy(f.data(), a.data.data(), a.data.size());
                return f;
            };
            for (const auto& dev : test::devices_under_test()) {
                const auto got = run(dev);
                const std::string what = kind + " on " + dev + " decode-steps " + steps;
                EXPECT_TRUE(ref.second.data == got.second.data) << what << ": selection/cache file differs";
                EXPECT_LE(test::nmse(as_floats(ref.first), as_floats(got.first)), 1e-9) << what;
            }
        }
    }
}

}  // namespace
}  // namespace tca
