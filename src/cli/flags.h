// Integer flags that say what is wrong instead of wrapping. CLI11's own conversion reads "-1"
// into an unsigned flag as 2^64 - 1 and "010" as octal 8; every integer flag of the CLI therefore
// checks its text first: decimal digits with an optional leading '-' and no leading zero, and a
// value in [lo, hi].
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <limits>
#include <string>

namespace tca::detail::cli {

// "" when `text` is a decimal integer in [lo, hi], else what is wrong with it.
std::string integer_error(const std::string& text, int64_t lo, uint64_t hi);

// A CLI11 check of the above (names the flag in its message).
CLI::Validator integer_in(int64_t lo, uint64_t hi);

// The usual ranges.
inline CLI::Validator positive_int() { return integer_in(1, uint64_t(std::numeric_limits<int>::max())); }
// --threads: more host threads than this is a typo, not a machine.
constexpr uint64_t kMaxThreads = 1024;

inline CLI::Validator non_negative_int() { return integer_in(0, uint64_t(std::numeric_limits<int>::max())); }

}  // namespace tca::detail::cli
