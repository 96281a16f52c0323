// tca lm: the in-house byte-level LM (docs/lm.md) over non-overlapping windows of a text, with
// attention through libtca (dense or TCA from a profile) on a device; prints bits per byte and,
// per layer, keep ratios, KV bytes and (with --compare-dense) the attention outputs' error.
#include <filesystem>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/lm_common.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/npy.h"
#include "lm/forward.h"
#include "lm/matmul.h"
#include "lm/model.h"
#include "lm/text.h"

namespace tca::detail::cli {

namespace {

struct Opts {
    std::string model, text, device, profile, json, dump, per_byte;
    int64_t offset = 0;
    int context = 4096, windows = 1, threads = 0;
    bool dense = false, compare_dense = false;
};

// Per layer, summed over windows.
struct LayerTotals {
    std::vector<int64_t> kept, global;
    uint64_t kv_bytes = 0, kv_bytes_dense = 0;
    double rel_sum = 0, rel_max = 0;
    int64_t rel_rows = 0;
};

void run(const Opts& o) {
    if (!o.json.empty()) io::check_output_path(o.json);  // before the forward passes, not after
    if (!o.per_byte.empty()) io::check_output_path(o.per_byte);
    const lm::Model model = lm::load_model(o.model);
    const lm::Config& c = model.cfg;
    const lm::TextWindows text = lm::read_windows(o.text, o.offset, o.context, o.windows);
    std::unique_ptr<tca::Profile> profile;
    ProfileParams pp;
    if (!o.dense) {
        profile = std::make_unique<tca::Profile>(tca::Profile::load(o.profile));
        pp = read_profile_params(o.profile);
    }
    tca::Context ctx = open_lm_context(o.device);

    lm::ForwardOptions fo;
    fo.profile = profile.get();
    fo.window = pp.window;
    fo.compare_dense = o.compare_dense;
    fo.threads = o.threads;
    io::OutputBatch dumps;
    if (!o.dump.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(o.dump, ec);
        if (ec) throw Error(TCA_ERROR_IO, "cannot create " + o.dump + ": " + ec.message());
    }

    std::vector<LayerTotals> totals(size_t(c.n_layers));
    for (auto& t : totals) t.kept.assign(size_t(c.n_kv_heads), 0), t.global.assign(size_t(c.n_kv_heads), 0);
    double bits = 0, matmul_s = 0, attn_s = 0;
    int64_t predicted = 0;
    std::vector<double> window_bpb;
    std::vector<float> per_byte;  // [windows, context - 1]
    for (int w = 0; w < text.count; ++w) {
        fo.on_qkv = nullptr;
        if (!o.dump.empty() && w == 0)
            fo.on_qkv = [&](int l, const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v) {
                const int64_t T = text.context, hd = c.head_dim;
                const auto stage = [&](const char* name, const std::vector<float>& x, int64_t heads) {
                    const auto bytes = io::encode_npy(io::make_f32({heads, T, hd}, x));
                    dumps.stage((std::filesystem::path(o.dump) / fmt::format("layer{}_{}.npy", l, name)).string(),
                                bytes.data(), bytes.size());
                };
                stage("q", q, c.n_heads), stage("k", k, c.n_kv_heads), stage("v", v, c.n_kv_heads);
            };
        const lm::WindowResult r = lm::forward(model, ctx, text.window(w), text.context, fo);
        bits += r.bits, predicted += r.predicted, matmul_s += r.matmul_seconds, attn_s += r.attention_seconds;
        window_bpb.push_back(r.bits / r.predicted);
        if (!o.per_byte.empty()) per_byte.insert(per_byte.end(), r.position_bits.begin(), r.position_bits.end());
        for (int l = 0; l < c.n_layers; ++l) {
            const lm::LayerStats& s = r.layers[size_t(l)];
            LayerTotals& t = totals[size_t(l)];
            for (int h = 0; h < c.n_kv_heads; ++h) t.kept[size_t(h)] += s.kept[size_t(h)], t.global[size_t(h)] += s.global_tokens;
            t.kv_bytes += s.kv_bytes, t.kv_bytes_dense += s.kv_bytes_dense;
            t.rel_sum += s.rel_l1_sum, t.rel_max = std::max(t.rel_max, s.rel_l1_max), t.rel_rows += s.rel_l1_rows;
        }
        fmt::print(stderr, "tca: window {}/{}: {:.4f} bits per byte ({:.1f} s)\n", w + 1, text.count,
                   r.bits / r.predicted, r.matmul_seconds + r.attention_seconds);
    }
    dumps.commit();
    if (!o.per_byte.empty()) io::write_npy(o.per_byte, io::make_f32({text.count, text.context - 1}, per_byte));

    const double bpb = bits / double(predicted);
    uint64_t kv = 0, kv_dense = 0;
    for (const auto& t : totals) kv += t.kv_bytes, kv_dense += t.kv_bytes_dense;
    const double reduction = 1.0 - double(kv) / double(kv_dense);
    fmt::print("bits per byte: {:.4f} ({} windows of {} bytes, {} predictions; {})\n", bpb, text.count, text.context,
               predicted,
               o.dense ? std::string("dense attention")
                       : fmt::format("TCA, profile {} (tau {}, b {}, w {})", o.profile, pp.tau, pp.block, pp.window));
    fmt::print("KV cache: {} of {} bytes per window ({:.1f}% reduction)\n", kv / text.count, kv_dense / text.count,
               100 * reduction);
    nlohmann::json layers = nlohmann::json::array();
    for (int l = 0; l < c.n_layers; ++l) {
        const LayerTotals& t = totals[size_t(l)];
        std::vector<double> keep;
        std::string line = fmt::format("layer {}: keep", l);
        for (int h = 0; h < c.n_kv_heads; ++h) {
            keep.push_back(t.global[size_t(h)] ? double(t.kept[size_t(h)]) / double(t.global[size_t(h)]) : 1.0);
            line += fmt::format(" {:.3f}", keep.back());
        }
        nlohmann::json jl = {{"layer", l},
                             {"keep_ratio", keep},
                             {"kv_bytes", t.kv_bytes / text.count},
                             {"kv_bytes_dense", t.kv_bytes_dense / text.count}};
        if (o.compare_dense) {
            const double mean = t.rel_rows ? t.rel_sum / double(t.rel_rows) : 0.0;
            jl["rel_l1_mean"] = mean, jl["rel_l1_max"] = t.rel_max, jl["rel_l1_rows"] = t.rel_rows;
            line += fmt::format("; attention rel. L1 error vs dense: mean {:.2e}, worst {:.2e}", mean, t.rel_max);
        }
        fmt::print("{}\n", line);
        layers.push_back(jl);
    }
    fmt::print(stderr, "tca: host matmuls {:.1f} s, attention (device + transfers) {:.1f} s\n", matmul_s, attn_s);

    if (!o.json.empty()) {
        nlohmann::json j = {{"model", o.model},
                            {"parameters", lm::parameter_count(model)},
                            {"text", o.text},
                            {"offset", o.offset},
                            {"context", text.context},
                            {"windows", text.count},
                            {"device", ctx.info().name},
                            {"mode", o.dense ? "dense" : "tca"},
                            {"profile", o.dense ? nlohmann::json() : nlohmann::json(o.profile)},
                            {"block", o.dense ? 0 : pp.block},
                            {"window", o.dense ? 0 : pp.window},
                            {"tau", o.dense ? nlohmann::json() : nlohmann::json(pp.tau)},
                            {"compare_dense", o.compare_dense},
                            {"bits_per_byte", bpb},
                            {"predictions", predicted},
                            {"window_bits_per_byte", window_bpb},
                            {"layers", layers},
                            {"kv_bytes", kv / text.count},
                            {"kv_bytes_dense", kv_dense / text.count},
                            {"kv_reduction", reduction},
                            {"seconds", {{"matmul", matmul_s}, {"attention", attn_s}}}};
        const std::string s = j.dump(2) + "\n";
        io::write_file_atomic(o.json, s.data(), s.size());
    }
}

}  // namespace

void register_lm(CLI::App& app) {
    auto* cmd = app.add_subcommand(
        "lm", "Bits per byte of the in-house byte-level LM (docs/lm.md) on a text, attention dense or TCA through libtca");
    auto o = std::make_shared<Opts>();
    cmd->add_option("--model", o->model, "model.json (weights file beside it)")->required();
    cmd->add_option("--text", o->text, "text file (bytes)")->required();
    cmd->add_option("--offset", o->offset, "byte offset of the first window")
        ->capture_default_str()
        ->check(integer_in(0, std::numeric_limits<int64_t>::max()));
    cmd->add_option("--context", o->context, "bytes per window (positions 0..L-1; windows do not overlap)")
        ->capture_default_str()
        ->check(positive_int());
    cmd->add_option("--windows", o->windows, "number of windows; 0 = every full window after --offset")
        ->capture_default_str()
        ->check(non_negative_int());
    cmd->add_option("--device", o->device, "device name (see `tca devices`); default $TCA_DEVICE, else the best");
    auto* prof = cmd->add_option("--profile", o->profile, "TCA attention with this calibration profile (tca lm-calibrate)");
    auto* dense = cmd->add_flag("--dense", o->dense, "dense attention (the baseline)");
    prof->excludes(dense);
    dense->excludes(prof);
    cmd->add_flag("--compare-dense", o->compare_dense,
                  "also run dense attention on every layer's inputs; report the relative L1 error of the outputs");
    cmd->add_option("--json", o->json, "write the results as JSON");
    cmd->add_option("--per-byte", o->per_byte,
                    "write the bits of every predicted byte: float32 .npy [windows, context - 1], entry [w][t] = "
                    "-log2 p(byte t + 1 of window w)");
    cmd->add_option("--dump", o->dump, "write the first window's Q/K/V after RoPE: DIR/layer{i}_{q,k,v}.npy, float32 [H, L, hd]");
    cmd->add_option("--threads", o->threads, "host matmul threads (0 = one per core, at most 8)")
        ->capture_default_str()
        ->check(integer_in(0, kMaxThreads));
    cmd->callback([o] {
        if (o->profile.empty() && !o->dense) throw CLI::RequiredError("--profile or --dense");
        run(*o);
    });
}

}  // namespace tca::detail::cli
