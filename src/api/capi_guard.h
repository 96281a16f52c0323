// The C boundary: every entry point runs its body through guarded(), which maps exceptions to a
// status code and keeps the message for tca_last_error() (per thread).
#pragma once

#include <new>
#include <string>

#include "core/error.h"

namespace tca::detail::api {

inline thread_local std::string last_error;

inline tca_status fail(tca_status s, const std::string& msg) {
    last_error = msg;
    return s;
}

// Runs f, mapping exceptions to status codes. Clears the message on success.
template <class F>
tca_status guarded(F&& f) {
    try {
        f();
        last_error.clear();
        return TCA_OK;
    } catch (const Error& e) {
        return fail(e.code(), e.what());
    } catch (const std::bad_alloc&) {
        return fail(TCA_ERROR_OUT_OF_MEMORY, "host out of memory");
    } catch (const std::exception& e) {
        return fail(TCA_ERROR_INTERNAL, std::string("internal error: ") + e.what());
    } catch (...) {
        return fail(TCA_ERROR_INTERNAL, "internal error: unknown exception");
    }
}

}  // namespace tca::detail::api
