// The spec's error bound, evaluated by a double-precision reference on the host.
//
// For query i let gamma_i be the full-softmax mass on the keys it did not attend to. Because the
// sparse softmax is the full one renormalised over the attended keys, sum_j |p_j - p~_j| = 2 gamma_i,
// so || o_i - o~_i ||_1 <= 2 gamma_i max_j || v_j ||_1. We take the max over the keys the query can
// see (j <= i): the same derivation holds and the bound is tighter than the spec's max over all j.
#pragma once

#include <vector>

#include "method/host_tensor.h"
#include "method/trace.h"

namespace tca::detail::method {

// Floating-point allowance for checking the bound against a float32 output: the bound holds
// exactly in real arithmetic, the device output is rounded, so tests accept
// actual <= bound + kBoundFpSlack * max_j ||v_j||_1.
constexpr double kBoundFpSlack = 1e-5;

struct QueryBound {
    double gamma = 0;   // dropped full-softmax mass
    double vmax1 = 0;   // max_{j <= i} ||v_j||_1
    double bound = 0;   // 2 * gamma * vmax1
    double actual = 0;  // || o_i - o~_i ||_1 against the double-precision dense output
    double rel = 0;     // || o_i - o~_i ||_2 / || o_i ||_2 (relative error vs dense)
    double slack() const { return bound - actual; }
};

struct HeadBoundSummary {
    double min_slack = 0;     // worst case over the head's queries
    double max_gamma = 0, mean_gamma = 0;
    double max_rel = 0, mean_rel = 0;
    double max_actual = 0;
    double max_tightness = 0;  // max actual / bound over queries that dropped mass (bound > 0)
    int violations = 0;  // queries with actual > bound + kBoundFpSlack * vmax1
};

// q [Hq, T, d], k/v [Hkv, T, d] (row = position), o [Hq, T, d] the output under test; `trace`
// says what each query attended to. Returns per-query results in [hq][row] order.
std::vector<QueryBound> error_bound(const HostTensor& q, const HostTensor& k, const HostTensor& v, const HostTensor& o,
                                    const AttentionTrace& trace);

std::vector<HeadBoundSummary> summarize(const std::vector<QueryBound>& qb, int q_heads, int tokens);

// The dense attention output in double (rounded to float), the reference of every comparison.
HostTensor dense_reference(const HostTensor& q, const HostTensor& k, const HostTensor& v);

}  // namespace tca::detail::method
