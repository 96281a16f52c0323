#include "method/budget.h"

#include <cmath>

#include "core/error.h"

namespace tca::detail::method {

std::vector<int> budget_vector(const std::vector<int>& K, const std::vector<double>& p, int n_blocks) {
    require(K.size() == p.size() && !K.empty(), TCA_ERROR_INVALID_ARGUMENT, "budget_vector: p does not match K");
    std::vector<int> psi(n_blocks > 0 ? n_blocks : 0);
    double tail = 0;  // sum_{k' >= k} p_k'
    int prev = 0;     // C of the previous (larger) keep count
    for (int i = int(K.size()) - 1; i >= 0; --i) {
        tail += p[i];
        int c = i == 0 ? n_blocks : static_cast<int>(std::floor(n_blocks * tail + 0.5));
        c = std::min(std::max(c, prev), n_blocks);  // monotone even if p has rounding noise
        for (int r = prev; r < c; ++r) psi[r] = K[i];
        prev = c;
    }
    return psi;
}

}  // namespace tca::detail::method
