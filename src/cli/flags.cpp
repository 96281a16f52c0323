#include "cli/flags.h"

namespace tca::detail::cli {

std::string integer_error(const std::string& text, int64_t lo, uint64_t hi) {
    const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    const bool negative = !text.empty() && text[0] == '-';
    const std::string digits = negative ? text.substr(1) : text;
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos)
        return "'" + text + "' is not a decimal integer (expected one in " + range + ")";
    // CLI11 converts with base 0: "010" would be read as octal 8.
    if (digits.size() > 1 && digits[0] == '0')
        return "'" + text + "' is not a decimal integer: leading zeros are not allowed (expected one in " + range + ")";
    // Magnitude with overflow detection: 20 digits may already pass 2^64.
    uint64_t m = 0;
    for (char c : digits)
        if (__builtin_mul_overflow(m, uint64_t(10), &m) || __builtin_add_overflow(m, uint64_t(c - '0'), &m))
            return text + " is out of range " + range;
    // -m < lo: with lo >= 0, any m > 0 (or m == 0 when lo > 0); else m past |lo| (safe for INT64_MIN).
    const bool below = negative ? (lo >= 0 ? m != 0 || lo > 0 : m > uint64_t(-(lo + 1)) + 1) : (lo > 0 && m < uint64_t(lo));
    const bool above = !negative && m > hi;
    if (below || above) return text + " is out of range " + range;
    return "";
}

CLI::Validator integer_in(int64_t lo, uint64_t hi) {
    return CLI::Validator(
        [lo, hi](std::string& text) { return integer_error(text, lo, hi); },
        "INT in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

}  // namespace tca::detail::cli
