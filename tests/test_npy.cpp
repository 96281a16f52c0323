// .npy reading and writing: round trips of every supported dtype, and every malformed file
// rejected with TCA_ERROR_IO (never a crash, never a silently wrong tensor).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <unistd.h>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/npy.h"

namespace tca::io {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir() {
    const fs::path d = fs::temp_directory_path() / ("tca_test_npy_" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
}

// The header NumPy itself writes for a given dict, so malformed variants are easy to build.
std::vector<unsigned char> npy_with_header(const std::string& dict, size_t data_bytes) {
    std::string h = dict;
    h.append((64 - (10 + h.size() + 1) % 64) % 64, ' ');
    h += '\n';
    std::vector<unsigned char> out = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(h.size() & 0xff),
                                      (unsigned char)(h.size() >> 8)};
    out.insert(out.end(), h.begin(), h.end());
    out.resize(out.size() + data_bytes, 0);
    return out;
}

tca_status parse_error_code(const std::vector<unsigned char>& bytes, std::string* msg = nullptr) {
    try {
        parse_npy(bytes, "x.npy");
    } catch (const Error& e) {
        if (msg) *msg = e.what();
        return e.code();
    }
    return TCA_OK;
}

TEST(Npy, RoundTripsEveryDtype) {
    NpyArray f = make_f32({2, 3, 4}, std::vector<float>(24, 1.5f));
    NpyArray u = make_u8({2, 5}, {0, 1, 2, 0, 1, 2, 2, 2, 1, 0});
    NpyArray i32;
    i32.type = NpyType::i32;
    i32.shape = {3};
    i32.data.resize(12, 7);
    NpyArray h;
    h.type = NpyType::f16;
    h.shape = {1, 1, 2};
    h.data = {0x00, 0x3c, 0x00, 0xc0};  // 1.0, -2.0
    for (const NpyArray* a : {&f, &u, &i32, &h}) {
        const auto bytes = encode_npy(*a);
        EXPECT_EQ((10 + bytes[8] + 256 * bytes[9]) % 64, 0u) << "header must be 64-byte aligned";
        const NpyArray b = parse_npy(bytes, "rt");
        EXPECT_EQ(b.type, a->type);
        EXPECT_EQ(b.shape, a->shape);
        EXPECT_EQ(b.data, a->data);
    }
    // float16 files are widened on read.
    const auto dir = temp_dir();
    write_npy((dir / "h.npy").string(), h);
    std::vector<int64_t> shape;
    const auto v = read_float_tensor((dir / "h.npy").string(), 3, shape);
    EXPECT_EQ(v, (std::vector<float>{1.0f, -2.0f}));
}

TEST(Npy, ReadsNumpyWrittenHeader) {
    // Byte-for-byte what numpy.save writes for np.zeros((2, 3), '<f4').
    auto bytes = npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    const NpyArray a = parse_npy(bytes, "np");
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
    // And a 1-D shape "(5,)".
    EXPECT_EQ(parse_npy(npy_with_header("{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }", 5), "np").shape,
              (std::vector<int64_t>{5}));
}

TEST(Npy, RejectsMalformedFiles) {
    const std::string good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    std::string msg;
    // Truncated data.
    EXPECT_EQ(parse_error_code(npy_with_header(good, 20), &msg), TCA_ERROR_IO);
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
    // Truncated header / not a .npy at all.
    auto cut = npy_with_header(good, 24);
    cut.resize(30);
    EXPECT_EQ(parse_error_code(cut), TCA_ERROR_IO);
    EXPECT_EQ(parse_error_code({'h', 'e', 'l', 'l', 'o', 0, 0, 0, 0, 0, 0}), TCA_ERROR_IO);
    // Wrong dtype (float64), big-endian, Fortran order.
    EXPECT_EQ(parse_error_code(npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 48), &msg),
              TCA_ERROR_IO);
    EXPECT_NE(msg.find("dtype"), std::string::npos) << msg;
    EXPECT_EQ(parse_error_code(npy_with_header("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24), &msg),
              TCA_ERROR_IO);
    EXPECT_NE(msg.find("big-endian"), std::string::npos) << msg;
    EXPECT_EQ(parse_error_code(npy_with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24), &msg),
              TCA_ERROR_IO);
    EXPECT_NE(msg.find("Fortran"), std::string::npos) << msg;
    // Garbage in the dict, missing keys, trailing bytes.
    EXPECT_EQ(parse_error_code(npy_with_header("{'descr': '<f4', 'shape': (2, 3), }", 24)), TCA_ERROR_IO);
    EXPECT_EQ(parse_error_code(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", 24)),
              TCA_ERROR_IO);
    EXPECT_EQ(parse_error_code(npy_with_header(good, 28)), TCA_ERROR_IO);
}

TEST(Npy, FloatTensorReaderChecksRankDtypeAndFiniteness) {
    const auto dir = temp_dir();
    const std::string p2 = (dir / "r2.npy").string(), pu = (dir / "u.npy").string(), pn = (dir / "nan.npy").string();
    write_npy(p2, make_f32({2, 3}, std::vector<float>(6, 0.f)));
    write_npy(pu, make_u8({1, 2, 3}, std::vector<uint8_t>(6, 1)));
    std::vector<float> bad(6, 0.f);
    bad[4] = NAN;
    write_npy(pn, make_f32({1, 2, 3}, bad));
    std::vector<int64_t> shape;
    try {
        read_float_tensor(p2, 3, shape);
        FAIL() << "rank 2 accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_IO);
        EXPECT_NE(std::string(e.what()).find("rank"), std::string::npos) << e.what();
    }
    try {
        read_float_tensor(pu, 3, shape);
        FAIL() << "uint8 accepted as float";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_IO);
    }
    try {
        read_float_tensor(pn, 3, shape);
        FAIL() << "NaN accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_NONFINITE_INPUT);
    }
}

TEST(Npy, FailedWritesLeaveNoFile) {
    const auto dir = temp_dir();
    const fs::path target = dir / "missing_dir" / "o.npy";
    EXPECT_THROW(write_npy(target.string(), make_f32({1}, {1.f})), Error);
    EXPECT_FALSE(fs::exists(target));
    // A batch that is never committed removes its temporary files and creates nothing.
    const fs::path a = dir / "batch_a.bin";
    {
        OutputBatch b;
        b.stage(a.string(), "abc");
        EXPECT_THROW(b.stage((dir / "nope" / "b.bin").string(), "x"), Error);
    }
    EXPECT_FALSE(fs::exists(a));
    for (const auto& e : fs::directory_iterator(dir))
        EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << "left behind: " << e.path();
}

}  // namespace
}  // namespace tca::io
