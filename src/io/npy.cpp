// .npy reader/writer. The header is a Python dict literal; we parse exactly the three keys NumPy
// writes ('descr', 'fortran_order', 'shape') with a small tokenizer rather than trusting offsets.
#include "io/npy.h"

#include <cctype>
#include <cstring>

#include <algorithm>

#include "api/handles.h"
#include "core/half.h"
#include "core/error.h"
#include "io/atomic_file.h"

namespace tca::io {

namespace {

[[noreturn]] void bad(const std::string& what, const std::string& msg) {
    throw Error(TCA_ERROR_IO, what + ": " + msg);
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
        if (!eat(c)) bad(what, std::string("malformed .npy header (expected '") + c + "'): " + s);
    }
    std::string quoted() {
        skip_ws();
        if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) bad(what, "malformed .npy header (expected a string): " + s);
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
    int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
}

NpyArray parse_npy(const std::vector<unsigned char>& b, const std::string& what) {
    static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (b.size() < 10 || std::memcmp(b.data(), magic, 6) != 0) bad(what, "not a .npy file (bad magic or truncated)");
    const int major = b[6];
    size_t header_len, header_start;
    if (major == 1) {
        header_len = b[8] | size_t(b[9]) << 8;
        header_start = 10;
    } else if (major == 2 || major == 3) {  // NumPy writes these for huge headers; same dict inside
        if (b.size() < 12) bad(what, "truncated .npy header");
        header_len = b[8] | size_t(b[9]) << 8 | size_t(b[10]) << 16 | size_t(b[11]) << 24;
        header_start = 12;
    } else {
        bad(what, "unsupported .npy version " + std::to_string(major));
    }
    if (header_start + header_len > b.size()) bad(what, "truncated .npy header");
    const std::string h(reinterpret_cast<const char*>(b.data()) + header_start, header_len);

    NpyArray a;
    bool have_descr = false, have_order = false, have_shape = false;
    Cursor c{h, 0, what};
    c.expect('{');
    while (!c.eat('}')) {
        const std::string key = c.quoted();
        c.expect(':');
        if (key == "descr") {
            a.type = parse_descr(c.quoted(), what);
            have_descr = true;
        } else if (key == "fortran_order") {
            const std::string v = c.word();
            if (v == "True") bad(what, "Fortran-order arrays are not supported; save with C order");
            if (v != "False") bad(what, "malformed fortran_order '" + v + "'");
            have_order = true;
        } else if (key == "shape") {
            c.expect('(');
            while (!c.eat(')')) {
                const std::string v = c.word();
                if (v.empty() || !std::all_of(v.begin(), v.end(), ::isdigit) || v.size() > 12)
                    bad(what, "malformed shape in .npy header: " + h);
                a.shape.push_back(std::stoll(v));
                c.eat(',');
            }
            have_shape = true;
        } else {
            bad(what, "unexpected key '" + key + "' in .npy header");
        }
        c.eat(',');
    }
    if (!have_descr || !have_order || !have_shape) bad(what, "incomplete .npy header: " + h);

    const size_t need = size_t(a.elements()) * npy_type_size(a.type);
    const size_t start = header_start + header_len;
    if (b.size() - start < need)
        bad(what, "truncated: shape needs " + std::to_string(need) + " data bytes, file has " +
                      std::to_string(b.size() - start));
    if (b.size() - start > need) bad(what, "trailing bytes after the data (" + std::to_string(b.size() - start - need) + ")");
    a.data.assign(b.begin() + start, b.end());
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
    static const unsigned char prefix[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    std::vector<unsigned char> out(10 + h.size() + a.data.size());
    std::memcpy(out.data(), prefix, 8);
    out[8] = static_cast<unsigned char>(h.size() & 0xff);
    out[9] = static_cast<unsigned char>(h.size() >> 8);
    std::memcpy(out.data() + 10, h.data(), h.size());
    if (!a.data.empty()) std::memcpy(out.data() + 10 + h.size(), a.data.data(), a.data.size());
    return out;
}

NpyArray read_npy(const std::string& path) { return parse_npy(read_file(path), path); }

void write_npy(const std::string& path, const NpyArray& a) {
    const auto bytes = encode_npy(a);
    write_file_atomic(path, bytes.data(), bytes.size());
}

std::vector<float> read_float_tensor(const std::string& path, int rank, std::vector<int64_t>& shape) {
    const NpyArray a = read_npy(path);
    if (int(a.shape.size()) != rank)
        bad(path, "expected a rank-" + std::to_string(rank) + " tensor, got rank " + std::to_string(a.shape.size()));
    for (auto s : a.shape)
        if (s <= 0 || s > (int64_t(1) << 31)) bad(path, "empty or oversized dimension " + std::to_string(s));
    if (a.type != NpyType::f32 && a.type != NpyType::f16)
        bad(path, std::string("expected float32 or float16 data, got ") + npy_type_name(a.type));
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

}  // namespace tca::io
