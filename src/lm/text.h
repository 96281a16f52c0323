// The text an LM run reads: non-overlapping windows of `context` bytes of a file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tca::detail::lm {

struct TextWindows {
    int context = 0, count = 0;
    int64_t offset = 0;          // byte offset of window 0 in the file
    std::vector<uint8_t> bytes;  // count * context bytes
    const uint8_t* window(int i) const { return bytes.data() + size_t(i) * context; }
};

// Windows i = 0 .. count-1 cover bytes [offset + i*context, offset + (i+1)*context) of the file.
// windows <= 0: every full window after offset. Throws tca::detail::Error (TCA_ERROR_IO for an unreadable
// file, TCA_ERROR_INVALID_ARGUMENT when the file is too short for what was asked).
TextWindows read_windows(const std::string& path, int64_t offset, int context, int windows);

}  // namespace tca::detail::lm
