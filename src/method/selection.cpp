#include "method/selection.h"

#include <algorithm>

#include "core/checked.h"

#include "method/budget.h"
#include "method/device_util.h"

namespace tca::detail::method {

SelectionWorkspace make_selection_workspace(Device& dev, int heads, int max_tokens, int max_global, int block) {
    require(max_global >= 1 && max_global < max_tokens, TCA_ERROR_INTERNAL, "selection workspace: no global region");
    SelectionWorkspace w;
    w.s_stride = max_tokens;
    w.max_blocks = n_blocks_of(max_global, block);
    w.idx_stride = max_global;
    w.s = alloc_zero_rows(dev, heads, size_t(max_tokens));
    w.h = alloc_zero_rows(dev, heads, size_t(w.max_blocks));
    w.order = alloc_zero_rows(dev, heads, size_t(w.max_blocks));
    w.budget = alloc_zero_rows(dev, heads, size_t(w.max_blocks));
    w.idx = alloc_zero_rows(dev, heads, size_t(max_global));
    w.count = alloc_zero_rows(dev, heads, 1);
    return w;
}

BlockRanking rank_blocks(Device& dev, const Tensor& q, const Tensor& k, int n_global, int block, float alpha,
                         const SelectionWorkspace* ws) {
    const int L = k.tokens;
    require(n_global >= 1 && n_global < L, TCA_ERROR_INTERNAL, "rank_blocks: no global region");
    BlockRanking r;
    r.heads = k.heads;
    r.n_global = n_global;
    r.block = block;
    r.n_blocks = n_blocks_of(n_global, block);
    if (ws) require(L <= ws->s_stride && r.n_blocks <= ws->max_blocks, TCA_ERROR_INTERNAL, "rank_blocks: workspace too small");
    r.s_stride = ws ? ws->s_stride : L;
    r.s = ws ? ws->s : alloc_zero_rows(dev, k.heads, size_t(L));
    ScoreArgs sa;
    sa.q = q, sa.q_row = q.tokens - 1, sa.k = k, sa.n_keys = L, sa.s = r.s, sa.s_stride = r.s_stride;
    dev.score(sa);

    BufView h = ws ? ws->h : alloc_zero_rows(dev, k.heads, size_t(r.n_blocks));
    MetricArgs ma;
    ma.s = r.s, ma.heads = k.heads, ma.s_stride = r.s_stride, ma.n_global = n_global, ma.block = block, ma.alpha = alpha,
    ma.h = h;
    dev.metric(ma);

    r.order = ws ? ws->order : alloc_zero_rows(dev, k.heads, size_t(r.n_blocks));
    RankArgs ra;
    ra.h = h, ra.heads = k.heads, ra.n_blocks = r.n_blocks, ra.order = r.order;
    dev.rank(ra);
    return r;
}

void select_tokens(Device& dev, const BlockRanking& r, const std::vector<std::vector<int>>& budgets, Selection& out) {
    require(int(budgets.size()) == r.heads, TCA_ERROR_INTERNAL, "select_tokens: one budget vector per head");
    const std::vector<int32_t> flat = flat_budgets(budgets, r.n_blocks);
    if (!out.idx) {
        out.idx_stride = r.n_global;
        out.idx = alloc_zero_rows(dev, r.heads, size_t(r.n_global));
        out.count = alloc_zero_rows(dev, r.heads, 1);
    }
    select_tokens(dev, r, alloc_int_rows(dev, r.heads, flat), out);
}

void select_tokens(Device& dev, const BlockRanking& r, const BufView& budget, const Selection& out) {
    require(out.idx && out.idx_stride >= r.n_global, TCA_ERROR_INTERNAL, "select_tokens: kept-index rows too short");
    SelectArgs sa;
    sa.s = r.s, sa.heads = r.heads, sa.s_stride = r.s_stride, sa.n_global = r.n_global, sa.block = r.block;
    sa.order = r.order, sa.budget = budget, sa.idx = out.idx, sa.idx_stride = out.idx_stride, sa.count = out.count;
    dev.select(sa);
}

std::vector<int32_t> flat_budgets(const std::vector<std::vector<int>>& budgets, int n_blocks) {
    std::vector<int32_t> flat;
    flat.reserve(checked_product({int64_t(budgets.size()), n_blocks}, "budget elements"));
    for (const auto& b : budgets) {
        require(int(b.size()) == n_blocks, TCA_ERROR_INTERNAL, "select_tokens: budget vector length");
        flat.insert(flat.end(), b.begin(), b.end());
    }
    return flat;
}

std::vector<int> budget_bounds(const std::vector<std::vector<int>>& budgets, int n_global, int block) {
    std::vector<int> out;
    for (const auto& b : budgets) {
        int64_t n = 0;
        for (int t : b) n += std::min(t, block);
        out.push_back(int(std::min<int64_t>(n, n_global)));
    }
    return out;
}

std::vector<std::vector<int>> head_budgets(const std::vector<int>& K, const std::vector<std::vector<double>>& p,
                                           int n_blocks) {
    std::vector<std::vector<int>> out;
    for (const auto& ph : p) out.push_back(budget_vector(K, ph, n_blocks));
    return out;
}

}  // namespace tca::detail::method
