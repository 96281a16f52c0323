// Hostile input files through the built `tca` binary: each must end the run with TCA_ERROR_IO, a
// message naming the file and a non-zero exit, in well under the time limit -- never a crash, a
// hang or a raw exception of a library. (Issue 11: 128-byte .npy files whose shape multiplies to
// 2^64 crashed `tca attend --dense --device cpu` or hung it.)
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/npy.h"

namespace tca::detail {
namespace {

namespace fs = std::filesystem;

struct BoundedRun {
    int code = -1;  // exit status (the shell's 128 + N for a signal); -1 when it did not exit
    std::string output;
};

// Like tests/cli_run.h, under `timeout`: a regression here is a hang, and a hang must fail this
// test (exit 124), not stall the suite.
BoundedRun tca_bounded(const std::string& args, int seconds = 60) {
    const std::string cmd = "timeout -k 5 " + std::to_string(seconds) + " " + TCA_CLI_PATH + " " + args + " 2>&1";
    BoundedRun r;
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) r.output.append(buf, n);
    const int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

class ParsersCli : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("tca_test_parsers_cli_" + std::to_string(::getpid()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    std::string d(const std::string& name) const { return (dir_ / name).string(); }

    // A .npy of the given shape with no data at all: 128 bytes, as in the issue.
    std::string header_only(const std::string& name, const std::string& shape) const {
        std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
        h.append((64 - (10 + h.size() + 1) % 64) % 64, ' ');
        h += '\n';
        std::ofstream f(d(name), std::ios::binary);
        f << "\x93NUMPY" << char(1) << char(0) << char(h.size() & 0xff) << char(h.size() >> 8) << h;
        return d(name);
    }
    // Small valid Q/K/V ([2, 80, 8], one KV head) for the profile cases.
    void write_qkv() const {
        std::vector<float> x(2 * 80 * 8);
        for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i * 7919 % 23) - 11) / 11.0f;
        io::write_npy(d("q.npy"), io::make_f32({2, 80, 8}, x));
        x.resize(80 * 8);
        io::write_npy(d("k.npy"), io::make_f32({1, 80, 8}, x));
        io::write_npy(d("v.npy"), io::make_f32({1, 80, 8}, x));
    }
    std::string attend(const std::string& q, const std::string& k, const std::string& v, const std::string& mode) const {
        return "attend --q " + q + " --k " + k + " --v " + v + " " + mode + " --device cpu --out " + d("o.npy");
    }

    // The run failed cleanly: exited (no signal, no timeout) non-zero with TCA_ERROR_IO and the
    // message fragments, and wrote nothing.
    void expect_io_failure(const BoundedRun& r, const std::vector<std::string>& needles) const {
        // 1 is the CLI's error exit; 124 is `timeout` (a hang), 128 + N a signal (a crash).
        EXPECT_NE(r.code, 124) << "timed out (hung):\n" << r.output;
        EXPECT_EQ(r.code, 1) << r.output;
        EXPECT_NE(r.output.find("TCA_ERROR_IO"), std::string::npos) << r.output;
        for (const auto& n : needles) EXPECT_NE(r.output.find(n), std::string::npos) << "'" << n << "' in:\n" << r.output;
        EXPECT_EQ(r.output.find("json.exception"), std::string::npos) << "a raw library exception:\n" << r.output;
        EXPECT_FALSE(fs::exists(d("o.npy")));
    }

    fs::path dir_;
};

TEST_F(ParsersCli, AttendRejectsNpyShapesWhoseCountOverflows) {
    for (const char* shape : {"(67108864, 1073741824, 256)", "(1073741824, 1073741824, 16)", "(2147483648, 2147483648, 4)"}) {
        const std::string f = header_only("x.npy", shape);
        ASSERT_EQ(fs::file_size(f), 128u);
        const BoundedRun r = tca_bounded(attend(f, f, f, "--dense"));
        expect_io_failure(r, {"--q", "x.npy", "overflows", shape});
    }
}

TEST_F(ParsersCli, AttendRejectsInputsThatAreNotRegularFiles) {
    write_qkv();
    const std::string fifo = d("fifo.npy");
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    expect_io_failure(tca_bounded(attend(fifo, d("k.npy"), d("v.npy"), "--dense"), 30), {"--q", "is a FIFO"});
    expect_io_failure(tca_bounded(attend(d("q.npy"), dir_.string(), d("v.npy"), "--dense"), 30), {"--k", "is a directory"});
    if (fs::exists("/dev/zero"))
        expect_io_failure(tca_bounded(attend(d("q.npy"), d("k.npy"), "/dev/zero", "--dense"), 30),
                          {"--v", "/dev/zero: is a character device"});
    expect_io_failure(tca_bounded(attend(d("q.npy"), d("k.npy"), d("v.npy"), "--profile " + dir_.string()), 30),
                      {"is a directory"});
    expect_io_failure(tca_bounded(attend(d("q.npy"), d("k.npy"), d("v.npy"), "--profile " + fifo), 30), {"is a FIFO"});
}

// A profile number out of the JSON library's range, or an integer out of its field's range, is a
// bad file (TCA_ERROR_IO naming the file and the field), not a library exception.
TEST_F(ParsersCli, AttendRejectsProfilesWithOutOfRangeNumbers) {
    write_qkv();
    const BoundedRun c = tca_bounded("calibrate --q " + d("q.npy") + " --k " + d("k.npy") +
                              " --block 16 --window 32 --device cpu --out " + d("p.json"));
    ASSERT_EQ(c.code, 0) << c.output;
    const BoundedRun ok = tca_bounded(attend(d("q.npy"), d("k.npy"), d("v.npy"), "--profile " + d("p.json")));
    ASSERT_EQ(ok.code, 0) << ok.output;
    fs::remove(d("o.npy"));

    std::ifstream in(d("p.json"));
    const nlohmann::json good = nlohmann::json::parse(in);
    auto with = [&](const std::string& name, const std::function<void(nlohmann::json&)>& edit, const std::string& raw = "") {
        nlohmann::json j = good;
        edit(j);
        std::string text = j.dump();
        if (!raw.empty()) text.replace(text.find("12345.0"), 7, raw);
        std::ofstream(d(name)) << text;
        return tca_bounded(attend(d("q.npy"), d("k.npy"), d("v.npy"), "--profile " + d(name)));
    };
    expect_io_failure(with("tau.json", [](nlohmann::json& j) { j["params"]["tau"] = 12345.0; }, "1e400"),
                      {"tau.json", "not valid JSON", "1e400"});
    expect_io_failure(with("version.json", [](nlohmann::json& j) { j["version"] = 4294967297ull; }),
                      {"version.json", "'version'", "4294967297"});
    expect_io_failure(with("window.json", [](nlohmann::json& j) { j["params"]["window"] = 1e20; }),
                      {"window.json", "'window'"});
}

}  // namespace
}  // namespace tca::detail
