// Pieces shared by `tca lm` and `tca lm-calibrate`: the device as a public-API context, and the
// parameters recorded in a profile file.
#pragma once

#include <string>

#include "tca/tca.hpp"

namespace tca::detail::cli {

// --device if given, else $TCA_DEVICE, else the default device (tca_context_create's rule); says on
// stderr which one it opened, like every other sub-command.
tca::Context open_lm_context(const std::string& flag);

// The "params" of a profile file (docs/profile.md). The public API keeps them inside the profile
// handle; `tca lm` needs w to know which query rows could drop anything, and reports b and tau.
struct ProfileParams {
    int block = 0, window = 0;
    double tau = 0, alpha = 0;
};
ProfileParams read_profile_params(const std::string& path);

}  // namespace tca::detail::cli
