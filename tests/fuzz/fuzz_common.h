// Shared by the libFuzzer harnesses (scripts/fuzz, docs in tests/fuzz/README.md).
//
// A parser may reject an input only with tca::detail::Error of an allowed status; any other exception
// escapes the harness and libFuzzer reports it as a crash, as it does sanitizer findings, a
// timeout or memory past -rss_limit_mb. scripts/fuzz also replays the seeds with TCA_FUZZ_EXPECT
// set: "ok" for the valid files (a rejection is fatal: the harness must reach a successful parse,
// not fail early on everything) and "error" for the near misses (an acceptance is fatal).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "core/error.h"

namespace tca::detail::fuzz {

inline bool expect(const char* what) {
    const char* e = std::getenv("TCA_FUZZ_EXPECT");
    return e != nullptr && std::strcmp(e, what) == 0;
}
inline bool expect_ok() {
    static const bool v = expect("ok");
    return v;
}
inline bool expect_error() {
    static const bool v = expect("error");
    return v;
}

// A rejection: fine unless its status is not one the parser documents, or the seed must load.
inline void rejected(const Error& e, std::initializer_list<tca_status> allowed) {
    bool ok = false;
    for (tca_status s : allowed) ok = ok || e.code() == s;
    if (!ok || expect_ok()) {
        std::fprintf(stderr, "fuzz: %s (status %d): %s\n", ok ? "a valid seed was rejected" : "unexpected status",
                     int(e.code()), e.what());
        std::abort();
    }
}

// An acceptance: fatal when replaying the near misses, which must all be rejected.
inline void accepted() {
    if (expect_error()) {
        std::fprintf(stderr, "fuzz: a near-miss seed was accepted\n");
        std::abort();
    }
}

// An invariant of an accepted input that does not hold.
[[noreturn]] inline void broken(const char* what) {
    std::fprintf(stderr, "fuzz: invariant broken: %s\n", what);
    std::abort();
}

}  // namespace tca::detail::fuzz
