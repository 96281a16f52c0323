#include "lm/text.h"

#include <fmt/core.h>

#include "core/error.h"
#include "io/atomic_file.h"

namespace tca::detail::lm {

TextWindows read_windows(const std::string& path, int64_t offset, int context, int windows) {
    require(context >= 2, TCA_ERROR_INVALID_ARGUMENT, fmt::format("--context {} must be at least 2 bytes", context));
    require(offset >= 0, TCA_ERROR_INVALID_ARGUMENT, fmt::format("--offset {} is negative", offset));
    const auto file = io::read_file(path);
    const int64_t size = int64_t(file.size());
    const int64_t fit = offset < size ? (size - offset) / context : 0;
    require(fit >= 1, TCA_ERROR_INVALID_ARGUMENT,
            fmt::format("{} has {} bytes: no window of {} bytes fits after offset {}", path, size, context, offset));
    require(windows <= fit, TCA_ERROR_INVALID_ARGUMENT,
            fmt::format("{} has {} bytes: only {} windows of {} bytes fit after offset {}, {} asked", path, size, fit,
                        context, offset, windows));
    TextWindows w;
    w.context = context, w.offset = offset;
    w.count = windows > 0 ? windows : int(fit);
    w.bytes.assign(file.begin() + offset, file.begin() + offset + int64_t(w.count) * context);
    return w;
}

}  // namespace tca::detail::lm
