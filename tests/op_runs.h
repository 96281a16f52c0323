// One call of each TCA kernel op on a device, from fixed-seed inputs in guarded buffers, for the
// op tests that compare a device with the reference: test_opencl_backend.cpp runs them on its
// shapes, test_oclgrind_ops.cpp on simulator-sized ones. Each runner checks the output guards and
// returns what the op wrote, so the same call on reference() gives the values to compare with.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "harness.h"

namespace tca::detail::test::op_runs {

struct Shape {
    int hq, hkv, len, dim;
    DType dtype;
};

// NMSE allowed against the reference: f16 K/V are rounded to half before either side sees them,
// so both sides compute on the same values; the rest is accumulation order.
double tolerance(DType t);

// Dense prefill of len queries over len keys (causal).
std::vector<float> run_dense_prefill(Device& d, const Shape& s, int row_pad = 0);

// Sparse prefill: the last q_tokens queries over random kept lists plus the window.
struct SparseCase {
    Shape s;
    int q_tokens, window;
    double keep;
};
std::vector<float> run_sparse(Device& d, const SparseCase& c, int row_pad);

// Decode of one query over segment 1 (n1 keys of s.len) and segment 2 (n2[h] keys of cap2),
// optionally with the first probs_n probabilities of segment 1; splits 0 = the device's plan.
// cap2 = 0: no segment 2 (the dense decode).
struct DecodeCase {
    Shape s;
    int n1, cap2;
    std::vector<int> n2;
    int probs_n, splits;
    int n2_max = -1;  // the caller's bound on n2 (DecodeArgs::n2_max)
};
// (o, probs)
std::pair<std::vector<float>, std::vector<float>> run_decode(Device& d, const DecodeCase& c);

// Importance scores of query row q_row over n_keys keys (the padding past n_keys is checked).
std::vector<float> run_score(Device& d, const Shape& s, int q_row, int n_keys);

// Block metric, rank and select on softmax-like scores with ties and tiny values.
struct SelectCase {
    int heads, n_global, block, stride;
};
std::vector<float> fake_scores(int heads, int stride, uint32_t seed);
std::vector<float> run_metric(Device& d, const SelectCase& c, const std::vector<float>& s);
std::vector<int32_t> run_rank(Device& d, const SelectCase& c, const std::vector<float>& h);
// Budgets non-increasing by rank, some past the block size.
std::vector<int32_t> select_budget(const SelectCase& c);
// The counted prefix of each head's indices (the rest zeroed), then the counts.
std::vector<int32_t> run_select(Device& d, const SelectCase& c, const std::vector<float>& s,
                                const std::vector<int32_t>& order, const std::vector<int32_t>& budget);

// Gather with kept indices, offsets and positions, then a dense (uniform count) append:
// dst K and V, the lengths and the positions, as floats.
std::vector<float> run_gather(Device& d, DType dt);

// Column sums of the causal softmax (calibration).
std::vector<float> run_colsum(Device& d, const Shape& s);

}  // namespace tca::detail::test::op_runs
