#include "core/checked.h"
#include "method/selection.h"

#include "method/budget.h"
#include "method/device_util.h"

namespace tca::detail::method {

BlockRanking rank_blocks(Device& dev, const Tensor& q, const Tensor& k, int n_global, int block, float alpha) {
    const int L = k.tokens;
    require(n_global >= 1 && n_global < L, TCA_ERROR_INTERNAL, "rank_blocks: no global region");
    BlockRanking r;
    r.heads = k.heads;
    r.n_global = n_global;
    r.block = block;
    r.n_blocks = n_blocks_of(n_global, block);
    r.s_stride = L;
    r.s = alloc_zero_rows(dev, k.heads, size_t(L));
    ScoreArgs sa;
    sa.q = q, sa.q_row = q.tokens - 1, sa.k = k, sa.n_keys = L, sa.s = r.s, sa.s_stride = L;
    dev.score(sa);

    BufView h = alloc_zero_rows(dev, k.heads, size_t(r.n_blocks));
    MetricArgs ma;
    ma.s = r.s, ma.heads = k.heads, ma.s_stride = L, ma.n_global = n_global, ma.block = block, ma.alpha = alpha, ma.h = h;
    dev.metric(ma);

    r.order = alloc_zero_rows(dev, k.heads, size_t(r.n_blocks));
    RankArgs ra;
    ra.h = h, ra.heads = k.heads, ra.n_blocks = r.n_blocks, ra.order = r.order;
    dev.rank(ra);
    return r;
}

void select_tokens(Device& dev, const BlockRanking& r, const std::vector<std::vector<int>>& budgets, Selection& out) {
    require(int(budgets.size()) == r.heads, TCA_ERROR_INTERNAL, "select_tokens: one budget vector per head");
    std::vector<int32_t> flat;
    flat.reserve(checked_product({r.heads, r.n_blocks}, "budget elements"));
    for (const auto& b : budgets) {
        require(int(b.size()) == r.n_blocks, TCA_ERROR_INTERNAL, "select_tokens: budget vector length");
        flat.insert(flat.end(), b.begin(), b.end());
    }
    if (!out.idx) {
        out.idx_stride = r.n_global;
        out.idx = alloc_zero_rows(dev, r.heads, size_t(r.n_global));
        out.count = alloc_zero_rows(dev, r.heads, 1);
    }
    BufView budget = alloc_int_rows(dev, r.heads, flat);
    SelectArgs sa;
    sa.s = r.s, sa.heads = r.heads, sa.s_stride = r.s_stride, sa.n_global = r.n_global, sa.block = r.block;
    sa.order = r.order, sa.budget = budget, sa.idx = out.idx, sa.idx_stride = out.idx_stride, sa.count = out.count;
    dev.select(sa);
}

std::vector<std::vector<int>> head_budgets(const std::vector<int>& K, const std::vector<std::vector<double>>& p,
                                           int n_blocks) {
    std::vector<std::vector<int>> out;
    for (const auto& ph : p) out.push_back(budget_vector(K, ph, n_blocks));
    return out;
}

}  // namespace tca::detail::method
