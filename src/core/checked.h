// Checked size arithmetic. A byte count or element count that wraps modulo 2^64 turns a huge
// request into a tiny buffer, and every later bounds check then passes; so every size the library
// computes from caller-controlled numbers goes through these helpers, which throw instead of
// wrapping:
//   - a negative factor is a bad argument (TCA_ERROR_INVALID_ARGUMENT);
//   - a result past what the type holds is a request no memory can serve (TCA_ERROR_OUT_OF_MEMORY).
// `what` names the quantity in the message ("tensor [h, t, d] f32 bytes", "kept_idx bytes").
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

#include "core/error.h"

namespace tca::detail {

[[noreturn]] inline void throw_size_overflow(const char* what) {
    throw Error(TCA_ERROR_OUT_OF_MEMORY, std::string(what) + ": the size overflows " +
                                             std::to_string(std::numeric_limits<size_t>::digits) +
                                             "-bit arithmetic (far beyond any device's memory)");
}

inline size_t checked_mul(size_t a, size_t b, const char* what) {
    size_t r = 0;
    if (__builtin_mul_overflow(a, b, &r)) throw_size_overflow(what);
    return r;
}

inline size_t checked_add(size_t a, size_t b, const char* what) {
    size_t r = 0;
    if (__builtin_add_overflow(a, b, &r)) throw_size_overflow(what);
    return r;
}

// The product of counts (shape dimensions, strides, element sizes); each must be >= 0.
inline size_t checked_product(std::initializer_list<int64_t> factors, const char* what) {
    size_t r = 1;
    for (int64_t f : factors) {
        if (f < 0) throw Error(TCA_ERROR_INVALID_ARGUMENT, std::string(what) + ": negative count " + std::to_string(f));
        r = checked_mul(r, size_t(f), what);
    }
    return r;
}

// Signed element offsets (strides are int64 in elements).
inline int64_t checked_mul_i64(int64_t a, int64_t b, const char* what) {
    int64_t r = 0;
    if (__builtin_mul_overflow(a, b, &r)) throw_size_overflow(what);
    return r;
}

inline int64_t checked_add_i64(int64_t a, int64_t b, const char* what) {
    int64_t r = 0;
    if (__builtin_add_overflow(a, b, &r)) throw_size_overflow(what);
    return r;
}

// A size that must also fit a narrower type (an int32 index, a uint32 push constant or group
// count): throws TCA_ERROR_UNSUPPORTED when it does not, since the request is valid but too large
// for what the kernels address.
template <class To>
To checked_narrow(uint64_t v, const char* what) {
    static_assert(std::numeric_limits<To>::is_integer, "integer target");
    if (v > uint64_t(std::numeric_limits<To>::max()))
        throw Error(TCA_ERROR_UNSUPPORTED, std::string(what) + ": " + std::to_string(v) + " is above the kernels' limit of " +
                                               std::to_string(uint64_t(std::numeric_limits<To>::max())));
    return To(v);
}

// True when [offset, offset + bytes) lies inside a buffer of `size` bytes (no wrap possible).
inline bool range_fits(size_t offset, size_t bytes, size_t size) { return offset <= size && bytes <= size - offset; }

}  // namespace tca::detail
