// What each query of a run attended to, recorded compactly so the error bound (and the selection
// file) can be computed afterwards on the host without storing an L x L mask.
//
//  * prefill rows (position p < prompt): dense, or the spec's sparse rule — kept global tokens
//    with index <= p - window, plus the local window (p - window, p];
//  * decode rows (position p >= prompt, step s = p - prompt): the first step_n2[s][h] tokens of the
//    global store G (G is append-only, so its prefix at step s is what the query saw) plus the
//    uncompressed tail of step_n1[s] tokens ending at p.
#pragma once

#include <cstdint>
#include <vector>

namespace tca::detail::method {

// One chunk of a chunked prompt (chunked_session.h): query p in [start, end) attended the first
// g_len[h] tokens of G plus every position in [u, p].
struct ChunkSpan {
    int start = 0, end = 0, u = 0;
    std::vector<int> g_len;  // [kv head]
};

struct AttentionTrace {
    bool dense = true;
    int prompt = 0;  // P: rows [0, P) are prefill rows
    int window = 0;  // w of the sparse prefill rule (0 when the prefill was dense)
    std::vector<std::vector<int>> prefill_kept;  // [kv head] sorted kept global indices (sparse prefill)
    std::vector<std::vector<int>> g_positions;   // [kv head] positions in G, append order (ascending)
    std::vector<std::vector<int>> step_n2;       // [decode step][kv head] |G| seen by that step
    std::vector<int> step_n1;                    // [decode step] uncompressed tokens seen by that step
    bool steps_recorded = true;                  // false: the session ran without step tracing
    std::vector<ChunkSpan> chunks;               // chunked prompt (TCA): the rule of prompt rows

    int total_tokens() const { return prompt + int(step_n1.size()); }
    // m[j] = 1 if the query at position `pos` of KV head `h` attended key j (j <= pos), else 0.
    void mask(int h, int pos, std::vector<uint8_t>& m) const;
};

}  // namespace tca::detail::method
