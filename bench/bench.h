// tca bench: dense vs TCA attention, measured through the public C API like any user would.
//
// Per device: the device's roofline (tca_device_roofline), then per context length one dense
// record and one TCA record per profile: the profile calibrated on a synthetic workload
// (tca_calibrate) and each fixed keep ratio (tca_profile_fixed). Inputs are synthetic data of the
// same workload kind (tca_synth_workload makes the host data; everything measured goes through
// tca.h). Reports: a table (stdout), JSON (schema bench/bench-schema.json, docs/bench.md), CSV.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "tca/tca.h"

namespace tca::detail::bench {

constexpr int kSchemaVersion = 1;

struct Config {
    std::vector<std::string> devices;  // empty: the default device
    std::vector<int> lengths;          // empty: 4K..32K on CPU drivers, up to 128K on GPUs
    int heads = 32, kv_heads = 8, dim = 128;
    tca_dtype kv_dtype = TCA_F16;
    int runs = 5, warmup = 1;
    int decode_steps = 8;  // timed decode steps per prefill (decode is short: more samples, same cost)
    int check_rows = 16;  // query rows checked against the reference per case
    int bound_rows = 8;   // query rows (every head) whose error bound is evaluated per TCA case
    unsigned seed = 1;
    std::vector<double> keep = {0.1, 0.25, 0.4};  // TCA at these fixed keep ratios
    std::string workload = "mix";                // synthetic kind of the inputs and of calibration
    bool calibrate = true;                       // add the calibrated profile
    int calib_length = 0;                        // 0: longest swept length, <= 16384, >= 2 * window
    int window = 4096, block = 128;
    double tau = 0.9, alpha = 0.5;
    bool quick = false;
    // Decode only: per length the dense K/V and each TCA cache are built once (untimed), then
    // decode_steps x runs decode steps are timed; no dense or TCA prefill timing.
    bool decode_only = false;
    // --chunk C (> 0): per length the prompt goes in chunks of C through chunked caches, dense and
    // each TCA profile (bench_chunked.cpp); only the prompt is timed.
    int chunk = 0;
    std::string command;  // the command line, recorded in the JSON
};

// What the device and library were, copied into every record.
struct DeviceFacts {
    std::string name, api, vendor, device, driver, type;
    uint64_t global_memory = 0, max_allocation = 0;
};

struct RooflineFacts {
    double copy_gbps = 0, f32_gflops = 0, f16_gflops = 0;
    uint64_t copy_bytes = 0;
    int gemm_size = 0, runs = 0;
    bool host_timed = false;
    std::string copy_engine, f32_engine, f16_engine;
    double fma_f32_gflops = 0, fma_f16_gflops = 0;  // the multiply-add peak probe
    std::string fma_engine;
    // The f32 compute peak the prefill rate is a share of: the multiply-add probe, or the GEMM
    // where that ran faster (any measured rate is a lower bound of the peak).
    double f32_peak_gflops() const { return std::max(fma_f32_gflops, f32_gflops); }
};

struct Stages {
    double score = 0, metric = 0, sort = 0, select = 0, attend = 0, other = 0;
    double selection() const { return score + metric + sort + select; }
};

// One measured case: (device, length, method/profile).
struct Record {
    DeviceFacts dev;
    std::string method;   // "dense" or "tca"
    std::string profile;  // "dense", "keep=0.25", "calibrated:mix"
    double keep_target = 0;     // fixed ratio asked for (0: dense / calibrated)
    double keep_fraction = 1;   // kept global tokens / global tokens (outside the window)
    int length = 0, heads = 0, kv_heads = 0, dim = 0, window = 0, block = 0;
    std::string kv_dtype;
    double prefill_ms = 0, decode_ms = 0;  // medians of device time
    Stages stages;                          // of the median prefill run
    double attended_fraction = 1;           // attended (query, key) pairs / dense pairs
    double prefill_gflops = 0, decode_gbps = 0;
    double prefill_roofline = 0, decode_roofline = 0;  // fractions of the measured peaks (f32 multiply-add, copy)
    double prefill_gemm_share = 0;                     // prefill rate / the f32 GEMM rate (a reference line)
    double kv_bytes = 0, kv_dense_bytes = 0, kv_reduction = 0;
    double prefill_speedup = 1, decode_speedup = 1;
    // Error: TCA vs dense on the device (rows with position >= window); dense vs the reference.
    double mean_rel_l1 = 0, max_rel_l1 = 0;
    double worst_bound_slack = 0;  // min over checked rows of 2*gamma - ||o - o~||_1 / max||v||_1
    double max_bound_use = 0;      // max over checked rows of ||o - o~||_1 / (2*gamma*max||v||_1)
    int bound_rows = 0;
    double dense_nmse_prefill = 0, dense_nmse_decode = 0;
    bool decode_only = false;              // prefill not timed (prefill_ms etc. are 0)
    double decode_kv_bytes_per_step = 0;   // K/V bytes a decode step reads (dense: all; TCA: G + window)
    double decode_copy_share = 0;          // decode K/V GB/s / the copy probe's GB/s
    int chunk = 0;                         // --chunk: the chunk length (0: a one-call prompt)
    double peak_kv_bytes = 0;              // --chunk: the most K/V bytes held while a chunk was attended
    double peak_kv_dense_bytes = 0;        // --chunk: the same for a dense cache (the whole prompt)
};

struct Workload;  // bench_api.h

struct Skipped {
    std::string device;
    int length = 0;
    std::string what, reason;
};

struct DeviceRun {
    DeviceFacts facts;
    RooflineFacts roofline;
    std::vector<int> lengths;
};

struct Calibration {
    std::string workload, device;
    int length = 0;
    double mean_keep = 0, min_keep = 0, max_keep = 0;
    bool done = false;
};

struct Results {
    Config config;
    std::string version, revision, created;
    std::vector<DeviceRun> devices;
    Calibration calibration;
    std::vector<Record> records;
    std::vector<Skipped> skipped;
};

Results run(const Config& cfg);

// bench_chunked.cpp: one length of --chunk, dense then every profile, records appended to out.
void run_chunked(const Config& cfg, tca_context* ctx, const DeviceFacts& facts, int L, const Workload& data,
                 const std::vector<std::pair<std::string, tca_profile*>>& profiles, Results& out);

// bench_report.cpp
void print_table(const Results& r);
void write_json(const Results& r, const std::string& path);
void write_csv(const Results& r, const std::string& path);

}  // namespace tca::detail::bench
