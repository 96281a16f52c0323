// Each sub-command adds itself to the app with a callback that does its work (and throws
// tca::detail::Error on failure). register_all() lists them.
#pragma once

#include <CLI/CLI.hpp>

namespace tca::detail::cli {

void register_devices(CLI::App& app);
void register_synth(CLI::App& app);
void register_calibrate(CLI::App& app);
void register_attend(CLI::App& app);
void register_bench(CLI::App& app);  // bench/cmd_bench.cpp
void register_lm(CLI::App& app);
void register_lm_calibrate(CLI::App& app);
void register_lm_generate(CLI::App& app);

inline void register_all(CLI::App& app) {
    register_devices(app);
    register_synth(app);
    register_calibrate(app);
    register_attend(app);
    register_bench(app);
    register_lm(app);
    register_lm_calibrate(app);
    register_lm_generate(app);
}

}  // namespace tca::detail::cli
