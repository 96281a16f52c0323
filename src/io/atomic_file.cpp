#include "io/atomic_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include "core/error.h"

namespace tca::io {

namespace {

std::string temp_name_for(const std::string& path) {
    // A random suffix so concurrent writers of the same target never share a temp file.
    std::random_device rd;
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, ".tmp-%08x", rd());
    return path + suffix;
}

std::string sys_error() { return std::strerror(errno); }

void write_temp(const std::string& tmp, const std::string& path, const void* data, size_t bytes) {
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw Error(TCA_ERROR_IO, "cannot write " + path + ": " + sys_error());
    const bool ok = std::fwrite(data, 1, bytes, f) == bytes;
    const bool closed = std::fclose(f) == 0;
    if (!ok || !closed) {
        std::remove(tmp.c_str());
        throw Error(TCA_ERROR_IO, "writing " + path + " failed: " + sys_error());
    }
}

}  // namespace

void write_file_atomic(const std::string& path, const void* data, size_t bytes) {
    OutputBatch b;
    b.stage(path, data, bytes);
    b.commit();
}

std::vector<unsigned char> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(TCA_ERROR_IO, "cannot open " + path + ": " + sys_error());
    std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (f.bad()) throw Error(TCA_ERROR_IO, "reading " + path + " failed");
    return bytes;
}

OutputBatch::~OutputBatch() {
    for (const auto& s : staged_) std::remove(s.tmp.c_str());
}

void OutputBatch::stage(const std::string& path, const void* data, size_t bytes) {
    const std::string tmp = temp_name_for(path);
    write_temp(tmp, path, data, bytes);
    staged_.push_back({tmp, path});
}

void OutputBatch::commit() {
    for (size_t i = 0; i < staged_.size(); ++i) {
        if (std::rename(staged_[i].tmp.c_str(), staged_[i].path.c_str()) != 0) {
            const std::string msg = "cannot create " + staged_[i].path + ": " + sys_error();
            // Already-renamed outputs of this batch are removed too: all or nothing.
            for (size_t j = 0; j < i; ++j) std::remove(staged_[j].path.c_str());
            throw Error(TCA_ERROR_IO, msg);
        }
    }
    staged_.clear();
}

}  // namespace tca::io
