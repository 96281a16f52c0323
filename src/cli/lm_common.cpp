#include "cli/lm_common.h"

#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"

namespace tca::cli {

tca::Context open_lm_context(const std::string& flag) {
    const char* env = std::getenv("TCA_DEVICE");
    const std::string source = !flag.empty() ? "--device" : (env && *env ? "TCA_DEVICE" : "default");
    tca::Context ctx(flag);  // "" = $TCA_DEVICE, else the best-ranked device
    const auto info = ctx.info();
    std::fprintf(stderr, "tca: device %s (%s) [%s]\n", info.name, info.device, source.c_str());
    return ctx;
}

ProfileParams read_profile_params(const std::string& path) {
    const auto text = io::read_file(path);
    try {
        const auto doc = nlohmann::json::parse(text.begin(), text.end());
        const auto& p = doc.at("params");
        return ProfileParams{p.at("block").get<int>(), p.at("window").get<int>(), p.at("tau").get<double>(),
                             p.at("alpha").get<double>()};
    } catch (const nlohmann::json::exception& e) {
        throw Error(TCA_ERROR_IO, path + ": cannot read the profile's params: " + e.what());
    }
}

}  // namespace tca::cli
