// Every parameter of the TCA method in one place, with the spec's defaults
// (shared/spec/tca-attention.md). Lines marked [choice] in the spec are the fields below marked
// "[choice]": they fill gaps the paper leaves open and can be changed here.
#pragma once

namespace tca::detail::method {

struct TcaParams {
    int block = 128;      // b: tokens per block; a power of two (the keep counts are 1, 2, 4, .., b)
    int window = 4096;    // w: local window, always attended and never compressed
    double tau = 0.9;     // retained-mass target of calibration, in (0, 1]
    double alpha = 0.5;   // redundancy weight of the block metric, in [0, 1]

    // Candidate grid (spec Phase 1, step 1).
    int n_lognormal = 14;      // M: number of log-Gaussian candidates
    double sigma = 1.0;        // [choice] width of every candidate, in log2(keep count) units
    double mu_extra = 2.0;     // [choice] mu_i = i * (log2 b + mu_extra) / (M - 1): the last centre
                               // lies mu_extra octaves past b, so the grid ends near-dense
    bool dense_candidate = true;  // [choice] add the all-b candidate so a valid candidate always exists

    // [choice] selection is per (layer, KV head): the group's query heads' scores are averaged.
    // This is fixed by the device ops (score/decode average over the group), recorded here for docs.
};

// Throws Error(TCA_ERROR_INVALID_ARGUMENT) naming the first bad field.
void validate_params(const TcaParams& p);

bool is_power_of_two(int x);

}  // namespace tca::detail::method
