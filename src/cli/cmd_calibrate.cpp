// tca calibrate: spec Phase 1 on one layer's Q and K; writes the profile JSON (docs/profile.md).
#include <fmt/core.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "io/atomic_file.h"
#include "method/calibrate.h"

namespace tca::detail::cli {

void register_calibrate(CLI::App& app) {
    auto* cmd = app.add_subcommand("calibrate", "Calibrate per-KV-head sparsity (p*) on Q/K of one layer; write a profile");
    struct Opts {
        std::string q, k, out, device;
        method::TcaParams params;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("--q", o->q, "queries .npy [Hq, L, d]")->required();
    cmd->add_option("--k", o->k, "keys .npy [Hkv, L, d]")->required();
    cmd->add_option("--block", o->params.block, "block size b (power of two)")->capture_default_str()->check(positive_int());
    cmd->add_option("--window", o->params.window, "local window w (must be shorter than L)")
        ->capture_default_str()
        ->check(positive_int());
    cmd->add_option("--tau", o->params.tau, "retained-mass target in (0, 1]")->capture_default_str();
    cmd->add_option("--alpha", o->params.alpha, "redundancy weight in [0, 1]")->capture_default_str();
    cmd->add_option("--out", o->out, "profile .json to write")->required();
    cmd->add_option("--device", o->device, "device name (see `tca devices`); default $TCA_DEVICE, else the best");
    cmd->callback([o] {
        method::validate_params(o->params);  // bad flags fail before any file or device work
        io::check_output_path(o->out);
        const auto q = load_tensor(o->q, "--q");
        const auto k = load_tensor(o->k, "--k");
        require(q.tokens == k.tokens && q.dim == k.dim, TCA_ERROR_SHAPE_MISMATCH,
                fmt::format("--q is [{}, {}, {}] but --k is [{}, {}, {}]: token count and head dim must match", q.heads,
                            q.tokens, q.dim, k.heads, k.tokens, k.dim));
        require(q.heads % k.heads == 0, TCA_ERROR_SHAPE_MISMATCH,
                fmt::format("{} query heads are not a multiple of {} KV heads", q.heads, k.heads));
        require(k.tokens > o->params.window, TCA_ERROR_INVALID_ARGUMENT,
                fmt::format("window {} is not shorter than the calibration sequence ({} tokens): nothing to select; "
                            "pass a smaller --window or a longer sequence",
                            o->params.window, k.tokens));
        auto dev = open_cli_device(o->device);
        const auto profile = method::calibrate(*dev, o->params, {q}, {k});
        const std::string text = method::profile_to_json(profile);
        io::write_file_atomic(o->out, text.data(), text.size());
        for (const auto& h : profile.heads)
            fmt::print(stderr, "tca: kv head {}: candidate {} (mean keep {:.1f}/{}), covered {:.4f}, kept {}/{} ({:.1f}%)\n",
                       h.kv_head, h.candidate, method::mean_keep(profile.keep_counts, h.p), o->params.block,
                       h.covered_mass, h.kept_tokens, h.global_tokens, 100 * h.keep_ratio);
    });
}

}  // namespace tca::detail::cli
