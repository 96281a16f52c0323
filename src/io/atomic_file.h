// Atomic file output: content is written to a temporary file in the target's directory and
// renamed over the target once complete. A batch stages several files and renames them together
// at commit(), so a command that fails half-way leaves none of its outputs behind and every file
// that existed before exactly as it was.
//
// Only regular files are written: a target that is a symbolic link, a device node, a fifo, a
// socket or a directory is rejected (TCA_ERROR_IO) and left alone. Renaming over such a path would
// replace the link or node itself with a regular file (as root, `--out /dev/null` would destroy
// /dev/null), which is never what the caller meant.
#pragma once

#include <string>
#include <vector>

namespace tca::detail::io {

// Throws TCA_ERROR_IO unless `path` is absent or a regular file: the check stage() makes, for
// callers that want to fail before hours of work rather than after.
void check_output_path(const std::string& path);

// Writes bytes to path atomically (temp file + rename). Throws TCA_ERROR_IO.
void write_file_atomic(const std::string& path, const void* data, size_t bytes);
// The whole content of a regular file (a directory or a device is TCA_ERROR_IO, not an empty read).
std::vector<unsigned char> read_file(const std::string& path);

class OutputBatch {
public:
    OutputBatch() = default;
    OutputBatch(const OutputBatch&) = delete;
    OutputBatch& operator=(const OutputBatch&) = delete;
    ~OutputBatch();  // removes staged files that were never committed

    // Checks the target, then writes the content to a temporary file now (so I/O errors surface
    // before anything is renamed).
    void stage(const std::string& path, const void* data, size_t bytes);
    void stage(const std::string& path, const std::string& text) { stage(path, text.data(), text.size()); }
    // Renames every staged file onto its target. All or nothing: when one rename fails, the
    // targets renamed before it get their previous content back (or are removed if they did not
    // exist), and the error is thrown.
    void commit();

private:
    struct Staged {
        std::string tmp, path;
    };
    std::vector<Staged> staged_;
};

}  // namespace tca::detail::io
