// .npy reader/writer. The header is a Python dict literal; we parse exactly the three keys NumPy
// writes ('descr', 'fortran_order', 'shape') with a small tokenizer rather than trusting offsets.
#include "io/npy.h"

#include <cctype>
#include <climits>
#include <cstring>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/finite.h"
#include "core/half.h"
#include "io/atomic_file.h"
#include "io/input_file.h"

namespace tca::detail::io {

namespace {

[[noreturn]] void bad(const std::string& what, const std::string& msg) {
    throw Error(TCA_ERROR_IO, what + ": " + msg);
}

// The header as quoted in a message: a hostile header may be up to kMaxHeaderBytes long.
std::string excerpt(const std::string& h) {
    std::string e = h.substr(0, 200);
    while (!e.empty() && std::isspace(static_cast<unsigned char>(e.back()))) e.pop_back();
    return h.size() > 200 ? e + "..." : e;
}

// Minimal cursor over the header dict text.
struct Cursor {
    const std::string& s;
    size_t i = 0;
    const std::string& what;

    void skip_ws() {
        while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    }
    bool eat(char c) {
        skip_ws();
        if (i < s.size() && s[i] == c) {
            ++i;
            return true;
        }
        return false;
    }
    void expect(char c) {
        if (!eat(c)) bad(what, std::string("malformed .npy header (expected '") + c + "'): " + excerpt(s));
    }
    std::string quoted() {
        skip_ws();
        if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) bad(what, "malformed .npy header (expected a string): " + excerpt(s));
        const char q = s[i++];
        const size_t end = s.find(q, i);
        if (end == std::string::npos) bad(what, "malformed .npy header (unterminated string)");
        std::string out = s.substr(i, end - i);
        i = end + 1;
        return out;
    }
    std::string word() {
        skip_ws();
        size_t j = i;
        while (j < s.size() && std::isalnum(static_cast<unsigned char>(s[j]))) ++j;
        std::string out = s.substr(i, j - i);
        i = j;
        return out;
    }
};

NpyType parse_descr(const std::string& d, const std::string& what) {
    if (d == "<f4") return NpyType::f32;
    if (d == "<f2") return NpyType::f16;
    if (d == "|u1" || d == "<u1" || d == "u1") return NpyType::u8;
    if (d == "<i4") return NpyType::i32;
    if (!d.empty() && d[0] == '>') bad(what, "big-endian data ('" + d + "') is not supported; save it little-endian");
    bad(what, "unsupported dtype '" + d + "' (float32 '<f4', float16 '<f2', uint8 '|u1' or int32 '<i4')");
}

// NumPy 2's limit on the number of dimensions; a longer shape is not a NumPy file.
constexpr size_t kMaxRank = 64;

std::string shape_str(const std::vector<int64_t>& shape) {
    std::string r = "(";
    for (size_t i = 0; i < shape.size(); ++i) r += (i ? ", " : "") + std::to_string(shape[i]);
    return r + ")";
}

// The element count of a shape, or false when a dimension is negative or the product does not
// fit in 64 bits. (Local checked arithmetic; src/core may grow a shared helper for this.)
bool checked_elements(const std::vector<int64_t>& shape, uint64_t& n) {
    n = 1;
    for (int64_t s : shape)
        if (s < 0 || __builtin_mul_overflow(n, uint64_t(s), &n)) return false;
    return true;
}

const char* descr_of(NpyType t) {
    switch (t) {
        case NpyType::f32: return "<f4";
        case NpyType::f16: return "<f2";
        case NpyType::u8: return "|u1";
        case NpyType::i32: return "<i4";
    }
    return "?";
}

}  // namespace

const char* npy_type_name(NpyType t) {
    switch (t) {
        case NpyType::f32: return "float32";
        case NpyType::f16: return "float16";
        case NpyType::u8: return "uint8";
        case NpyType::i32: return "int32";
    }
    return "?";
}

size_t npy_type_size(NpyType t) { return t == NpyType::f32 || t == NpyType::i32 ? 4 : t == NpyType::f16 ? 2 : 1; }

int64_t NpyArray::elements() const {
    uint64_t n = 0;
    require(checked_elements(shape, n) && n <= uint64_t(INT64_MAX), TCA_ERROR_INVALID_ARGUMENT,
            "array shape " + shape_str(shape) + " has a negative dimension or too many elements");
    return int64_t(n);
}

namespace {

// Where the header dict lies: the preamble is the magic, the version and the dict's length.
struct Preamble {
    size_t dict_start = 0, dict_len = 0;
};

constexpr size_t kPreambleMax = 12;
// NumPy itself refuses headers over 10000 bytes by default (np.load's max_header_size).
constexpr size_t kMaxHeaderBytes = 1 << 20;

// `b` holds the first n (<= kPreambleMax) bytes of the file, which has `total` bytes.
Preamble parse_preamble(const unsigned char* b, size_t n, uint64_t total, const std::string& what) {
    static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (n < 10 || std::memcmp(b, magic, 6) != 0) bad(what, "not a .npy file (bad magic or truncated)");
    const int major = b[6];
    Preamble p;
    if (major == 1) {
        p.dict_len = b[8] | size_t(b[9]) << 8;
        p.dict_start = 10;
    } else if (major == 2 || major == 3) {  // NumPy writes these for huge headers; same dict inside
        if (n < 12) bad(what, "truncated .npy header");
        p.dict_len = b[8] | size_t(b[9]) << 8 | size_t(b[10]) << 16 | size_t(b[11]) << 24;
        p.dict_start = 12;
    } else {
        bad(what, "unsupported .npy version " + std::to_string(major));
    }
    if (p.dict_len > kMaxHeaderBytes) bad(what, ".npy header of " + std::to_string(p.dict_len) + " bytes is too long");
    if (p.dict_start + p.dict_len > total) bad(what, "truncated .npy header");
    return p;
}

struct Header {
    NpyType type = NpyType::f32;
    std::vector<int64_t> shape;
    uint64_t data_start = 0, data_bytes = 0;
};

// Parses the dict text and checks the data that follows it (total - data_start bytes) has
// exactly the size the shape and dtype need.
Header parse_dict(const std::string& h, const Preamble& pre, uint64_t total, const std::string& what) {
    Header a;
    std::set<std::string> keys;  // Python keeps the last of a repeated key; we refuse to guess
    Cursor c{h, 0, what};
    c.expect('{');
    // Entries are separated by commas; a trailing comma before '}' is what NumPy writes.
    while (!c.eat('}')) {
        const std::string key = c.quoted();
        if (!keys.insert(key).second) bad(what, "duplicate key '" + key + "' in .npy header: " + excerpt(h));
        c.expect(':');
        if (key == "descr") {
            a.type = parse_descr(c.quoted(), what);
        } else if (key == "fortran_order") {
            const std::string v = c.word();
            if (v == "True") bad(what, "Fortran-order arrays are not supported; save with C order");
            if (v != "False") bad(what, "malformed fortran_order '" + v + "'");
        } else if (key == "shape") {
            c.expect('(');
            while (!c.eat(')')) {
                const std::string v = c.word();
                if (v.empty() || !std::all_of(v.begin(), v.end(), ::isdigit) || v.size() > 12)
                    bad(what, "malformed shape in .npy header: " + excerpt(h));
                if (a.shape.size() == kMaxRank) bad(what, "shape has more than " + std::to_string(kMaxRank) + " dimensions");
                a.shape.push_back(std::stoll(v));
                if (!c.eat(',')) {
                    c.expect(')');
                    break;
                }
            }
        } else {
            bad(what, "unexpected key '" + key + "' in .npy header");
        }
        if (!c.eat(',')) {
            c.expect('}');
            break;
        }
    }
    c.skip_ws();
    if (c.i != h.size()) bad(what, "malformed .npy header (text after the closing '}'): " + excerpt(h));
    if (!keys.count("descr") || !keys.count("fortran_order") || !keys.count("shape"))
        bad(what, "incomplete .npy header: " + excerpt(h));

    // Checked products: a shape whose count wraps modulo 2^64 would otherwise pass the size check
    // with a tiny file (issue 11: (2^30, 2^30, 16) in 128 bytes).
    a.data_start = pre.dict_start + pre.dict_len;
    const uint64_t have = total - a.data_start;
    uint64_t count = 0, need = 0;
    if (!checked_elements(a.shape, count) || count > uint64_t(INT64_MAX))
        bad(what, "shape " + shape_str(a.shape) + " overflows: its element count does not fit in 64 bits (the file has " +
                      std::to_string(have) + " data bytes)");
    if (__builtin_mul_overflow(count, uint64_t(npy_type_size(a.type)), &need))
        bad(what, "shape " + shape_str(a.shape) + " of " + npy_type_name(a.type) +
                      " overflows: its byte count does not fit in 64 bits (the file has " + std::to_string(have) +
                      " data bytes)");
    if (have < need)
        bad(what, "truncated: shape " + shape_str(a.shape) + " of " + npy_type_name(a.type) + " needs " +
                      std::to_string(need) + " data bytes, the file has " + std::to_string(have));
    if (have > need) bad(what, "trailing bytes after the data (" + std::to_string(have - need) + ")");
    a.data_bytes = need;
    return a;
}

// The header of a file; only the header's bytes are read.
Header read_header(const RegularFile& f, const std::string& what) {
    unsigned char pre_bytes[kPreambleMax];
    const size_t n = size_t(std::min<uint64_t>(f.size(), kPreambleMax));
    f.read_at(0, pre_bytes, n);
    const Preamble pre = parse_preamble(pre_bytes, n, f.size(), what);
    std::string h(pre.dict_len, '\0');
    f.read_at(pre.dict_start, h.data(), h.size());
    return parse_dict(h, pre, f.size(), what);
}

NpyArray read_data(const RegularFile& f, Header&& h) {
    NpyArray a;
    a.type = h.type;
    a.shape = std::move(h.shape);
    a.data.resize(size_t(h.data_bytes));
    f.read_at(h.data_start, a.data.data(), a.data.size());
    return a;
}

}  // namespace

NpyArray parse_npy(const std::vector<unsigned char>& b, const std::string& what) {
    const Preamble pre = parse_preamble(b.data(), std::min(b.size(), kPreambleMax), b.size(), what);
    const std::string dict(reinterpret_cast<const char*>(b.data()) + pre.dict_start, pre.dict_len);
    Header h = parse_dict(dict, pre, b.size(), what);
    NpyArray a;
    a.type = h.type;
    a.shape = std::move(h.shape);
    a.data.assign(b.begin() + ptrdiff_t(h.data_start), b.end());
    return a;
}

std::vector<unsigned char> encode_npy(const NpyArray& a) {
    std::string shape = "(";
    for (size_t i = 0; i < a.shape.size(); ++i) shape += std::to_string(a.shape[i]) + (a.shape.size() == 1 || i + 1 < a.shape.size() ? "," : "");
    shape += ")";
    std::string h = std::string("{'descr': '") + descr_of(a.type) + "', 'fortran_order': False, 'shape': " + shape + ", }";
    // Pad with spaces so magic + length + header + '\n' is a multiple of 64 (NumPy's alignment).
    const size_t total = 10 + h.size() + 1;
    h.append((64 - total % 64) % 64, ' ');
    h += '\n';
    require(h.size() <= 0xffff, TCA_ERROR_INVALID_ARGUMENT, "shape too long for a version 1.0 .npy header");
    static const unsigned char prefix[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    std::vector<unsigned char> out(10 + h.size() + a.data.size());
    std::memcpy(out.data(), prefix, 8);
    out[8] = static_cast<unsigned char>(h.size() & 0xff);
    out[9] = static_cast<unsigned char>(h.size() >> 8);
    std::memcpy(out.data() + 10, h.data(), h.size());
    if (!a.data.empty()) std::memcpy(out.data() + 10 + h.size(), a.data.data(), a.data.size());
    return out;
}

NpyArray read_npy(const std::string& path) {
    const RegularFile f(path);
    return read_data(f, read_header(f, path));
}

void write_npy(const std::string& path, const NpyArray& a) {
    const auto bytes = encode_npy(a);
    write_file_atomic(path, bytes.data(), bytes.size());
}

std::vector<float> read_float_tensor(const std::string& path, int rank, std::vector<int64_t>& shape) {
    // The header is checked before the data is read: a bad shape never costs reading the file.
    const RegularFile f(path);
    Header h = read_header(f, path);
    if (int(h.shape.size()) != rank)
        bad(path, "expected a rank-" + std::to_string(rank) + " tensor, got rank " + std::to_string(h.shape.size()));
    // Tensors keep heads, tokens and dim in int fields.
    for (auto s : h.shape)
        if (s <= 0 || s > INT_MAX)
            bad(path, "dimension " + std::to_string(s) + " of shape " + shape_str(h.shape) + " is empty or above " +
                          std::to_string(INT_MAX));
    if (h.type != NpyType::f32 && h.type != NpyType::f16)
        bad(path, std::string("expected float32 or float16 data, got ") + npy_type_name(h.type));
    const NpyArray a = read_data(f, std::move(h));
    check_finite_host(a.type == NpyType::f32 ? DType::f32 : DType::f16, a.data.data(), a.data.size(), path.c_str());
    shape = a.shape;
    std::vector<float> out(size_t(a.elements()));
    if (a.type == NpyType::f32) {
        std::memcpy(out.data(), a.data.data(), a.data.size());
    } else {
        for (size_t i = 0; i < out.size(); ++i) {
            uint16_t h;
            std::memcpy(&h, a.data.data() + 2 * i, 2);
            out[i] = half_to_float(h);
        }
    }
    return out;
}

NpyArray make_f32(std::vector<int64_t> shape, const std::vector<float>& values) {
    NpyArray a;
    a.type = NpyType::f32;
    a.shape = std::move(shape);
    require(size_t(a.elements()) == values.size(), TCA_ERROR_INTERNAL, "make_f32: shape does not match data");
    a.data.resize(values.size() * 4);
    std::memcpy(a.data.data(), values.data(), a.data.size());
    return a;
}

NpyArray make_u8(std::vector<int64_t> shape, const std::vector<uint8_t>& values) {
    NpyArray a;
    a.type = NpyType::u8;
    a.shape = std::move(shape);
    require(size_t(a.elements()) == values.size(), TCA_ERROR_INTERNAL, "make_u8: shape does not match data");
    a.data.assign(values.begin(), values.end());
    return a;
}

}  // namespace tca::detail::io
