// tca bench: the sub-command. Parses the sweep, runs it, prints the table, writes JSON/CSV.
#include <fmt/core.h>

#include "bench.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "io/atomic_file.h"

namespace tca::detail::cli {

namespace {

// The equivalent explicit command line, recorded in the JSON so a run can be repeated exactly.
std::string command_line(const bench::Config& c, const std::string& dtype) {
    auto join = [](const auto& v) {
        std::string s;
        for (const auto& x : v) s += (s.empty() ? "" : ",") + fmt::format("{}", x);
        return s;
    };
    std::string s = "tca bench";
    if (!c.devices.empty()) s += " --device " + join(c.devices);
    if (!c.lengths.empty()) s += " --lengths " + join(c.lengths);
    s += fmt::format(" --heads {} --kv-heads {} --dim {} --kv-dtype {} --runs {} --warmup {} --decode-steps {}", c.heads,
                     c.kv_heads, c.dim, dtype, c.runs, c.warmup, c.decode_steps);
    if (!c.keep.empty()) s += " --keep " + join(c.keep);
    s += fmt::format(" --workload {} --window {} --block {} --tau {} --alpha {} --seed {}", c.workload, c.window,
                     c.block, c.tau, c.alpha, c.seed);
    if (c.calib_length > 0) s += fmt::format(" --calib-length {}", c.calib_length);
    if (!c.calibrate) s += " --no-calibrate";
    if (c.decode_only) s += " --decode-only";
    if (c.chunk > 0) s += fmt::format(" --chunk {}", c.chunk);
    return s;
}

}  // namespace

void register_bench(CLI::App& app) {
    auto* cmd = app.add_subcommand(
        "bench", "Benchmark dense vs TCA attention on one or more devices: time, stage split, KV bytes, error, roofline");
    auto cfg = std::make_shared<bench::Config>();
    auto dtype = std::make_shared<std::string>("f16");
    auto json_path = std::make_shared<std::string>();
    auto csv_path = std::make_shared<std::string>();
    auto no_calibrate = std::make_shared<bool>(false);
    cmd->add_option("--device", cfg->devices, "Device(s) to measure; repeat or comma-separate (default: the default device)")
        ->delimiter(',');
    cmd->add_option("--lengths", cfg->lengths,
                    "Context lengths (default 4096,8192,16384,32768; GPUs add 65536,131072)")
        ->delimiter(',')
        ->check(positive_int());
    cmd->add_option("--heads", cfg->heads, "Query heads (default 32, Llama-3.1-8B)")->check(positive_int());
    cmd->add_option("--kv-heads", cfg->kv_heads, "Key/value heads (default 8)")->check(positive_int());
    cmd->add_option("--dim", cfg->dim, "Head dimension (default 128)")->check(positive_int());
    cmd->add_option("--kv-dtype", *dtype, "K/V storage: f16, bf16 or f32")->check(CLI::IsMember({"f16", "bf16", "f32"}));
    cmd->add_option("--runs", cfg->runs, "Timed runs per case (median reported)")->check(positive_int());
    cmd->add_option("--warmup", cfg->warmup, "Untimed runs first")->check(non_negative_int());
    cmd->add_option("--decode-steps", cfg->decode_steps, "Timed decode steps per run (default 8)")
        ->check(positive_int());
    cmd->add_option("--keep", cfg->keep, "TCA fixed keep ratios (default 0.1,0.25,0.4)")->delimiter(',');
    cmd->add_option("--workload", cfg->workload,
                    "Synthetic kind of the inputs and of the calibration sequence: sink, local, uniform, bipolar, "
                    "retrieval, random, mix (default mix)");
    cmd->add_option("--calib-length", cfg->calib_length, "Calibration sequence length (default: the longest swept length, at most 16384, at least 2 x window)")
        ->check(positive_int());
    cmd->add_flag("--no-calibrate", *no_calibrate, "Only the fixed keep ratios");
    cmd->add_option("--window", cfg->window, "TCA local window")->check(positive_int());
    cmd->add_option("--block", cfg->block, "TCA block size")->check(positive_int());
    cmd->add_option("--tau", cfg->tau, "Calibration retained-mass target");
    cmd->add_option("--alpha", cfg->alpha, "Redundancy weight of the block metric");
    cmd->add_option("--seed", cfg->seed, "Seed of the synthetic inputs")
        ->check(integer_in(0, std::numeric_limits<decltype(cfg->seed)>::max()));
    cmd->add_option("--json", *json_path, "Write the results as JSON (schema: bench/bench-schema.json)");
    cmd->add_option("--csv", *csv_path, "Write the records as CSV");
    cmd->add_flag("--decode-only", cfg->decode_only,
                  "Time decode only: per length build the dense K/V and each fixed-ratio TCA cache once (untimed), "
                  "then time --runs x --decode-steps decode steps (median); reports K/V bytes per step and the share "
                  "of the copy probe's bandwidth. No prefill timing, no calibration");
    cmd->add_option("--chunk", cfg->chunk,
                    "Chunked prompts: per length feed the prompt in chunks of C tokens through chunked caches, dense "
                    "and TCA (tca_cache_create_ex); reports the prompt's device time and the peak K/V bytes held")
        ->check(positive_int())
        ->excludes("--decode-only");
    cmd->add_flag("--quick", cfg->quick,
                  "Small sweep for CI and demos, under a minute on a CPU driver: lengths 512,1024, 4/2 heads, "
                  "dim 64, keep 0.25, window 128, block 32, 2 runs (explicit options win)");
    cmd->callback([=] {
        // Output paths are checked now, not after the sweep: a link or device there is refused.
        for (const auto* path : {json_path.get(), csv_path.get()})
            if (!path->empty()) io::check_output_path(*path);
        bench::Config c = *cfg;
        c.kv_dtype = *dtype == "f32" ? TCA_F32 : *dtype == "bf16" ? TCA_BF16 : TCA_F16;
        c.calibrate = !*no_calibrate;
        if (c.quick) {
            // Only what the user did not set explicitly.
            if (cmd->count("--lengths") == 0) c.lengths = {512, 1024};
            if (cmd->count("--heads") == 0) c.heads = 4;
            if (cmd->count("--kv-heads") == 0) c.kv_heads = 2;
            if (cmd->count("--dim") == 0) c.dim = 64;
            if (cmd->count("--runs") == 0) c.runs = 2;
            if (cmd->count("--keep") == 0) c.keep = {0.25};
            if (cmd->count("--window") == 0) c.window = 128;
            if (cmd->count("--block") == 0) c.block = 32;
        }
        c.command = command_line(c, *dtype);
        const bench::Results r = bench::run(c);
        bench::print_table(r);
        if (!json_path->empty()) bench::write_json(r, *json_path);
        if (!csv_path->empty()) bench::write_csv(r, *csv_path);
    });
}

}  // namespace tca::detail::cli
