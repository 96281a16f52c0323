// How every sub-command's failure reaches the user: one line `tca: error (STATUS): message` on
// stderr and exit status 1, whatever was thrown. The library's own errors keep their status and
// message; anything else (the JSON library, std::filesystem, an allocation) is mapped to the status
// it means, so no raw library exception text reaches the user.
#pragma once

namespace tca::detail::cli {

// Call from inside a catch block: prints the exception being handled; returns the exit status.
int report_current_exception();

}  // namespace tca::detail::cli
