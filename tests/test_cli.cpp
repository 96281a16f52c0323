// The CLI contract, end to end through the built binary: synth -> calibrate -> attend on the
// reference device, and bad input failing with a message, a non-zero exit and no output file.
#include <algorithm>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <iterator>
#include <tuple>

#include "cli_run.h"
#include "harness.h"
#include "io/npy.h"

namespace tca::detail {
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

// --chunk: the prompt in chunks through a chunked cache, with and without decode steps, TCA and
// dense; the same selection file and outputs on every device; the marks follow the final cache.
TEST_F(Cli, AttendChunked) {
    const std::string qkv = " --q " + d("w/q.npy") + " --k " + d("w/k.npy") + " --v " + d("w/v.npy");
    auto as_floats = [](const io::NpyArray& a) {
        std::vector<float> f(a.data.size() / 4);
        std::memcpy(f.data(), a.data.data(), a.data.size());
        return f;
    };
    for (const std::string steps : {"0", "50"}) {
        auto run = [&](const std::string& dev) {
            const std::string tag = d("ch_" + test::safe_name(dev) + "_" + steps);
            const auto r = tca("attend" + qkv + " --profile " + d("p.json") + " --device " + dev + " --chunk 100 --decode-steps " +
                               steps + " --out " + tag + "_o.npy --selection " + tag + "_s.npy --stats " + tag + ".json");
            EXPECT_EQ(r.code, 0) << r.output;
            std::ifstream f(tag + ".json");
            return std::make_tuple(io::read_npy(tag + "_o.npy"), io::read_npy(tag + "_s.npy"), nlohmann::json::parse(f));
        };
        const auto [o_ref, s_ref, st] = run("cpu");
        EXPECT_EQ(st["chunk"].get<int>(), 100);
        EXPECT_EQ(st["totals"]["bound_violations"].get<int>(), 0) << "steps " << steps;
        for (int h = 0; h < 2; ++h) {
            const auto& kv = st["kv_heads"][h];
            const int tail = kv["pending_tokens"].get<int>() + kv["ring_tokens"].get<int>();
            const uint8_t* row = s_ref.data.data() + size_t(h) * 600;
            EXPECT_EQ(std::count(row, row + 600, 1), kv["global_tokens"].get<int>()) << "1 = in G";
            EXPECT_EQ(std::count(row, row + 600, 2), tail) << "2 = uncompressed";
            EXPECT_TRUE(std::all_of(row + 600 - tail, row + 600, [](uint8_t x) { return x == 2; })) << "the newest";
            // No more than b - 1 tokens wait in the partial block after the ring (b = 16, w = 64).
            EXPECT_LE(tail, 64 + 15);
        }
        for (const auto& dev : test::devices_under_test()) {
            const auto [o, s, st_dev] = run(dev);
            EXPECT_TRUE(s_ref.data == s.data) << dev << " steps " << steps << ": selection differs";
            EXPECT_LE(test::nmse(as_floats(o_ref), as_floats(o)), 1e-9) << dev << " steps " << steps;
        }
    }
    // Dense in chunks: the one-call dense outputs, every token uncompressed.
    auto r = tca("attend" + qkv + " --dense --device cpu --chunk 64 --decode-steps 10 --out " + d("chd_o.npy") +
                 " --selection " + d("chd_s.npy"));
    ASSERT_EQ(r.code, 0) << r.output;
    r = tca("attend" + qkv + " --dense --device cpu --decode-steps 10 --out " + d("chd1_o.npy"));
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_LE(test::nmse(as_floats(io::read_npy(d("chd1_o.npy"))), as_floats(io::read_npy(d("chd_o.npy")))), 1e-12);
    for (auto x : io::read_npy(d("chd_s.npy")).data) EXPECT_EQ(x, 2);
    r = tca("attend" + qkv + " --dense --device cpu --chunk 0 --out " + d("chd0.npy"));
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.output.find("--chunk"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(d("chd0.npy")));
}

// --kv-format: K/V stored as f16 or bf16 (the .npy's f32 converted by the spec's rule). The same
// selection and outputs on every device as the reference in that format, the bound holds, the
// output is within the format's error of f32's, and an unknown format is refused.
TEST_F(Cli, AttendKvFormat) {
    const std::string qkv = " --q " + d("w/q.npy") + " --k " + d("w/k.npy") + " --v " + d("w/v.npy");
    auto as_floats = [](const io::NpyArray& a) {
        std::vector<float> f(a.data.size() / 4);
        std::memcpy(f.data(), a.data.data(), a.data.size());
        return f;
    };
    auto run = [&](const std::string& dev, const std::string& fmt) {
        const std::string tag = d("kf_" + test::safe_name(dev) + "_" + fmt);
        const auto r = tca("attend" + qkv + " --profile " + d("p.json") + " --device " + dev + " --kv-format " + fmt +
                           " --decode-steps 20 --out " + tag + "_o.npy --selection " + tag + "_s.npy --stats " + tag + ".json");
        EXPECT_EQ(r.code, 0) << r.output;
        std::ifstream f(tag + ".json");
        return std::make_tuple(as_floats(io::read_npy(tag + "_o.npy")), io::read_npy(tag + "_s.npy").data,
                               nlohmann::json::parse(f));
    };
    const auto [o32, s32, st32] = run("cpu", "f32");
    for (const std::string fmt : {"f16", "bf16"}) {
        const auto [o_ref, s_ref, st] = run("cpu", fmt);
        EXPECT_EQ(st["totals"]["bound_violations"].get<int>(), 0) << fmt;
        const double err = test::nmse(o32, o_ref);
        EXPECT_GT(err, 0.0) << fmt << " must actually round K/V";
        EXPECT_LT(err, fmt == "bf16" ? 1e-3 : 1e-5) << fmt;
        for (const auto& dev : test::devices_under_test()) {
            const auto [o, s, st_dev] = run(dev, fmt);
            EXPECT_TRUE(s_ref == s) << dev << " " << fmt << ": selection differs";
            EXPECT_LE(test::nmse(o_ref, o), 1e-9) << dev << " " << fmt;
        }
    }
    const auto bad = tca("attend" + qkv + " --dense --device cpu --kv-format q5_1 --out " + d("kf_bad.npy"));
    EXPECT_NE(bad.code, 0);
    EXPECT_NE(bad.output.find("--kv-format"), std::string::npos) << bad.output;
    EXPECT_FALSE(fs::exists(d("kf_bad.npy")));
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

// Item 12 of issue 11: TCA_DEVICE naming no device is an error, not a default.
TEST_F(Cli, UnknownTcaDeviceIsAnError) {
    const char* old = std::getenv("TCA_DEVICE");
    const std::string saved = old ? old : "";
    ::setenv("TCA_DEVICE", "nope", 1);
    const auto r = tca("devices");
    const auto a = tca("attend --q " + d("w/q.npy") + " --k " + d("w/k.npy") + " --v " + d("w/v.npy") +
                       " --dense --out " + d("x.npy"));
    if (old) ::setenv("TCA_DEVICE", saved.c_str(), 1);
    else ::unsetenv("TCA_DEVICE");
    EXPECT_NE(r.code, 0) << r.output;
    EXPECT_EQ(r.output.find("default: nope"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("TCA_ERROR_DEVICE_NOT_FOUND"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("TCA_DEVICE='nope'"), std::string::npos) << r.output;
    EXPECT_NE(a.code, 0) << a.output;
    EXPECT_NE(a.output.find("TCA_DEVICE='nope'"), std::string::npos) << a.output;
    EXPECT_FALSE(fs::exists(d("x.npy")));
}

// Integer flags are checked as text: negative, zero where it makes no sense, past the type's range,
// or not decimal -- each is refused with the flag named, never wrapped or truncated.
TEST_F(Cli, IntegerFlagsAreRangeChecked) {
    const std::string qkv = " --q " + d("w/q.npy") + " --k " + d("w/k.npy") + " --v " + d("w/v.npy");
    const std::string synth = "synth --kind mix --out-dir " + d("x");
    const std::string lm = "lm --model " + d("none.json") + " --text " + d("none.txt") + " --dense";
    const std::string lmc = "lm-calibrate --model " + d("none.json") + " --text " + d("none.txt") + " --out " + d("x.json");
    const std::string cal = "calibrate --q " + d("w/q.npy") + " --k " + d("w/k.npy") + " --out " + d("x.json");
    const std::string bench = "bench --device cpu --json " + d("x.json");
    struct Case {
        std::string args, flag;
    };
    const std::vector<Case> cases = {
        {synth + " --seed=-1", "--seed"},
        {synth + " --seed=18446744073709551616", "--seed"},  // 2^64
        {synth + " --seed=0x10", "--seed"},
        {synth + " --len=-5", "--len"},
        {synth + " --len=0", "--len"},
        {synth + " --len=4294967297", "--len"},  // 2^32 + 1: would truncate to 1
        {synth + " --heads=-4", "--heads"},
        {synth + " --kv-heads=0", "--kv-heads"},
        {synth + " --dim=010", "--dim"},  // not octal 8
        {cal + " --window=-64", "--window"},
        {cal + " --block=4294967312", "--block"},  // 2^32 + 16
        {"attend" + qkv + " --dense --out " + d("x.npy") + " --decode-steps=-1", "--decode-steps"},
        {lm + " --windows=-1", "--windows"},
        {lm + " --threads=-1", "--threads"},
        {lm + " --threads=100000", "--threads"},
        {lm + " --offset=-1", "--offset"},
        {lm + " --context=0", "--context"},
        {lm + " --offset=99999999999999999999", "--offset"},
        {lmc + " --threads=-2", "--threads"},
        {lmc + " --context=-4096", "--context"},
        {bench + " --lengths=256,-5", "--lengths"},
        {bench + " --lengths=0", "--lengths"},
        {bench + " --lengths=99999999999", "--lengths"},
        {bench + " --seed=-1", "--seed"},
        {bench + " --seed=4294967296", "--seed"},
        {bench + " --runs=0", "--runs"},
        {bench + " --warmup=-1", "--warmup"},
        {bench + " --heads=2147483648", "--heads"},
    };
    for (const auto& c : cases) {
        const auto r = tca(c.args);
        EXPECT_NE(r.code, 0) << c.args << "\n" << r.output;
        EXPECT_NE(r.output.find(c.flag), std::string::npos) << c.args << "\n" << r.output;
        EXPECT_TRUE(r.output.find("out of range") != std::string::npos ||
                    r.output.find("not a decimal integer") != std::string::npos)
            << c.args << "\n" << r.output;
        EXPECT_FALSE(fs::exists(d("x")) || fs::exists(d("x.json")) || fs::exists(d("x.npy"))) << c.args;
    }
    // The edges themselves are accepted.
    const auto ok = tca("synth --kind mix --heads 2 --kv-heads 1 --len 8 --dim 4 --seed=18446744073709551615 --out-dir " +
                        d("edge"));
    EXPECT_EQ(ok.code, 0) << ok.output;
}

// Output files: an --out that is a symbolic link or a fifo is refused and left alone, and a
// multi-file write that cannot complete leaves the files that were there as they were.
TEST_F(Cli, OutputsGoToRegularFilesOnly) {
    const std::string qkv = " --q " + d("w/q.npy") + " --k " + d("w/k.npy") + " --v " + d("w/v.npy");
    std::ofstream(d("target.npy")) << "keep";
    fs::remove(d("link.npy"));
    fs::create_symlink(d("target.npy"), d("link.npy"));
    auto r = tca("attend" + qkv + " --dense --device cpu --out " + d("link.npy"));
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.output.find("symbolic link"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("TCA_ERROR_IO"), std::string::npos) << r.output;
    EXPECT_TRUE(fs::is_symlink(d("link.npy")));
    std::ifstream t(d("target.npy"));
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(t), {}), "keep");

    fs::remove(d("fifo.npy"));
    ASSERT_EQ(::mkfifo(d("fifo.npy").c_str(), 0600), 0);
    r = tca("attend" + qkv + " --dense --device cpu --out " + d("o_ok.npy") + " --stats " + d("fifo.npy"));
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.output.find("fifo"), std::string::npos) << r.output;
    EXPECT_TRUE(fs::is_fifo(d("fifo.npy")));
    EXPECT_FALSE(fs::exists(d("o_ok.npy"))) << "nothing of a failed command is written";

    // synth writes q, k, v together: k.npy cannot be written (a directory is in the way), so the
    // q.npy that was there must survive untouched.
    const std::string out = d("synth_existing");
    fs::create_directories(out + "/k.npy/in_the_way");
    std::ofstream(out + "/q.npy") << "previous q";
    r = tca("synth --kind mix --heads 2 --kv-heads 1 --len 16 --dim 4 --out-dir " + out);
    EXPECT_NE(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("k.npy"), std::string::npos) << r.output;
    std::ifstream q(out + "/q.npy");
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(q), {}), "previous q");
    EXPECT_FALSE(fs::exists(out + "/v.npy"));
}

// Whatever fails -- the JSON parser, a path that is a directory -- the CLI prints one clean line
// with a tca status, never the text of a library exception.
TEST_F(Cli, FailuresPrintATcaStatusNotALibraryException) {
    const std::string kv = " --k " + d("w/k.npy") + " --v " + d("w/v.npy");
    std::ifstream f(d("p.json"));
    std::string text((std::istreambuf_iterator<char>(f)), {});
    const auto tau = text.find("\"tau\"");
    ASSERT_NE(tau, std::string::npos);
    const auto colon = text.find(':', tau), end = text.find_first_of(",}", colon);
    text.replace(colon + 1, end - colon - 1, " 1e400");
    std::ofstream(d("p_overflow.json")) << text;
    fs::create_directories(d("a_dir"));
    struct Case {
        std::string args, needle;
    };
    const std::vector<Case> cases = {
        {"attend --q " + d("w/q.npy") + kv + " --profile " + d("p_overflow.json") + " --device cpu --out " + d("x.npy"),
         "TCA_ERROR_IO"},
        {"attend --q " + d("w/q.npy") + kv + " --profile " + d("a_dir") + " --device cpu --out " + d("x.npy"), "directory"},
        {"attend --q " + d("a_dir") + kv + " --dense --device cpu --out " + d("x.npy"), "directory"},
        {"calibrate --q " + d("a_dir") + " --k " + d("w/k.npy") + " --window 64 --out " + d("x.json"), "directory"},
        {"lm --model " + d("a_dir") + " --text " + d("a_dir") + " --dense", "directory"},
    };
    for (const auto& c : cases) {
        const auto r = tca(c.args);
        EXPECT_NE(r.code, 0) << c.args;
        EXPECT_NE(r.output.find("tca: error (TCA_ERROR_"), std::string::npos) << c.args << "\n" << r.output;
        EXPECT_EQ(r.output.find("TCA_ERROR_INTERNAL"), std::string::npos) << c.args << "\n" << r.output;
        EXPECT_NE(r.output.find(c.needle), std::string::npos) << c.args << "\n" << r.output;
        for (const char* raw : {"json.exception", "basic_string", "std::", "terminate", "what()"})
            EXPECT_EQ(r.output.find(raw), std::string::npos) << c.args << "\n" << r.output;
        EXPECT_FALSE(fs::exists(d("x.npy")) || fs::exists(d("x.json"))) << c.args;
    }
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

// tca bench --decode-only: one dense and one TCA record per length, decode timed, prefill not; the
// bytes per step and the copy share are reported (TCA reads fewer bytes than dense).
TEST_F(Cli, BenchDecodeOnly) {
    const auto r = tca("bench --device cpu --lengths 256,320 --heads 4 --kv-heads 2 --dim 32 --window 64 --block 16 "
                       "--keep 0.25 --runs 2 --warmup 1 --decode-steps 3 --decode-only --json " + d("d.json") +
                       " --csv " + d("d.csv"));
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("copy%"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("calibrated"), std::string::npos) << "decode-only measures the fixed ratios";
    std::ifstream f(d("d.json"));
    const auto j = nlohmann::json::parse(f);
    EXPECT_TRUE(j["config"]["decode_only"].get<bool>());
    ASSERT_EQ(j["records"].size(), 4u) << "2 lengths x (dense, keep=0.25)";
    double dense_bytes = 0;
    for (const auto& rec : j["records"]) {
        EXPECT_TRUE(rec["decode_only"].get<bool>());
        EXPECT_EQ(rec["prefill_ms"].get<double>(), 0);
        EXPECT_GT(rec["decode_ms"].get<double>(), 0);
        const double bytes = rec["decode_kv_bytes_per_step"].get<double>();
        EXPECT_GT(rec["decode_copy_share"].get<double>(), 0);
        if (rec["method"] == "dense") {
            dense_bytes = bytes;
            EXPECT_EQ(bytes, 2.0 * 2 * rec["length"].get<int>() * 32 * 2) << "f16 K and V of every row";
            EXPECT_LT(rec["error"]["dense_nmse_decode"].get<double>(), 1e-9);
        } else {
            EXPECT_GT(bytes, 0);
            EXPECT_LT(bytes, dense_bytes) << "TCA's step reads G + window only";
        }
    }
    std::ifstream c(d("d.csv"));
    std::string header;
    ASSERT_TRUE(std::getline(c, header));
    EXPECT_NE(header.find("decode_copy_share"), std::string::npos);
}

// tca bench --chunk: per length one dense and one TCA record of the prompt fed in chunks through
// chunked caches; the peak K/V held, TCA below dense; the fields in the JSON and the CSV.
TEST_F(Cli, BenchChunk) {
    const auto r = tca("bench --device cpu --lengths 300,400 --heads 2 --kv-heads 1 --dim 32 --window 64 --block 16 "
                       "--keep 0.25 --runs 1 --warmup 0 --no-calibrate --chunk 96 --json " + d("ch.json") + " --csv " + d("ch.csv"));
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("peak KV"), std::string::npos) << r.output;
    std::ifstream f(d("ch.json"));
    const auto j = nlohmann::json::parse(f);
    EXPECT_EQ(j["config"]["chunk"].get<int>(), 96);
    EXPECT_NE(j["command"].get<std::string>().find("--chunk 96"), std::string::npos);
    ASSERT_EQ(j["records"].size(), 4u) << "2 lengths x (dense, keep=0.25)";
    for (const auto& rec : j["records"]) {
        EXPECT_EQ(rec["chunk"].get<int>(), 96);
        EXPECT_GT(rec["prefill_ms"].get<double>(), 0);
        const double peak = rec["peak_kv_bytes"].get<double>(), dense = rec["peak_kv_dense_bytes"].get<double>();
        EXPECT_EQ(dense, 2.0 * 32 * 2 * rec["length"].get<int>()) << "f16 K and V of every prompt token";
        if (rec["method"] == "dense") {
            EXPECT_EQ(peak, dense);
        } else {
            // |G| + (b - 1) + w + chunk tokens at most, G at most a quarter-ish of the compressed blocks.
            EXPECT_LE(peak, 2.0 * 32 * 2 * (0.5 * rec["length"].get<int>() + 15 + 64 + 96)) << rec.dump();
            EXPECT_LT(peak, dense);
            EXPECT_GT(rec["prefill_speedup"].get<double>(), 0);
        }
    }
    std::ifstream c(d("ch.csv"));
    std::string header;
    ASSERT_TRUE(std::getline(c, header));
    EXPECT_NE(header.find("peak_kv_bytes"), std::string::npos);
    const auto bad = tca("bench --device cpu --chunk 64 --decode-only --lengths 300");
    EXPECT_NE(bad.code, 0) << "--chunk and --decode-only exclude each other";
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
}  // namespace tca::detail
