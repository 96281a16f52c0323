// The on-disk cache of compiled kernels, shared by both GPU APIs: OpenCL program binaries and the
// Vulkan pipeline cache are entries of one format, named by one hash, written by one atomic writer.
//
// Entry file: a 40-byte header, then the payload (the driver's bytes), all integers little-endian:
//   0  char[8] magic "TCAKCACH"    8  u32 format version     12 u32 header size (40)
//   16 u64 key (hash of everything that could change the payload: source, options, device, driver)
//   24 u64 payload size            32 u64 payload checksum (FNV-1a 64 of the payload)
// An entry is used only when all of these match: a truncated, damaged, foreign (another key, another
// format version) or empty file is rejected, and the caller rebuilds and overwrites it. Entries are
// written to a temporary file beside their name and renamed (io/atomic_file.h), so a reader sees the
// old entry or the whole new one, and a crash leaves no half-written entry.
//
// Cache I/O never fails an API call: a directory that cannot be made or written only means nothing
// is stored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tca::detail::kernel_cache {

constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHeaderBytes = 40;
constexpr uint64_t kMaxPayloadBytes = uint64_t(1) << 30;  // larger "entries" are damage, not binaries

// FNV-1a, 64 bit: the one hash of cache keys and payload checksums.
class Hash {
public:
    Hash& add(const void* data, size_t n);
    // Strings are hashed with their terminating NUL, so consecutive fields stay apart ("ab","c" != "a","bc").
    Hash& add(const std::string& s) { return add(s.data(), s.size() + 1); }
    Hash& add_u64(uint64_t v) { return add(&v, sizeof v); }
    uint64_t value() const { return h_; }

private:
    uint64_t h_ = 0xcbf29ce484222325ull;
};

uint64_t checksum(const void* data, size_t n);
std::string hex64(uint64_t v);

// The entry's file name in `dir`: "<api>-<16 hex digits of key>.tcache".
std::string entry_path(const std::string& dir, const std::string& api, uint64_t key);

// A whole entry (header + payload) for `key`.
std::vector<unsigned char> encode(uint64_t key, const void* payload, size_t bytes);
// The payload of an entry file's bytes, or false when the header or checksum does not match `key`.
bool decode(const std::vector<unsigned char>& file, uint64_t key, std::vector<unsigned char>* payload);
// The key an entry names in its header (for tests that forge entries); false when it is no entry.
bool peek_key(const std::vector<unsigned char>& file, uint64_t* key);

enum class Lookup { missing, rejected, hit };
// Reads and checks the entry at `path`.
Lookup load(const std::string& path, uint64_t key, std::vector<unsigned char>* payload);
// Writes the entry atomically, making `path`'s directory when missing. False on any I/O failure.
bool store(const std::string& path, uint64_t key, const void* payload, size_t bytes);

}  // namespace tca::detail::kernel_cache
