// Comparing a device's token selection with the reference's.
//
// With float32 K/V the kept sets must be identical (tests use exact equality). With float16 K/V
// both sides read the same stored halves, but the device accumulates in float32 and the
// reference in double, and half-precision keys produce many exact or near-exact score ties; the
// documented rule (README "Exactness") allows the two selections to differ only by near-ties:
//
//   (1) block order: the device's block order, read against the reference's metric values h,
//       has no inversion larger than eps * max|h| of that head (two blocks whose metrics are that
//       close may swap ranks, and so swap budgets);
//   (2) tokens: given the device's order and the same budgets, in every block the device keeps
//       exactly min(budget, block size) tokens, and every kept token's reference importance is at
//       least every dropped token's minus eps * (largest importance in the block).
//
// check_near_tie_selection() returns "" when the rule holds, else what broke it.
#pragma once

#include <string>
#include <vector>

namespace tca::detail::test {

struct HeadSelection {
    std::vector<float> s;      // reference importance of each global token [n_global]
    std::vector<float> h;      // reference metric of each block [n_blocks]
    std::vector<int> budget;   // budget by rank [n_blocks]
    std::vector<int> order;    // the device's block order (block ids, rank 0 first)
    std::vector<int> kept;     // the device's kept token indices, ascending
    int block = 128;
};

std::string check_near_tie_selection(const HeadSelection& sel, double eps);

}  // namespace tca::detail::test
