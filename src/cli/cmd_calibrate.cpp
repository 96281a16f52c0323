// tca calibrate: spec Phase 1 on one layer's Q and K; writes the profile JSON (docs/profile.md).
// The work is in the tools layer (tools.h).
#include "cli/commands.h"
#include "cli/flags.h"
#include "tca/tca.hpp"
#include "tools/tools.h"

namespace tca::detail::cli {

void register_calibrate(CLI::App& app) {
    auto* cmd = app.add_subcommand("calibrate", "Calibrate per-KV-head sparsity (p*) on Q/K of one layer; write a profile");
    auto o = std::make_shared<tools::CalibrateRequest>();
    tca_params defaults{};  // the spec's defaults, from the public API
    defaults.struct_size = sizeof defaults;
    tca::check(tca_params_init(&defaults));
    o->block = defaults.block, o->window = defaults.window, o->tau = defaults.tau, o->alpha = defaults.alpha;
    cmd->add_option("--q", o->q, "queries .npy [Hq, L, d]")->required();
    cmd->add_option("--k", o->k, "keys .npy [Hkv, L, d]")->required();
    cmd->add_option("--block", o->block, "block size b (power of two)")->capture_default_str()->check(positive_int());
    cmd->add_option("--window", o->window, "local window w (must be shorter than L)")
        ->capture_default_str()
        ->check(positive_int());
    cmd->add_option("--tau", o->tau, "retained-mass target in (0, 1]")->capture_default_str();
    cmd->add_option("--alpha", o->alpha, "redundancy weight in [0, 1]")->capture_default_str();
    cmd->add_option("--out", o->out, "profile .json to write")->required();
    cmd->add_option("--device", o->device, "device name (see `tca devices`); default $TCA_DEVICE, else the best");
    cmd->callback([o] { tools::calibrate(*o); });
}

}  // namespace tca::detail::cli
