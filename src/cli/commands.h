// Each sub-command adds itself to the app with a callback that does its work (and throws
// tca::Error on failure). register_all() lists them.
#pragma once

#include <CLI/CLI.hpp>

namespace tca::cli {

void register_devices(CLI::App& app);

inline void register_all(CLI::App& app) {
    register_devices(app);
}

}  // namespace tca::cli
