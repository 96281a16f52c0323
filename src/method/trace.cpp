#include "method/trace.h"

#include <algorithm>

#include "core/error.h"

namespace tca::detail::method {

void AttentionTrace::mask(int h, int pos, std::vector<uint8_t>& m) const {
    require(pos >= 0 && pos < total_tokens(), TCA_ERROR_INTERNAL, "trace: position outside the run");
    m.assign(size_t(pos) + 1, 0);
    if (pos < prompt) {
        if (!dense && !chunks.empty()) {
            // Chunks are in position order and cover the prompt.
            auto c = std::upper_bound(chunks.begin(), chunks.end(), pos, [](int p, const ChunkSpan& x) { return p < x.end; });
            require(c != chunks.end() && c->start <= pos, TCA_ERROR_INTERNAL, "trace: prompt row outside every chunk");
            for (int r = 0; r < c->g_len[h]; ++r) m[g_positions[h][r]] = 1;
            for (int j = c->u; j <= pos; ++j) m[j] = 1;
            return;
        }
        if (dense || prefill_kept.empty()) {
            std::fill(m.begin(), m.end(), 1);
            return;
        }
        for (int j : prefill_kept[h]) {
            if (j > pos - window) break;  // sorted: the rest are inside or after the window
            m[j] = 1;
        }
        for (int j = std::max(0, pos - window + 1); j <= pos; ++j) m[j] = 1;
        return;
    }
    const int s = pos - prompt;
    if (dense) {
        std::fill(m.begin(), m.end(), 1);
        return;
    }
    const int n2 = step_n2[s][h];
    for (int r = 0; r < n2; ++r) m[g_positions[h][r]] = 1;
    for (int j = pos - step_n1[s] + 1; j <= pos; ++j) m[j] = 1;
}

}  // namespace tca::detail::method
