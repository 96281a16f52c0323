// tca bench reports: the table on stdout, JSON (bench/bench-schema.json, docs/bench.md) and CSV.
#include <fmt/core.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "bench.h"
#include "io/atomic_file.h"

namespace tca::detail::bench {

namespace {

using nlohmann::json;

json facts_json(const DeviceFacts& f) {
    return {{"name", f.name},       {"api", f.api},       {"vendor", f.vendor},
            {"device", f.device},   {"driver", f.driver}, {"type", f.type},
            {"global_memory", f.global_memory}, {"max_allocation", f.max_allocation}};
}

json roofline_json(const RooflineFacts& r) {
    return {{"copy_gbps", r.copy_gbps},   {"f32_gflops", r.f32_gflops}, {"f16_gflops", r.f16_gflops},
            {"copy_bytes", r.copy_bytes}, {"gemm_size", r.gemm_size},   {"runs", r.runs},
            {"host_timed", r.host_timed}, {"copy_engine", r.copy_engine}, {"f32_engine", r.f32_engine},
            {"f16_engine", r.f16_engine}, {"fma_f32_gflops", r.fma_f32_gflops}, {"fma_f16_gflops", r.fma_f16_gflops},
            {"fma_engine", r.fma_engine}, {"f32_peak_gflops", r.f32_peak_gflops()}};
}

json record_json(const Record& r, const Results& res) {
    return {{"device", facts_json(r.dev)},
            {"library", {{"version", res.version}, {"revision", res.revision}}},
            {"method", r.method},
            {"profile", r.profile},
            {"length", r.length},
            {"heads", r.heads},
            {"kv_heads", r.kv_heads},
            {"dim", r.dim},
            {"kv_dtype", r.kv_dtype},
            {"window", r.window},
            {"block", r.block},
            {"keep_fraction", r.keep_fraction},
            {"attended_fraction", r.attended_fraction},
            {"prefill_ms", r.prefill_ms},
            {"decode_ms", r.decode_ms},
            {"stages_ms",
             {{"score", r.stages.score}, {"metric", r.stages.metric}, {"sort", r.stages.sort},
              {"select", r.stages.select}, {"attend", r.stages.attend}, {"other", r.stages.other}}},
            {"selection_share", r.prefill_ms > 0 ? r.stages.selection() / r.prefill_ms : 0.0},
            {"prefill_speedup", r.prefill_speedup},
            {"decode_speedup", r.decode_speedup},
            {"kv_bytes", r.kv_bytes},
            {"kv_dense_bytes", r.kv_dense_bytes},
            {"kv_reduction", r.kv_reduction},
            {"prefill_gflops", r.prefill_gflops},
            {"decode_gbps", r.decode_gbps},
            {"prefill_roofline_fraction", r.prefill_roofline},
            {"prefill_gemm_fraction", r.prefill_gemm_share},
            {"decode_roofline_fraction", r.decode_roofline},
            {"error",
             {{"mean_rel_l1", r.mean_rel_l1}, {"max_rel_l1", r.max_rel_l1},
              {"worst_bound_slack", r.worst_bound_slack}, {"max_bound_use", r.max_bound_use},
              {"bound_rows", r.bound_rows}, {"dense_nmse_prefill", r.dense_nmse_prefill},
              {"dense_nmse_decode", r.dense_nmse_decode}}},
            {"decode_only", r.decode_only},
            {"decode_kv_bytes_per_step", r.decode_kv_bytes_per_step},
            {"decode_copy_share", r.decode_copy_share},
            {"chunk", r.chunk},
            {"peak_kv_bytes", r.peak_kv_bytes},
            {"peak_kv_dense_bytes", r.peak_kv_dense_bytes}};
}

std::string pct(double x) { return fmt::format("{:.1f}", 100 * x); }

}  // namespace

void write_json(const Results& res, const std::string& path) {
    const Config& c = res.config;
    json j;
    j["schema"] = "tca-bench";
    j["schema_version"] = kSchemaVersion;
    j["library"] = {{"version", res.version}, {"revision", res.revision}};
    j["created"] = res.created;
    j["command"] = c.command;
    j["config"] = {{"lengths", c.lengths},   {"heads", c.heads},       {"kv_heads", c.kv_heads},
                   {"dim", c.dim},           {"kv_dtype", c.kv_dtype == TCA_F32 ? "f32" : "f16"},
                   {"runs", c.runs},         {"warmup", c.warmup},     {"decode_steps", c.decode_steps},     {"keep", c.keep},
                   {"workload", c.workload}, {"window", c.window},     {"block", c.block},
                   {"tau", c.tau},           {"alpha", c.alpha},       {"seed", c.seed},
                   {"quick", c.quick},       {"decode_only", c.decode_only},
                   {"chunk", c.chunk}};
    j["calibration"] = res.calibration.done
                           ? json{{"workload", res.calibration.workload}, {"device", res.calibration.device},
                                  {"length", res.calibration.length}, {"mean_keep_ratio", res.calibration.mean_keep},
                                  {"min_keep_ratio", res.calibration.min_keep}, {"max_keep_ratio", res.calibration.max_keep}}
                           : json(nullptr);
    j["devices"] = json::array();
    for (const auto& d : res.devices)
        j["devices"].push_back({{"device", facts_json(d.facts)}, {"roofline", roofline_json(d.roofline)}, {"lengths", d.lengths}});
    j["records"] = json::array();
    for (const auto& r : res.records) j["records"].push_back(record_json(r, res));
    j["skipped"] = json::array();
    for (const auto& s : res.skipped)
        j["skipped"].push_back({{"device", s.device}, {"length", s.length}, {"what", s.what}, {"reason", s.reason}});
    const std::string text = j.dump(2) + "\n";
    io::write_file_atomic(path, text.data(), text.size());
}

void write_csv(const Results& res, const std::string& path) {
    std::ostringstream o;
    o << "device,api,vendor,device_name,driver,library_version,revision,method,profile,length,heads,kv_heads,dim,"
         "kv_dtype,window,block,keep_fraction,attended_fraction,prefill_ms,decode_ms,score_ms,metric_ms,sort_ms,"
         "select_ms,attend_ms,other_ms,prefill_speedup,decode_speedup,kv_bytes,kv_reduction,prefill_gflops,"
         "decode_gbps,prefill_roofline_fraction,decode_roofline_fraction,mean_rel_l1,max_rel_l1,worst_bound_slack,"
         "max_bound_use,dense_nmse_prefill,dense_nmse_decode,decode_only,decode_kv_bytes_per_step,decode_copy_share,chunk,peak_kv_bytes,peak_kv_dense_bytes,prefill_gemm_fraction\n";
    auto q = [](const std::string& s) {  // RFC 4180 quoting
        std::string out = "\"";
        for (char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
        return out + "\"";
    };
    for (const auto& r : res.records) {
        o << fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},", q(r.dev.name), q(r.dev.api), q(r.dev.vendor),
                         q(r.dev.device), q(r.dev.driver), q(res.version), q(res.revision), r.method, q(r.profile),
                         r.length, r.heads, r.kv_heads, r.dim, r.kv_dtype, r.window, r.block);
        o << fmt::format("{:g},{:g},{:g},{:g},{:g},{:g},{:g},{:g},{:g},{:g},{:g},{:g},{:g},{:g},{:g},{:g},{:g},{:g},{:g},"
                         "{:g},{:g},{:g},{:g},{:g},{},{:g},{:g},{},{:g},{:g},{:g}\n",
                         r.keep_fraction, r.attended_fraction, r.prefill_ms, r.decode_ms, r.stages.score,
                         r.stages.metric, r.stages.sort, r.stages.select, r.stages.attend, r.stages.other,
                         r.prefill_speedup, r.decode_speedup, r.kv_bytes, r.kv_reduction, r.prefill_gflops,
                         r.decode_gbps, r.prefill_roofline, r.decode_roofline, r.mean_rel_l1, r.max_rel_l1,
                         r.worst_bound_slack, r.max_bound_use, r.dense_nmse_prefill, r.dense_nmse_decode,
                         r.decode_only ? 1 : 0, r.decode_kv_bytes_per_step, r.decode_copy_share, r.chunk,
                         r.peak_kv_bytes, r.peak_kv_dense_bytes, r.prefill_gemm_share);
    }
    const std::string text = o.str();
    io::write_file_atomic(path, text.data(), text.size());
}

namespace {

// --decode-only: decode time, K/V bytes per step, achieved bandwidth and its share of the copy probe.
void print_decode_table(const Results& res) {
    fmt::print("\n{:<9} {:<15} {:>6} {:>6} {:>9} {:>7} {:>10} {:>7} {:>6}\n", "device", "profile", "length", "keep",
               "decode ms", "speedup", "KV MiB/st", "GB/s", "copy%");
    for (const auto& r : res.records) {
        const bool tca = r.method == "tca";
        fmt::print("{:<9} {:<15} {:>6} {:>6} {:>9.3f} {:>7} {:>10.2f} {:>7.2f} {:>6}\n", r.dev.name, r.profile, r.length,
                   tca ? fmt::format("{:.3f}", r.keep_fraction) : "1", r.decode_ms,
                   tca ? fmt::format("{:.2f}x", r.decode_speedup) : "", r.decode_kv_bytes_per_step / 1048576.0,
                   r.decode_gbps, pct(r.decode_copy_share));
    }
    for (const auto& s : res.skipped) fmt::print("skipped: {} L={} {}: {}\n", s.device, s.length, s.what, s.reason);
    fmt::print(
        "\ndecode ms: median device time of one decode step; KV MiB/st: K/V bytes a step reads (TCA: G + pending +\n"
        "ring); GB/s: those bytes over the step's time; copy%: that rate as a share of the copy probe's GB/s.\n");
}

// --chunk: the prompt's device time in chunks, dense vs TCA, and the peak K/V held.
void print_chunk_table(const Results& res) {
    fmt::print("\n{:<9} {:<15} {:>6} {:>6} {:>6} {:>11} {:>7} {:>13} {:>12} {:>7}\n", "device", "profile", "length", "chunk",
               "keep", "prompt ms", "speedup", "peak KV MiB", "dense MiB", "peak%");
    for (const auto& r : res.records) {
        const bool tca = r.method == "tca";
        fmt::print("{:<9} {:<15} {:>6} {:>6} {:>6} {:>11.2f} {:>7} {:>13.2f} {:>12.2f} {:>7}\n", r.dev.name, r.profile,
                   r.length, r.chunk, tca ? fmt::format("{:.3f}", r.keep_fraction) : "1", r.prefill_ms,
                   tca ? fmt::format("{:.2f}x", r.prefill_speedup) : "", r.peak_kv_bytes / 1048576.0,
                   r.peak_kv_dense_bytes / 1048576.0,
                   r.peak_kv_dense_bytes > 0 ? pct(r.peak_kv_bytes / r.peak_kv_dense_bytes) : "");
    }
    for (const auto& s : res.skipped) fmt::print("skipped: {} L={} {}: {}\n", s.device, s.length, s.what, s.reason);
    fmt::print(
        "\nprompt ms: device time of all chunk calls of the median run (chunked caches, tca_cache_create_ex);\n"
        "speedup: dense / TCA; peak KV: the most K/V bytes the cache held while a chunk was attended\n"
        "(tca_cache_peak_size); dense MiB: the dense cache's (every prompt token); peak%: TCA / dense.\n");
}

}  // namespace

void print_table(const Results& res) {
    fmt::print("tca {} ({}), {}\n", res.version, res.revision, res.created);
    for (const auto& d : res.devices) {
        const auto& r = d.roofline;
        fmt::print("{}: {} {} ({}), driver {}, {:.1f} GiB\n  roofline{}: copy {:.1f} GB/s ({}), multiply-add peak f32 {:.1f} GFLOP/s",
                   d.facts.name, d.facts.api, d.facts.device, d.facts.vendor, d.facts.driver,
                   d.facts.global_memory / 1073741824.0, r.host_timed ? " (host loop, not a device peak)" : "",
                   r.copy_gbps, r.copy_engine, r.fma_f32_gflops);
        if (r.fma_f16_gflops > 0) fmt::print(", f16 {:.1f} GFLOP/s", r.fma_f16_gflops);
        fmt::print(" ({})\n  reference line: GEMM f32 {:.1f} GFLOP/s ({})", r.fma_engine, r.f32_gflops, r.f32_engine);
        if (r.f16_gflops > 0) fmt::print(", f16 {:.1f} GFLOP/s ({})", r.f16_gflops, r.f16_engine);
        fmt::print("\n");
    }
    if (res.calibration.done)
        fmt::print("calibrated on {} ({} workload, L={}): keep ratio mean {:.3f} (min {:.3f}, max {:.3f})\n",
                   res.calibration.device, res.calibration.workload, res.calibration.length, res.calibration.mean_keep,
                   res.calibration.min_keep, res.calibration.max_keep);
    if (res.config.decode_only) return print_decode_table(res);
    if (res.config.chunk > 0) return print_chunk_table(res);
    fmt::print("\n{:<9} {:<15} {:>6} {:>6} {:>10} {:>7} {:>6} {:>9} {:>7} {:>6} {:>6} {:>6} {:>5} {:>7} {:>7} {:>8}\n",
               "device", "profile", "length", "keep", "prefill ms", "speedup", "roof%", "decode ms", "speedup", "roof%",
               "KV -%", "sel %", "att%", "L1 mean", "L1 max", "slack");
    for (const auto& r : res.records) {
        const bool tca = r.method == "tca";
        auto only = [&](const std::string& s) { return tca ? s : std::string(); };
        fmt::print("{:<9} {:<15} {:>6} {:>6} {:>10.2f} {:>7} {:>6} {:>9.3f} {:>7} {:>6} {:>6} {:>6} {:>5} {:>7} {:>7} {:>8}\n",
                   r.dev.name, r.profile, r.length, tca ? fmt::format("{:.3f}", r.keep_fraction) : "1", r.prefill_ms,
                   only(fmt::format("{:.2f}x", r.prefill_speedup)), pct(r.prefill_roofline), r.decode_ms,
                   only(fmt::format("{:.2f}x", r.decode_speedup)), pct(r.decode_roofline), only(pct(r.kv_reduction)),
                   only(pct(r.prefill_ms > 0 ? r.stages.selection() / r.prefill_ms : 0)), only(pct(r.attended_fraction)),
                   only(fmt::format("{:.4f}", r.mean_rel_l1)), only(fmt::format("{:.4f}", r.max_rel_l1)),
                   tca ? fmt::format("{:.4f}", r.worst_bound_slack) : fmt::format("{:.0e}", std::max(r.dense_nmse_prefill, r.dense_nmse_decode)));
    }
    for (const auto& s : res.skipped) fmt::print("skipped: {} L={} {}: {}\n", s.device, s.length, s.what, s.reason);
    fmt::print(
        "\nkeep: kept fraction of the global (outside-window) tokens; roof%: prefill attention GFLOP/s (attend stage) as\n"
        "a share of the f32 peak (multiply-add probe, or the GEMM where faster), decode K/V GB/s as a share of the copy\n"
        "probe; KV -%: cache bytes saved;\n"
        "sel %: score+metric+sort+select share of TCA prefill; att%: attended (query, key) pairs vs dense; L1: per-row\n"
        "relative L1 of TCA vs dense (rows past the window); slack: worst 2*gamma - ||o-o~||_1/max||v||_1 over sampled\n"
        "rows (>= 0: the spec's bound holds); dense rows show the NMSE of the dense kernels vs the CPU reference.\n");
}

}  // namespace tca::detail::bench
