// .npy reading and writing: round trips of every supported dtype, and every malformed file
// rejected with TCA_ERROR_IO (never a crash, never a silently wrong tensor).
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/npy.h"

namespace tca::detail::io {
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

std::vector<unsigned char> npy_with_shape(const std::string& shape, const std::string& descr, size_t data_bytes) {
    return npy_with_header("{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }", data_bytes);
}

void write_bytes(const fs::path& p, const std::vector<unsigned char>& b) {
    std::ofstream f(p, std::ios::binary);
    f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

// Issue 11: the shape's element count was an unchecked product, so a 128-byte file whose shape
// multiplies to 2^64 (wrapping to 0) passed the size check; the CLI then crashed or hung.
TEST(Npy, RejectsShapesWhoseCountOverflows) {
    struct Case {
        const char* shape;
        const char* needle;
    };
    const Case cases[] = {
        {"(67108864, 1073741824, 256)", "element count does not fit"},  // 2^64 elements
        {"(1073741824, 1073741824, 16)", "element count does not fit"},
        {"(2147483648, 2147483648, 4)", "element count does not fit"},
        {"(2147483648, 1073741824, 2)", "byte count does not fit"},  // 2^62 elements, 2^64 bytes
        {"(1048576, 1048576, 4)", "truncated"},                    // fits in 64 bits, not in the file
    };
    const auto dir = temp_dir();
    for (const Case& c : cases) {
        const auto bytes = npy_with_shape(c.shape, "<f4", 0);
        ASSERT_EQ(bytes.size(), 128u);
        std::string msg;
        EXPECT_EQ(parse_error_code(bytes, &msg), TCA_ERROR_IO) << c.shape;
        EXPECT_NE(msg.find(c.needle), std::string::npos) << c.shape << ": " << msg;
        EXPECT_NE(msg.find(c.shape), std::string::npos) << "the message names the shape: " << msg;
        // The same through the file readers.
        const fs::path p = dir / "overflow.npy";
        write_bytes(p, bytes);
        EXPECT_THROW(read_npy(p.string()), Error) << c.shape;
        std::vector<int64_t> shape;
        try {
            read_float_tensor(p.string(), 3, shape);
            ADD_FAILURE() << c.shape << " accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), TCA_ERROR_IO);
            EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos) << e.what();
        }
    }
    // An in-memory array refuses to count an overflowing shape too.
    NpyArray a;
    a.shape = {int64_t(1) << 32, int64_t(1) << 32};
    EXPECT_THROW(a.elements(), Error);
}

// A version 1.0 header holds at most 65535 bytes; a longer one used to be written with its length
// truncated to 16 bits, a corrupt file.
TEST(Npy, WriterRefusesAHeaderTooLongForVersion1) {
    NpyArray a = make_f32(std::vector<int64_t>(40000, 1), {2.f});
    EXPECT_THROW(encode_npy(a), Error);
    a = make_f32(std::vector<int64_t>(64, 1), {2.f});  // NumPy's own rank limit still writes and reads
    EXPECT_EQ(parse_npy(encode_npy(a), "rank 64").shape.size(), 64u);
}

// Tensors keep heads, tokens and dim in int: 2^31 wrapped to a negative token count. The file is
// sparse (no disk space) and the header is checked before its 4 GiB of data would be read.
TEST(Npy, FloatTensorDimensionsMustFitInt) {
    const auto dir = temp_dir();
    const fs::path p = dir / "wide.npy";
    const auto header = npy_with_shape("(1, 2147483648, 1)", "<f2", 0);
    write_bytes(p, header);
    fs::resize_file(p, header.size() + (uint64_t(1) << 32));
    std::vector<int64_t> shape;
    const auto t0 = std::chrono::steady_clock::now();
    try {
        read_float_tensor(p.string(), 3, shape);
        ADD_FAILURE() << "a dimension of 2^31 accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_IO);
        EXPECT_NE(std::string(e.what()).find("2147483648"), std::string::npos) << e.what();
    }
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0)
        << "the data must not be read to reject the shape";
    fs::remove(p);
}

// Python's dict keeps the last of a repeated key; the reader used to accept it silently (and a
// repeated 'shape' appended the dimensions).
TEST(Npy, RejectsDuplicateHeaderKeys) {
    std::string msg;
    EXPECT_EQ(parse_error_code(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'descr': '<f4', 'shape': (2, 3), }", 24),
                               &msg),
              TCA_ERROR_IO);
    EXPECT_NE(msg.find("duplicate key 'descr'"), std::string::npos) << msg;
    EXPECT_EQ(parse_error_code(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (3,), }", 24),
                               &msg),
              TCA_ERROR_IO);
    EXPECT_NE(msg.find("duplicate key 'shape'"), std::string::npos) << msg;
    EXPECT_EQ(parse_error_code(npy_with_header("{'fortran_order': False, 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 4),
                               &msg),
              TCA_ERROR_IO);
    EXPECT_NE(msg.find("duplicate key 'fortran_order'"), std::string::npos) << msg;
}

// Separators are required where a Python literal requires them, and nothing but padding follows
// the dict: "(2 3)" is not a tuple, and text after '}' is not a NumPy header.
TEST(Npy, RejectsHeaderSyntaxNumpyWouldNot) {
    EXPECT_EQ(parse_error_code(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }", 24)), TCA_ERROR_IO);
    EXPECT_EQ(parse_error_code(npy_with_header("{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3), }", 24)), TCA_ERROR_IO);
    EXPECT_EQ(parse_error_code(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x", 24)),
              TCA_ERROR_IO);
    // What NumPy writes, with and without the trailing comma, still reads.
    EXPECT_EQ(parse_error_code(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", 24)), TCA_OK);
    EXPECT_EQ(parse_error_code(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4)), TCA_OK);
}

// A directory, a FIFO or a device node is rejected up front: reading a FIFO used to block forever
// waiting for a writer, and /dev/zero never ends.
TEST(Npy, RejectsPathsThatAreNotRegularFiles) {
    const auto dir = temp_dir();
    const fs::path fifo = dir / "fifo.npy";
    fs::remove(fifo);
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const std::pair<std::string, std::string> cases[] = {
        {dir.string(), "is a directory"}, {fifo.string(), "is a FIFO"}, {"/dev/zero", "is a character device"}};
    for (const auto& [path, needle] : cases) {
        if (!fs::exists(path)) continue;
        for (int reader = 0; reader < 2; ++reader) {
            try {
                std::vector<int64_t> shape;
                if (reader == 0) read_npy(path);
                else read_float_tensor(path, 3, shape);
                ADD_FAILURE() << path << " read";
            } catch (const Error& e) {
                EXPECT_EQ(e.code(), TCA_ERROR_IO) << path;
                EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
                EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
            }
        }
    }
    fs::remove(fifo);
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
}  // namespace tca::detail::io
