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
};

std::vector<Record> run_dense(const Config& cfg);
void print_table(const std::vector<Record>& records);

}  // namespace tca::bench
