#include "selection_check.h"

#include <algorithm>
#include <cmath>

namespace tca::detail::test {

std::string check_near_tie_selection(const HeadSelection& sel, double eps) {
    const int n_global = int(sel.s.size()), nb = int(sel.h.size()), b = sel.block;
    if (int(sel.order.size()) != nb || int(sel.budget.size()) != nb) return "order/budget length differs from block count";

    // (1) The order is a permutation with no inversion beyond eps * max|h|.
    std::vector<int> seen(nb, 0), rank_of(nb, -1);
    for (int r = 0; r < nb; ++r) {
        const int j = sel.order[r];
        if (j < 0 || j >= nb || seen[j]++) return "order is not a permutation of the blocks";
        rank_of[j] = r;
    }
    double hmax = 0;
    for (float v : sel.h) hmax = std::max(hmax, std::fabs(double(v)));
    double suffix_max = -INFINITY;  // the largest metric ranked after position r
    for (int r = nb - 1; r >= 0; --r) {
        const double hr = sel.h[sel.order[r]];
        if (suffix_max - hr > eps * hmax)
            return "block " + std::to_string(sel.order[r]) + " ranked above a block with a metric larger by " +
                   std::to_string(suffix_max - hr) + " (allowed " + std::to_string(eps * hmax) + ")";
        suffix_max = std::max(suffix_max, hr);
    }

    // (2) Per block: the right count, and a near-top-t set of the reference importances.
    std::vector<std::vector<int>> kept_in(nb);
    for (size_t i = 0; i < sel.kept.size(); ++i) {
        const int t = sel.kept[i];
        if (t < 0 || t >= n_global) return "kept index " + std::to_string(t) + " out of range";
        if (i && t <= sel.kept[i - 1]) return "kept indices not strictly ascending";
        kept_in[t / b].push_back(t);
    }
    for (int j = 0; j < nb; ++j) {
        const int lo = j * b, hi = std::min(n_global, lo + b);
        const int want = std::min(sel.budget[rank_of[j]], hi - lo);
        if (int(kept_in[j].size()) != want)
            return "block " + std::to_string(j) + " keeps " + std::to_string(kept_in[j].size()) + " tokens, budget " +
                   std::to_string(want);
        std::vector<char> is_kept(hi - lo, 0);
        for (int t : kept_in[j]) is_kept[t - lo] = 1;
        double smax = 0, min_kept = INFINITY, max_dropped = -INFINITY;
        for (int t = lo; t < hi; ++t) {
            smax = std::max(smax, double(sel.s[t]));
            if (is_kept[t - lo]) min_kept = std::min(min_kept, double(sel.s[t]));
            else max_dropped = std::max(max_dropped, double(sel.s[t]));
        }
        if (max_dropped - min_kept > eps * smax)
            return "block " + std::to_string(j) + " dropped a token more important by " +
                   std::to_string(max_dropped - min_kept) + " than one it kept (allowed " + std::to_string(eps * smax) + ")";
    }
    return "";
}

}  // namespace tca::detail::test
