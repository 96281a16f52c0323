// tca bench: the sub-command. Parses the sweep and prints the table.
#include <fmt/core.h>

#include "bench.h"
#include "cli/commands.h"

namespace tca::cli {

void register_bench(CLI::App& app) {
    auto* cmd = app.add_subcommand("bench", "Benchmark attention on one or more devices: time, rates, error vs reference");
    auto cfg = std::make_shared<bench::Config>();
    auto quick = std::make_shared<bool>(false);
    auto dtype = std::make_shared<std::string>("f16");
    cmd->add_option("--device", cfg->devices, "Device(s) to measure (default: the default device)");
    cmd->add_option("--lengths", cfg->lengths, "Context lengths")->delimiter(',');
    cmd->add_option("--heads", cfg->heads, "Query heads")->check(CLI::PositiveNumber);
    cmd->add_option("--kv-heads", cfg->kv_heads, "Key/value heads")->check(CLI::PositiveNumber);
    cmd->add_option("--dim", cfg->dim, "Head dimension")->check(CLI::PositiveNumber);
    cmd->add_option("--kv-dtype", *dtype, "K/V storage: f16 or f32")->check(CLI::IsMember({"f16", "f32"}));
    cmd->add_option("--runs", cfg->runs, "Timed runs per case (median reported)")->check(CLI::PositiveNumber);
    cmd->add_option("--warmup", cfg->warmup, "Untimed runs first")->check(CLI::NonNegativeNumber);
    cmd->add_option("--keep", cfg->keep, "TCA keep ratios (fixed budgets)")->delimiter(',');
    cmd->add_option("--window", cfg->window, "TCA local window")->check(CLI::PositiveNumber);
    cmd->add_option("--block", cfg->block, "TCA block size")->check(CLI::PositiveNumber);
    cmd->add_flag("--quick", *quick, "Small sweep that finishes in about a minute on CPU drivers");
    cmd->callback([=] {
        bench::Config c = *cfg;
        c.kv_dtype = *dtype == "f32" ? TCA_F32 : TCA_F16;
        if (*quick) {
            if (c.lengths.empty()) c.lengths = {1024, 2048, 4096};
            c.heads = 8, c.kv_heads = 2, c.runs = 3;
            if (c.window == 4096) c.window = 512;
        }
        if (c.lengths.empty()) c.lengths = {4096, 8192, 16384, 32768};
        bench::print_table(bench::run(c));
    });
}

}  // namespace tca::cli
