#include "io/atomic_file.h"
#include "io/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "core/error.h"

namespace tca::detail::io {

namespace {

std::string sys_error() { return std::strerror(errno); }

std::string sibling_name(const std::string& path, const char* kind) {
    // A random suffix so concurrent writers of the same target never share a temp file.
    std::random_device rd;
    char suffix[40];
    std::snprintf(suffix, sizeof suffix, ".%s-%08x%08x", kind, rd(), rd());
    return path + suffix;
}

// Whether a regular file is at `path` now (false: nothing is). Anything else there -- a symbolic
// link (not followed: lstat), a device, a fifo, a directory -- is an error, and stays untouched.
bool existing_regular_file(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return false;
        throw Error(TCA_ERROR_IO, "cannot write " + path + ": " + sys_error());
    }
    if (S_ISREG(st.st_mode)) return true;
    throw Error(TCA_ERROR_IO, "cannot write " + path + ": it is " + file_kind(st.st_mode) +
                                  "; output goes to regular files only (give the path of a file to create or replace)");
}

// Writes a new file (O_EXCL: never through a link someone placed at the name). `mode` as for open().
void write_new(const std::string& file, const std::string& shown, const void* data, size_t bytes, mode_t mode) {
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) throw Error(TCA_ERROR_IO, "cannot write " + shown + ": " + sys_error());
    const char* p = static_cast<const char*>(data);
    size_t left = bytes;
    bool ok = true;
    while (ok && left > 0) {
        const ssize_t n = ::write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) p += n, left -= size_t(n);
    }
    const std::string err = ok ? "" : sys_error();
    const bool closed = ::close(fd) == 0;
    if (!ok || !closed) {
        const std::string why = ok ? sys_error() : err;
        ::unlink(file.c_str());
        throw Error(TCA_ERROR_IO, "writing " + shown + " failed: " + why);
    }
}

// A second name for the file at `path`, so commit() can put it back. A hard link keeps the very
// same file (content, mode, owner); where the file system has none, a copy with the same mode.
std::string keep_previous(const std::string& path) {
    const std::string backup = sibling_name(path, "prev");
    if (::link(path.c_str(), backup.c_str()) == 0) return backup;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) throw Error(TCA_ERROR_IO, "cannot keep a copy of " + path + ": " + sys_error());
    const auto bytes = read_file(path);
    write_new(backup, path + " (its previous content)", bytes.data(), bytes.size(), st.st_mode & 07777);
    return backup;
}

}  // namespace

void check_output_path(const std::string& path) { existing_regular_file(path); }

void write_file_atomic(const std::string& path, const void* data, size_t bytes) {
    OutputBatch b;
    b.stage(path, data, bytes);
    b.commit();
}

std::vector<unsigned char> read_file(const std::string& path) {
    // One reader for every input: it opens without blocking (a fifo would wait for a writer) and
    // refuses anything but a regular file on the opened descriptor.
    return read_regular_file(path);
}

OutputBatch::~OutputBatch() {
    for (const auto& s : staged_) ::unlink(s.tmp.c_str());
}

void OutputBatch::stage(const std::string& path, const void* data, size_t bytes) {
    existing_regular_file(path);  // throws for a link, device, fifo or directory: nothing is written
    const std::string tmp = sibling_name(path, "tmp");
    write_new(tmp, path, data, bytes, 0666);
    staged_.push_back({tmp, path});
}

void OutputBatch::commit() {
    const size_t n = staged_.size();
    // Checked again: the target may have changed since stage(). Then every target that already
    // exists, except the last one renamed (whose own failed rename leaves it as it was), gets a
    // second name before anything is replaced.
    std::vector<std::string> previous(n);
    const auto drop_previous = [&] {
        for (const auto& p : previous)
            if (!p.empty()) ::unlink(p.c_str());
    };
    try {
        for (size_t i = 0; i < n; ++i)
            if (existing_regular_file(staged_[i].path) && i + 1 < n) previous[i] = keep_previous(staged_[i].path);
    } catch (...) {
        drop_previous();
        throw;
    }
    for (size_t i = 0; i < n; ++i) {
        if (std::rename(staged_[i].tmp.c_str(), staged_[i].path.c_str()) == 0) continue;
        std::string msg = "cannot create " + staged_[i].path + ": " + sys_error();
        // All or nothing: the outputs renamed so far are undone, the earlier files put back.
        for (size_t j = 0; j < i; ++j) {
            const bool undone = previous[j].empty() ? ::unlink(staged_[j].path.c_str()) == 0
                                                    : std::rename(previous[j].c_str(), staged_[j].path.c_str()) == 0;
            if (!undone)
                msg += "; and " + staged_[j].path + " could not be restored (" + sys_error() +
                       (previous[j].empty() ? ")" : "; its previous content is in " + previous[j] + ")");
        }
        for (size_t j = i; j < n; ++j)
            if (!previous[j].empty()) ::unlink(previous[j].c_str());
        staged_.erase(staged_.begin(), staged_.begin() + long(i));  // renamed: no temp file left to remove
        throw Error(TCA_ERROR_IO, msg);
    }
    drop_previous();
    staged_.clear();
}

}  // namespace tca::detail::io
