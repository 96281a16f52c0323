// tca attend: TCA (with a profile) or dense attention over Q/K/V files on a device, optionally
// decoding the last N tokens one at a time through the spec's decode cache (the work: tools.h).
#include "cli/commands.h"
#include "cli/flags.h"
#include "tools/tools.h"

namespace tca::detail::cli {

void register_attend(CLI::App& app) {
    auto* cmd = app.add_subcommand("attend", "TCA (with --profile) or dense attention over Q/K/V .npy files");
    auto o = std::make_shared<tools::AttendRequest>();
    cmd->add_option("--q", o->q, "queries .npy [Hq, L, d]")->required();
    cmd->add_option("--k", o->k, "keys .npy [Hkv, L, d]")->required();
    cmd->add_option("--v", o->v, "values .npy [Hkv, L, d]")->required();
    auto* prof = cmd->add_option("--profile", o->profile, "calibration profile .json (TCA attention)");
    auto* dense = cmd->add_flag("--dense", o->dense, "dense attention (the baseline)");
    prof->excludes(dense);
    dense->excludes(prof);
    cmd->add_option("--device", o->device, "device name (see `tca devices`); default $TCA_DEVICE, else the best");
    cmd->add_option("--out", o->out, "output .npy, float32 [Hq, L, d]")->required();
    cmd->add_option("--selection", o->selection, "uint8 [Hkv, L]: 1 kept by selection, 2 local window/uncompressed, 0 dropped");
    cmd->add_option("--stats", o->stats, "stats .json: cache sizes, KV bytes, error-bound slack vs dense");
    cmd->add_option("--decode-steps", o->decode_steps, "decode the last N tokens one at a time")
        ->capture_default_str()
        ->check(non_negative_int());
    cmd->add_option("--chunk", o->chunk,
                    "feed the prompt (the first L - N tokens) as chunks of C tokens, the last may be shorter, "
                    "through a chunked cache (spec \"Chunked prompt\"); works with --dense")
        ->check(positive_int());
    cmd->add_option("--kv-format", o->kv_format,
                    "K/V storage format: f32, f16 or bf16 (the .npy values are converted by the spec's rule); "
                    "q8_0 and q4_0 are not read yet")
        ->capture_default_str()
        ->check(CLI::IsMember({"f32", "f16", "bf16"}));
    cmd->callback([o, cmd] {
        if (o->profile.empty() && !o->dense) throw CLI::RequiredError("--profile or --dense");
        tools::attend(*o);
    });
}

}  // namespace tca::detail::cli
