// Reading an input file (a .npy tensor, a profile, a model) safely: only regular files are read,
// so a directory, a FIFO or a device node (/dev/zero, a terminal) is rejected up front with
// TCA_ERROR_IO instead of blocking forever or filling memory; and a file larger than the caller's
// limit is rejected before any of it is read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <sys/types.h>

namespace tca::detail::io {

// What a file of this st_mode is, for messages: "a directory", "a FIFO (named pipe)", ...
const char* file_kind(mode_t mode);

// An open regular file. Every failure throws Error(TCA_ERROR_IO) naming the path: a missing or
// unreadable path, anything but a regular file, a read past the end or a read error.
class RegularFile {
public:
    explicit RegularFile(const std::string& path);
    ~RegularFile();
    RegularFile(const RegularFile&) = delete;
    RegularFile& operator=(const RegularFile&) = delete;

    uint64_t size() const { return size_; }  // at open
    // Reads exactly `bytes` bytes at `offset`.
    void read_at(uint64_t offset, void* dst, size_t bytes) const;

private:
    std::string path_;
    int fd_ = -1;
    uint64_t size_ = 0;
};

// The whole content of a regular file of at most max_bytes bytes (a larger one is rejected
// before any of it is read). Throws Error(TCA_ERROR_IO) naming the path.
std::vector<unsigned char> read_regular_file(const std::string& path, uint64_t max_bytes = UINT64_MAX);

}  // namespace tca::detail::io
