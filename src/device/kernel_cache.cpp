// The shared kernel disk cache (kernel_cache.h).
#include "device/kernel_cache.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/input_file.h"

namespace tca::detail::kernel_cache {

namespace {

constexpr char kMagic[8] = {'T', 'C', 'A', 'K', 'C', 'A', 'C', 'H'};

template <class T>
void put(std::vector<unsigned char>& out, size_t at, T v) {
    std::memcpy(out.data() + at, &v, sizeof v);
}
template <class T>
T get(const std::vector<unsigned char>& in, size_t at) {
    T v;
    std::memcpy(&v, in.data() + at, sizeof v);
    return v;
}

bool header_ok(const std::vector<unsigned char>& file) {
    return file.size() >= kHeaderBytes && std::memcmp(file.data(), kMagic, 8) == 0 &&
           get<uint32_t>(file, 8) == kFormatVersion && get<uint32_t>(file, 12) == kHeaderBytes;
}

}  // namespace

Hash& Hash::add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h_ = (h_ ^ p[i]) * 0x100000001b3ull;
    return *this;
}

uint64_t checksum(const void* data, size_t n) { return Hash().add(data, n).value(); }

std::string hex64(uint64_t v) {
    char b[17];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
    return b;
}

std::string entry_path(const std::string& dir, const std::string& api, uint64_t key) {
    return dir + "/" + api + "-" + hex64(key) + ".tcache";
}

std::vector<unsigned char> encode(uint64_t key, const void* payload, size_t bytes) {
    std::vector<unsigned char> out(kHeaderBytes + bytes);
    std::memcpy(out.data(), kMagic, 8);
    put<uint32_t>(out, 8, kFormatVersion);
    put<uint32_t>(out, 12, uint32_t(kHeaderBytes));
    put<uint64_t>(out, 16, key);
    put<uint64_t>(out, 24, uint64_t(bytes));
    put<uint64_t>(out, 32, checksum(payload, bytes));
    if (bytes) std::memcpy(out.data() + kHeaderBytes, payload, bytes);
    return out;
}

bool decode(const std::vector<unsigned char>& file, uint64_t key, std::vector<unsigned char>* payload) {
    if (!header_ok(file) || get<uint64_t>(file, 16) != key) return false;
    const uint64_t size = get<uint64_t>(file, 24);
    // Exactly the payload the header announces: shorter is truncation, longer is damage.
    if (size == 0 || size > kMaxPayloadBytes || size != file.size() - kHeaderBytes) return false;
    if (checksum(file.data() + kHeaderBytes, size_t(size)) != get<uint64_t>(file, 32)) return false;
    payload->assign(file.begin() + std::ptrdiff_t(kHeaderBytes), file.end());
    return true;
}

bool peek_key(const std::vector<unsigned char>& file, uint64_t* key) {
    if (!header_ok(file)) return false;
    *key = get<uint64_t>(file, 16);
    return true;
}

Lookup load(const std::string& path, uint64_t key, std::vector<unsigned char>* payload) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return Lookup::missing;
    std::vector<unsigned char> file;
    try {
        file = io::read_regular_file(path, kHeaderBytes + kMaxPayloadBytes);
    } catch (const Error&) {
        return Lookup::rejected;  // unreadable, or not a regular file
    }
    return decode(file, key, payload) ? Lookup::hit : Lookup::rejected;
}

bool store(const std::string& path, uint64_t key, const void* payload, size_t bytes) {
    std::error_code ec;
    const std::filesystem::path dir = std::filesystem::path(path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);  // failure shows at the write
    const std::vector<unsigned char> entry = encode(key, payload, bytes);
    try {
        io::write_file_atomic(path, entry.data(), entry.size());
        return true;
    } catch (const Error&) {
        return false;
    }
}

}  // namespace tca::detail::kernel_cache
