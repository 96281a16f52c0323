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

// Steps 1-3 (without budgets): score (q_row = L-1, n_keys = L), metric over [0, n_global), rank.
// q: [Hq, L, d]; k: [Hkv, L, d]; requires 1 <= n_global < L.
BlockRanking rank_blocks(Device& dev, const Tensor& q, const Tensor& k, int n_global, int block, float alpha);

// Kept token indices per head, on the device: idx [heads, idx_stride] sorted ascending, count [heads].
struct Selection {
    BufView idx;
    int idx_stride = 0;
    BufView count;
};

// Steps 3-4: uploads the per-head budget vectors (each of length n_blocks) and runs select.
// `out` may hold buffers from a previous call to reuse (calibration selects once per candidate).
void select_tokens(Device& dev, const BlockRanking& r, const std::vector<std::vector<int>>& budgets, Selection& out);

// Per-head budgets from per-head distributions over keep_counts(block).
std::vector<std::vector<int>> head_budgets(const std::vector<int>& K, const std::vector<std::vector<double>>& p,
                                           int n_blocks);

}  // namespace tca::detail::method
