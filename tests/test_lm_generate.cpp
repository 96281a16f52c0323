// Greedy generation (lm/generate.h, `tca lm-generate`) and the per-byte bits of `tca lm --per-byte`,
// on the committed model (models/austen; the tests skip without it).
// The decode path is held to the prefill path: the logits a Generator returns after each decode
// step must be those of one forward pass over the whole sequence at that position, on every device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "core/error.h"
#include "io/npy.h"
#include "lm/forward.h"
#include "lm/generate.h"
#include "lm/model.h"
#include "tca/tca.hpp"

namespace tca::detail {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = TCA_SOURCE_DIR;
const fs::path kModel = kSource / "models" / "austen" / "model.json";
const fs::path kText = kSource / "tests" / "data" / "lm" / "fixture_text.bin";

#define REQUIRE_AUSTEN_MODEL() \
    if (!fs::exists(kModel)) GTEST_SKIP() << kModel << " is absent (scripts/lm/train.py writes it)";

std::vector<uint8_t> read_all(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::vector<std::string> devices() {
    std::vector<std::string> names = {"cpu"};
    for (const auto& info : tca::devices())
        if (std::string(info.name) == "opencl:0" || std::string(info.name) == "vulkan:0") names.push_back(info.name);
    return names;
}

fs::path temp_dir(const std::string& name) {
    const fs::path d = fs::temp_directory_path() / fmt::format("tca_lm_generate_{}_{}", name, ::getpid());
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

TEST(LmGenerate, DecodeStepsMatchOneForwardPassOverTheSequence) {
    REQUIRE_AUSTEN_MODEL();
    const lm::Model m = lm::load_model(kModel.string());
    const auto text = read_all(kText);
    ASSERT_GE(text.size(), 96u);
    const int prompt = 80, steps = 12;
    for (const std::string& dev : devices()) {
        tca::Context ctx(dev);
        lm::Generator g(m, ctx, prompt + steps, {});
        std::vector<std::vector<float>> step_logits{g.prefill(text.data(), prompt)};
        for (int i = 0; i < steps - 1; ++i) step_logits.push_back(g.step(text[size_t(prompt + i)]));
        EXPECT_EQ(g.tokens(), prompt + steps - 1);
        lm::ForwardOptions fo;
        fo.keep_logits = true;
        const auto full = lm::forward(m, ctx, text.data(), prompt + steps - 1, fo);
        double worst = 0, scale = 0;
        for (int i = 0; i < steps; ++i) {
            const float* want = full.logits.data() + size_t(prompt - 1 + i) * 256;
            ASSERT_EQ(step_logits[size_t(i)].size(), 256u);
            for (int j = 0; j < 256; ++j) {
                worst = std::max(worst, std::fabs(double(step_logits[size_t(i)][size_t(j)]) - want[j]));
                scale = std::max(scale, std::fabs(double(want[j])));
            }
        }
        // The same float32 arithmetic in another association (one row against a whole window):
        // measured about 1e-5 of the logits' scale.
        EXPECT_LT(worst, 1e-3 * scale) << dev << ": decode-step logits vs the forward pass, scale " << scale;
        EXPECT_GT(scale, 1.0);
    }
}

// A prompt in chunks (chunked dense caches) attends exactly what one call attends: the same logits
// up to float association; TCA chunked runs through compressions and stays close to dense.
TEST(LmGenerate, ChunkedPromptMatchesOneCall) {
    REQUIRE_AUSTEN_MODEL();
    const lm::Model m = lm::load_model(kModel.string());
    const auto text = read_all(kText);
    const int prompt = 200;
    tca::Context ctx("cpu");
    lm::Generator one(m, ctx, prompt + 4, {});
    const auto want = one.prefill(text.data(), prompt);
    const uint8_t want_next = lm::greedy_byte(one.step(text[prompt]));
    for (int chunk : {1, 37, 64, 200}) {
        lm::GenerateOptions go;
        go.chunk = chunk;
        lm::Generator g(m, ctx, prompt + 4, go);
        const auto got = g.prefill(text.data(), prompt);
        double worst = 0, scale = 0;
        for (size_t j = 0; j < 256; ++j)
            worst = std::max(worst, std::fabs(double(got[j]) - want[j])), scale = std::max(scale, std::fabs(double(want[j])));
        EXPECT_LT(worst, 1e-3 * scale) << "chunk " << chunk;
        EXPECT_EQ(lm::greedy_byte(g.step(text[prompt])), want_next) << "chunk " << chunk << ": a decode step after it";
    }
}

TEST(LmGenerate, GreedyIsTheArgmaxLowestByteOnTies) {
    std::vector<float> z(256, 0.f);
    EXPECT_EQ(lm::greedy_byte(z), 0) << "all tied: the lowest byte";
    z[200] = 3.f, z[100] = 3.f;
    EXPECT_EQ(lm::greedy_byte(z), 100);
    z[255] = 3.5f;
    EXPECT_EQ(lm::greedy_byte(z), 255);
}

TEST(LmGenerate, BadCallsAreRefused) {
    REQUIRE_AUSTEN_MODEL();
    const lm::Model m = lm::load_model(kModel.string());
    tca::Context ctx("cpu");
    lm::Generator g(m, ctx, 8, {});
    const uint8_t b[9] = {'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'};
    EXPECT_THROW(g.step('x'), Error) << "a step before the prompt";
    EXPECT_THROW(g.prefill(b, 9), Error) << "a prompt longer than the caches";
    g.prefill(b, 8);
    EXPECT_THROW(g.prefill(b, 1), Error) << "a second prompt";
    EXPECT_THROW(g.step('x'), Error) << "past the caches";
    EXPECT_THROW(lm::generate_greedy(m, ctx, {}, 4, {}), Error) << "an empty prompt";
}

class LmGenerateCli : public ::testing::Test {
protected:
    void SetUp() override {
        if (!fs::exists(kModel)) GTEST_SKIP() << kModel << " is absent";
        dir_ = temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
        const auto text = read_all(kText);
        std::ofstream(dir_ / "prompt.txt", std::ios::binary).write(reinterpret_cast<const char*>(text.data()), 64);
    }
    void TearDown() override {
        if (!dir_.empty()) fs::remove_all(dir_);
    }
    std::string base() const { return "lm-generate --model " + kModel.string() + " --prompt-file " + (dir_ / "prompt.txt").string(); }
    fs::path dir_;
};

TEST_F(LmGenerateCli, PrintsExactlyTheGreedyBytesOnEveryDevice) {
    const lm::Model m = lm::load_model(kModel.string());
    const auto text = read_all(kText);
    const std::vector<uint8_t> prompt(text.begin(), text.begin() + 64);
    tca::Context ctx("cpu");
    const auto want = lm::generate_greedy(m, ctx, prompt, 24, {});
    std::string want_hex;
    for (uint8_t c : want) want_hex += fmt::format("{:02x}", c);
    for (const std::string& dev : devices()) {
        const auto r = test::run_cli(base() + " --max-bytes 24 --dense --device " + dev + " 2>/dev/null | od -An -v -tx1 | tr -d ' \\n'");
        EXPECT_EQ(r.output, want_hex) << dev << ": stdout must hold the 24 generated bytes and nothing else";
    }
    const auto ok = test::run_cli(base() + " --max-bytes 3 --dense --device cpu");
    EXPECT_EQ(ok.code, 0) << ok.output;
    const auto zero = test::run_cli(base() + " --max-bytes 0 --dense --device cpu 2>/dev/null | wc -c");
    EXPECT_EQ(std::stoi(zero.output), 0) << "--max-bytes 0 prints nothing";
}

TEST_F(LmGenerateCli, TcaProfileRunsThroughEvictions) {
    // A fixed-ratio profile with a window shorter than the prompt: selection at prefill, then
    // evictions while the 40 bytes are generated (block 16: two compressions).
    const lm::Model m = lm::load_model(kModel.string());
    tca_params p{};
    p.struct_size = sizeof p;
    ASSERT_EQ(tca_params_init(&p), TCA_OK);
    p.block = 16, p.window = 32;
    tca_profile* prof = nullptr;
    ASSERT_EQ(tca_profile_fixed(&p, m.cfg.n_layers, m.cfg.n_heads, m.cfg.n_kv_heads, m.cfg.head_dim, 0.25, &prof), TCA_OK);
    const std::string path = (dir_ / "p.json").string();
    ASSERT_EQ(tca_profile_save(prof, path.c_str()), TCA_OK);
    tca_profile_destroy(prof);
    for (const std::string& dev : devices()) {
        const auto r = test::run_cli(base() + " --max-bytes 40 --profile " + path + " --device " + dev + " 2>/dev/null | wc -c");
        EXPECT_EQ(std::stoi(r.output), 40) << dev;
        const auto c = test::run_cli(base() + " --max-bytes 40 --profile " + path + " --chunk 24 --device " + dev +
                                     " 2>/dev/null | wc -c");
        EXPECT_EQ(std::stoi(c.output), 40) << dev << " (chunked prompt)";
    }
}

TEST_F(LmGenerateCli, BadInputFailsWithAMessage) {
    auto expect_fail = [](const test::CliRun& r, const std::string& what) {
        EXPECT_NE(r.code, 0) << r.output;
        EXPECT_NE(r.output.find(what), std::string::npos) << "expected '" << what << "' in:\n" << r.output;
    };
    expect_fail(test::run_cli(base() + " --max-bytes 4"), "--profile or --dense");
    expect_fail(test::run_cli(base() + " --max-bytes -1 --dense"), "--max-bytes");
    std::ofstream(dir_ / "empty.txt").close();
    expect_fail(test::run_cli("lm-generate --model " + kModel.string() + " --prompt-file " + (dir_ / "empty.txt").string() +
                              " --max-bytes 4 --dense"),
                "empty");
    expect_fail(test::run_cli("lm-generate --model " + kModel.string() + " --prompt-file " + dir_.string() + " --max-bytes 4 --dense"),
                "directory");
    expect_fail(test::run_cli("lm-generate --model " + kModel.string() + " --prompt-file /nonexistent/p --max-bytes 4 --dense"),
                "/nonexistent/p");
}

TEST_F(LmGenerateCli, PerByteBitsSumToTheReportedBitsPerByte) {
    const std::string npy = (dir_ / "bits.npy").string(), js = (dir_ / "r.json").string();
    const auto r = test::run_cli("lm --model " + kModel.string() + " --text " + kText.string() +
                                 " --context 40 --windows 3 --dense --device cpu --per-byte " + npy + " --json " + js);
    ASSERT_EQ(r.code, 0) << r.output;
    const auto a = io::read_npy(npy);
    ASSERT_EQ(a.type, io::NpyType::f32);
    ASSERT_EQ(a.shape, (std::vector<int64_t>{3, 39}));
    std::vector<float> v(size_t(a.elements()));
    std::memcpy(v.data(), a.data.data(), a.data.size());
    double sum = 0;
    for (float x : v) {
        EXPECT_GE(x, 0.f);
        sum += x;
    }
    std::ifstream f(js);
    const auto j = nlohmann::json::parse(f);
    EXPECT_NEAR(sum / v.size(), j["bits_per_byte"].get<double>(), 1e-5);
    // Each entry is that byte's own bits: window 1, byte 5 against a forward pass of window 1 alone.
    const lm::Model m = lm::load_model(kModel.string());
    const auto text = read_all(kText);
    tca::Context ctx("cpu");
    const auto w1 = lm::forward(m, ctx, text.data() + 40, 40, {});
    EXPECT_NEAR(v[39 + 4], w1.position_bits[4], 1e-5);
    // An output path that is a directory is refused before any work.
    const auto bad = test::run_cli("lm --model " + kModel.string() + " --text " + kText.string() +
                                   " --context 40 --windows 1 --dense --device cpu --per-byte " + dir_.string());
    EXPECT_NE(bad.code, 0) << bad.output;
}


TEST_F(LmGenerateCli, ThenFileIsALaterTurnThroughDecode) {
    // Dense on the reference: turn 2's bytes are what one generation over prompt + turn-1 answer +
    // turn gives (the conversation is the same sequence, fed by decode instead of prefill).
    const lm::Model m = lm::load_model(kModel.string());
    const auto text = read_all(kText);
    const std::vector<uint8_t> prompt(text.begin(), text.begin() + 64);
    const std::vector<uint8_t> turn = {'\n', 'Q', ':', ' '};
    std::ofstream(dir_ / "turn.txt", std::ios::binary).write(reinterpret_cast<const char*>(turn.data()), turn.size());
    tca::Context ctx("cpu");
    const auto first = lm::generate_greedy(m, ctx, prompt, 8, {});
    std::vector<uint8_t> longer = prompt;
    longer.insert(longer.end(), first.begin(), first.end());
    longer.insert(longer.end(), turn.begin(), turn.end());
    const auto second = lm::generate_greedy(m, ctx, longer, 8, {});
    std::string want_hex;
    for (uint8_t c : first) want_hex += fmt::format("{:02x}", c);
    for (uint8_t c : second) want_hex += fmt::format("{:02x}", c);
    const auto r = test::run_cli(base() + " --max-bytes 8 --dense --device cpu --then-file " + (dir_ / "turn.txt").string() +
                                 " 2>/dev/null | od -An -v -tx1 | tr -d ' \\n'");
    EXPECT_EQ(r.output, want_hex) << "stdout: turn 1's 8 bytes, then turn 2's 8 bytes";
    std::ofstream(dir_ / "empty.txt").close();
    const auto bad = test::run_cli(base() + " --max-bytes 8 --dense --device cpu --then-file " + (dir_ / "empty.txt").string());
    EXPECT_NE(bad.code, 0);
    EXPECT_NE(bad.output.find("turn file is empty"), std::string::npos) << bad.output;
}

TEST_F(LmGenerateCli, FixedKeepWritesTheWindowOnlyBaselineWithoutText) {
    const lm::Model m = lm::load_model(kModel.string());
    const std::string path = (dir_ / "w.json").string();
    const auto r = test::run_cli("lm-calibrate --model " + kModel.string() + " --fixed-keep 0.001 --block 64 --window 128 --out " + path);
    ASSERT_EQ(r.code, 0) << r.output;
    tca::Profile p = tca::Profile::load(path);
    tca_params want{};
    want.struct_size = sizeof want;
    ASSERT_EQ(tca_params_init(&want), TCA_OK);
    want.block = 64, want.window = 128;
    tca::Profile ref = tca::Profile::fixed(&want, m.cfg.n_layers, m.cfg.n_heads, m.cfg.n_kv_heads, m.cfg.head_dim, 0.001);
    for (int l = 0; l < m.cfg.n_layers; ++l)
        for (int h = 0; h < m.cfg.n_kv_heads; ++h) EXPECT_EQ(p.keep_ratio(l, h), ref.keep_ratio(l, h)) << l << "," << h;
    EXPECT_NEAR(p.keep_ratio(0, 0), 1.0 / 64, 1e-4) << "below 1/block: about one token per block";
    const auto no_text = test::run_cli("lm-calibrate --model " + kModel.string() + " --out " + (dir_ / "x.json").string());
    EXPECT_NE(no_text.code, 0);
    EXPECT_NE(no_text.output.find("--text"), std::string::npos) << no_text.output;
    for (const char* bad : {"0", "1.5", "-1"}) {
        const auto b = test::run_cli("lm-calibrate --model " + kModel.string() + " --fixed-keep " + bad + " --out " +
                                     (dir_ / "y.json").string());
        EXPECT_NE(b.code, 0) << bad;
        EXPECT_FALSE(fs::exists(dir_ / "y.json")) << bad;
    }
}

}  // namespace
}  // namespace tca::detail
