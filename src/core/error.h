// Errors inside libtca: one exception type carrying a public status code and a message.
// The C API catches it at the boundary and turns it into (tca_status, tca_last_error()).
#pragma once

#include <stdexcept>
#include <string>

#include "tca/tca.h"

namespace tca::detail {

class Error : public std::runtime_error {
public:
    Error(tca_status code, const std::string& message) : std::runtime_error(message), code_(code) {}
    tca_status code() const { return code_; }

private:
    tca_status code_;
};

// Throws Error(code, message) when `ok` is false. Used for argument validation.
inline void require(bool ok, tca_status code, const std::string& message) {
    if (!ok) throw Error(code, message);
}

}  // namespace tca::detail
