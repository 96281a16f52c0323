// The online token selection of spec Phase 2, as device ops. Prefill and calibration both call
// these, so calibration measures exactly what inference will keep.
//
// Tie rules (all implemented by the device ops, restated here): blocks of equal metric rank by
// the lower block index; tokens of equal importance are kept by the lower token index.
#pragma once

#include <vector>

#include "device/device.h"
#include "method/candidates.h"

namespace tca::detail::method {

// Device buffers of one ranking: importance s [heads, s_stride] (the last query's softmax, group
// mean) and the block order [heads, n_blocks] over the global region [0, n_global).
struct BlockRanking {
    int heads = 0, n_global = 0, n_blocks = 0, block = 0;
    BufView s;
    int s_stride = 0;
    BufView order;
};

// Device buffers a cache sizes once at creation, so that its prefill allocates nothing: scores
// [heads, s_stride], metric / order / budgets [heads, n_blocks] within heads * max_blocks elements,
// kept indices [heads, idx_stride] and counts [heads].
struct SelectionWorkspace {
    BufView s, h, order, budget, idx, count;
    int s_stride = 0, max_blocks = 0, idx_stride = 0;
};
// The workspace for prompts of up to max_tokens tokens (global regions up to max_global).
SelectionWorkspace make_selection_workspace(Device& dev, int heads, int max_tokens, int max_global, int block);

// Steps 1-3 (without budgets): score (q_row = L-1, n_keys = L), metric over [0, n_global), rank.
// q: [Hq, L, d]; k: [Hkv, L, d]; requires 1 <= n_global < L. With `ws`, its buffers hold the
// results (nothing is allocated); without, fresh ones.
BlockRanking rank_blocks(Device& dev, const Tensor& q, const Tensor& k, int n_global, int block, float alpha,
                         const SelectionWorkspace* ws = nullptr);

// Kept token indices per head, on the device: idx [heads, idx_stride] sorted ascending, count [heads].
struct Selection {
    BufView idx;
    int idx_stride = 0;
    BufView count;
};

// Steps 3-4: uploads the per-head budget vectors (each of length n_blocks) and runs select.
// `out` may hold buffers from a previous call to reuse (calibration selects once per candidate).
void select_tokens(Device& dev, const BlockRanking& r, const std::vector<std::vector<int>>& budgets, Selection& out);
// Step 4 with budgets already on the device (int32 [heads, n_blocks] by rank) and `out`'s buffers given.
void select_tokens(Device& dev, const BlockRanking& r, const BufView& budget, const Selection& out);
// The budgets of every head flattened ([heads, n_blocks], what select takes), and per head the most
// tokens they can keep (sum over ranks of min(budget, block), at most n_global): the exact count
// when every block is full (n_global a multiple of block), an upper bound otherwise.
std::vector<int32_t> flat_budgets(const std::vector<std::vector<int>>& budgets, int n_blocks);
std::vector<int> budget_bounds(const std::vector<std::vector<int>>& budgets, int n_global, int block);

// Per-head budgets from per-head distributions over keep_counts(block).
std::vector<std::vector<int>> head_budgets(const std::vector<int>& K, const std::vector<std::vector<double>>& p,
                                           int n_blocks);

}  // namespace tca::detail::method
