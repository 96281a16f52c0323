#include "cli/lm_common.h"

#include <cstdio>
#include <cstdlib>

#include "method/profile.h"

namespace tca::detail::cli {

tca::Context open_lm_context(const std::string& flag) {
    const char* env = std::getenv("TCA_DEVICE");
    const std::string source = !flag.empty() ? "--device" : (env && *env ? "TCA_DEVICE" : "default");
    tca::Context ctx(flag);  // "" = $TCA_DEVICE, else the best-ranked device
    const auto info = ctx.info();
    std::fprintf(stderr, "tca: device %s (%s) [%s]\n", info.name, info.device, source.c_str());
    return ctx;
}

ProfileParams read_profile_params(const std::string& path) {
    const method::Profile p = method::load_profile(path);  // the profile loader, with its validation
    return ProfileParams{p.params.block, p.params.window, p.params.tau, p.params.alpha};
}

}  // namespace tca::detail::cli
