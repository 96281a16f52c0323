// tca lm-calibrate: spec Phase 1 for the in-house LM -- one dense forward pass over one held-in
// text window collects every layer's Q and K (after RoPE), then tca_calibrate over all layers
// writes the model's profile.
#include <fmt/core.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/lm_common.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "lm/forward.h"
#include "lm/model.h"
#include "lm/text.h"

namespace tca::detail::cli {

namespace {

struct Opts {
    std::string model, text, device, out;
    int64_t offset = 0;
    int context = 4096, threads = 0;
    double fixed_keep = 0;  // > 0: a fixed-ratio profile, no calibration
    tca_params params{};
};

void run(const Opts& o) {
    io::check_output_path(o.out);  // before the forward pass, not after
    const lm::Model model = lm::load_model(o.model);
    const lm::Config& c = model.cfg;
    // Bad --block/--tau/--alpha fail now, not after the forward pass: a fixed-budget profile runs
    // the library's own parameter checks (the same ones tca_calibrate applies).
    const tca::Profile fixed = tca::Profile::fixed(&o.params, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim,
                                                   o.fixed_keep > 0 ? o.fixed_keep : 1.0);
    if (o.fixed_keep > 0) {
        // Baselines need no forward pass: e.g. --fixed-keep below 1/block is the window plus one token
        // per block (the sparsest profile the method has), the floor any retrieval test must beat.
        fixed.save(o.out);
        fmt::print(stderr, "tca: fixed-ratio profile, expected keep ratio {:.4g} on every head\n",
                   fixed.keep_ratio(0, 0));
        return;
    }
    require(o.context > o.params.window, TCA_ERROR_INVALID_ARGUMENT,
            fmt::format("--window {} is not shorter than --context {}: nothing to select", o.params.window, o.context));
    const lm::TextWindows text = lm::read_windows(o.text, o.offset, o.context, 1);
    tca::Context ctx = open_lm_context(o.device);

    // Q and K go to the device as they are made, so the host holds one layer at a time.
    std::vector<tca::Tensor> q, k;
    lm::ForwardOptions fo;
    fo.threads = o.threads;
    fo.on_qkv = [&](int, const std::vector<float>& lq, const std::vector<float>& lk, const std::vector<float>&) {
        q.emplace_back(ctx, TCA_F32, c.n_heads, o.context, c.head_dim);
        q.back().upload(lq.data(), lq.size() * sizeof(float));
        k.emplace_back(ctx, TCA_F32, c.n_kv_heads, o.context, c.head_dim);
        k.back().upload(lk.data(), lk.size() * sizeof(float));
    };
    const lm::WindowResult r = lm::forward(model, ctx, text.window(0), o.context, fo);
    fmt::print(stderr, "tca: calibration window: {:.4f} bits per byte (dense)\n", r.bits / r.predicted);

    std::vector<const tca::Tensor*> qp, kp;
    for (size_t l = 0; l < q.size(); ++l) qp.push_back(&q[l]), kp.push_back(&k[l]);
    const tca::Profile profile = tca::Profile::calibrate(ctx, &o.params, qp, kp);
    profile.save(o.out);
    for (int l = 0; l < c.n_layers; ++l) {
        std::string line = fmt::format("layer {}: keep ratio", l);
        for (int h = 0; h < c.n_kv_heads; ++h) line += fmt::format(" {:.3f}", profile.keep_ratio(l, h));
        fmt::print(stderr, "tca: {}\n", line);
    }
}

}  // namespace

void register_lm_calibrate(CLI::App& app) {
    auto* cmd = app.add_subcommand("lm-calibrate",
                                   "Calibrate a TCA profile for the in-house LM (docs/lm.md) on one held-in text window");
    auto o = std::make_shared<Opts>();
    o->params.struct_size = sizeof o->params;
    tca_params_init(&o->params);
    // The spec's w = 4096 would leave nothing outside the window at this model's context of 4096.
    o->params.window = 256;
    cmd->add_option("--model", o->model, "model.json (weights file beside it)")->required();
    cmd->add_option("--text", o->text, "held-in text file (bytes); required unless --fixed-keep");
    cmd->add_option("--offset", o->offset, "byte offset of the calibration window")
        ->capture_default_str()
        ->check(integer_in(0, std::numeric_limits<int64_t>::max()));
    cmd->add_option("--context", o->context, "calibration window in bytes (L)")->capture_default_str()->check(positive_int());
    cmd->add_option("--block", o->params.block, "block size b (power of two)")->capture_default_str()->check(positive_int());
    cmd->add_option("--window", o->params.window, "local window w (shorter than --context)")
        ->capture_default_str()
        ->check(positive_int());
    cmd->add_option("--tau", o->params.tau, "retained-mass target in (0, 1]")->capture_default_str();
    cmd->add_option("--alpha", o->params.alpha, "redundancy weight in [0, 1]")->capture_default_str();
    cmd->add_option("--device", o->device, "device name (see `tca devices`); default $TCA_DEVICE, else the best");
    cmd->add_option("--out", o->out, "profile .json to write")->required();
    cmd->add_option("--threads", o->threads, "host matmul threads (0 = one per core, at most 8)")
        ->capture_default_str()
        ->check(integer_in(0, kMaxThreads));
    cmd->add_option("--fixed-keep", o->fixed_keep,
                    "write a fixed-ratio profile with this expected keep ratio in (0, 1] for the model's shape "
                    "instead of calibrating (below 1/block: the window plus one token per block)")
        ->check(CLI::Range(std::numeric_limits<double>::min(), 1.0));
    cmd->callback([o] {
        if (o->text.empty() && !(o->fixed_keep > 0)) throw CLI::RequiredError("--text");
        run(*o);
    });
}

}  // namespace tca::detail::cli
