// The budget vector Psi of spec Phase 2 step 3: how many tokens each block keeps, by block rank.
#pragma once

#include <vector>

namespace tca::detail::method {

// Budgets for n blocks ranked 0..n-1 (rank 0 = highest metric), from a distribution p over the
// keep counts K (ascending). Keep counts are assigned from the largest down:
//   C_k = floor(n * sum_{k' >= k} p_k' + 0.5), blocks of rank [C_previous, C_k) keep k.
// The smallest count's C is n by construction (the cumulative sum is 1); we force it to n so a
// rounding error in the sum can never leave a block without a budget. Every budget is >= 1
// (K starts at 1) and budgets are non-increasing by rank. A partial last block keeps
// min(budget, its size); that clamp is the select op's job.
std::vector<int> budget_vector(const std::vector<int>& K, const std::vector<double>& p, int n_blocks);

}  // namespace tca::detail::method
