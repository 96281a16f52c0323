// tca bench: dense vs TCA attention, measured through the public C API like any user would.
// One Record per (device, length, method); reports go to a table, JSON and CSV.
#pragma once

#include <string>
#include <vector>

#include "tca/tca.h"

namespace tca::bench {

struct Config {
    std::vector<std::string> devices;  // empty: the default device
    std::vector<int> lengths;
    int heads = 32, kv_heads = 8, dim = 128;
    tca_dtype kv_dtype = TCA_F16;
    int runs = 5, warmup = 1;
    int check_rows = 16;  // query rows checked against the reference per case
    unsigned seed = 1;
    std::vector<double> keep = {0.35};  // TCA at these fixed keep ratios
    int window = 4096, block = 128;
};

// Median device times and derived rates of one measured case.
struct Record {
    std::string device, api, device_name, driver, method;  // method: "dense", ...
    int length = 0, heads = 0, kv_heads = 0, dim = 0;
    std::string kv_dtype;
    double prefill_ms = 0, decode_ms = 0;
    double prefill_gflops = 0, decode_gbps = 0;
    double prefill_nmse = 0, decode_nmse = 0;  // vs the reference on sampled rows
    double kv_bytes = 0;
    // TCA only: stage split of the prefill (ms), error against dense, speedup over dense.
    double score_ms = 0, metric_ms = 0, sort_ms = 0, select_ms = 0, attend_ms = 0, other_ms = 0;
    double mean_rel_l1 = 0, max_rel_l1 = 0;
    double prefill_speedup = 0, decode_speedup = 0, kv_reduction = 0;
};

// Dense, then TCA at each keep ratio, for every device and length.
std::vector<Record> run(const Config& cfg);
void print_table(const std::vector<Record>& records);

}  // namespace tca::bench
