// Atomic file output: content is written to a temporary file in the target's directory and
// renamed over the target once complete. A batch stages several files and renames them together
// at commit(), so a command that fails half-way leaves none of its outputs behind.
#pragma once

#include <string>
#include <vector>

namespace tca::io {

// Writes bytes to path atomically (temp file + rename). Throws TCA_ERROR_IO.
void write_file_atomic(const std::string& path, const void* data, size_t bytes);
std::vector<unsigned char> read_file(const std::string& path);

class OutputBatch {
public:
    OutputBatch() = default;
    OutputBatch(const OutputBatch&) = delete;
    OutputBatch& operator=(const OutputBatch&) = delete;
    ~OutputBatch();  // removes staged files that were never committed

    // Writes the content to a temporary file now (so I/O errors surface before anything is renamed).
    void stage(const std::string& path, const void* data, size_t bytes);
    void stage(const std::string& path, const std::string& text) { stage(path, text.data(), text.size()); }
    // Renames every staged file onto its target.
    void commit();

private:
    struct Staged {
        std::string tmp, path;
    };
    std::vector<Staged> staged_;
};

}  // namespace tca::io
