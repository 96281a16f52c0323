#include "cli/lm_common.h"

#include <cstdio>
#include <cstdlib>
#include <memory>


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
    tca_profile* raw = nullptr;
    tca::check(tca_profile_load(path.c_str(), &raw));  // the profile loader, with its validation
    const std::unique_ptr<tca_profile, tca_status (*)(tca_profile*)> prof(raw, tca_profile_destroy);
    tca_params p{};
    p.struct_size = sizeof p;
    tca::check(tca_profile_params(prof.get(), &p));
    return ProfileParams{p.block, p.window, p.tau, p.alpha};
}

}  // namespace tca::detail::cli
