#include "io/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace tca::detail::io {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& msg) { throw Error(TCA_ERROR_IO, path + ": " + msg); }

std::string sys_error() { return std::strerror(errno); }

}  // namespace

const char* file_kind(mode_t m) {
    if (S_ISLNK(m)) return "a symbolic link";
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "a special file";
}


// Opens without blocking: opening a FIFO for reading would otherwise wait for a writer forever.
// The type is then checked on the opened descriptor (fstat), not on the name, so the file cannot
// be swapped between the check and the reads.
RegularFile::RegularFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd_ < 0) fail(path, "cannot open: " + sys_error());
    struct stat st;
    if (::fstat(fd_, &st) != 0) {
        const std::string e = sys_error();
        ::close(fd_);
        fail(path, "cannot stat: " + e);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd_);
        fail(path, std::string("is ") + file_kind(st.st_mode) + ", not a regular file");
    }
    size_ = uint64_t(st.st_size);
}

RegularFile::~RegularFile() { ::close(fd_); }

void RegularFile::read_at(uint64_t offset, void* dst, size_t bytes) const {
    auto* out = static_cast<unsigned char*>(dst);
    size_t got = 0;
    while (got < bytes) {
        const ssize_t n = ::pread(fd_, out + got, bytes - got, off_t(offset + got));
        if (n < 0) {
            if (errno == EINTR) continue;
            fail(path_, "read failed: " + sys_error());
        }
        // The file shrank after it was opened.
        if (n == 0) fail(path_, "ends at byte " + std::to_string(offset + got) + " while reading it");
        got += size_t(n);
    }
}

std::vector<unsigned char> read_regular_file(const std::string& path, uint64_t max_bytes) {
    const RegularFile f(path);
    if (f.size() > max_bytes)
        fail(path, "is " + std::to_string(f.size()) + " bytes, more than the " + std::to_string(max_bytes) +
                       " this kind of file may have");
    std::vector<unsigned char> out(static_cast<size_t>(f.size()));
    f.read_at(0, out.data(), out.size());
    return out;
}

}  // namespace tca::detail::io
