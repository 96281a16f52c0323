#include "tools/attend_report.h"

#include <nlohmann/json.hpp>

namespace tca::detail::tools {

std::vector<uint8_t> selection_map(const method::CacheAccount& acc, const method::AttentionTrace& trace, int kv_heads) {
    const int L = acc.tokens_seen;
    std::vector<uint8_t> s(size_t(kv_heads) * L, 0);
    const int tail = acc.pending + acc.ring;  // the uncompressed tokens are always the newest
    for (int h = 0; h < kv_heads; ++h) {
        uint8_t* row = s.data() + size_t(h) * L;
        for (int r = 0; r < acc.global[h]; ++r) row[trace.g_positions[h][r]] = 1;
        for (int j = L - tail; j < L; ++j) row[j] = 2;
    }
    return s;
}

std::string stats_json(const AttendInfo& info, const method::CacheAccount& acc,
                       const std::vector<method::HeadBoundSummary>& bounds) {
    using nlohmann::json;
    json j;
    j["device"] = info.device;
    j["mode"] = info.mode;
    j["tokens"] = info.tokens;
    j["prompt_tokens"] = info.prompt;
    j["decode_steps"] = info.decode_steps;
    j["block"] = info.block;
    j["window"] = info.window;
    j["chunk"] = info.chunk;
    j["bytes_per_token_per_kv_head"] = acc.bytes_per_token;
    json kv = json::array();
    int64_t dense_total = 0, tca_total = 0, kept_total = 0;
    for (int h = 0; h < int(acc.global.size()); ++h) {
        kv.push_back({{"kv_head", h},
                      {"kept_tokens", acc.cached(h)},
                      {"global_tokens", acc.global[h]},
                      {"pending_tokens", acc.pending},
                      {"ring_tokens", acc.ring},
                      {"keep_ratio", double(acc.cached(h)) / acc.tokens_seen},
                      {"kv_bytes_dense", acc.dense_bytes()},
                      {"kv_bytes_tca", acc.tca_bytes(h)},
                      {"kv_reduction", 1.0 - double(acc.tca_bytes(h)) / acc.dense_bytes()}});
        dense_total += acc.dense_bytes();
        tca_total += acc.tca_bytes(h);
        kept_total += acc.cached(h);
    }
    j["kv_heads"] = kv;
    json qh = json::array();
    double worst_slack = 1e300, max_rel = 0, mean_rel = 0;
    int violations = 0;
    for (int h = 0; h < int(bounds.size()); ++h) {
        const auto& b = bounds[h];
        qh.push_back({{"q_head", h},
                      {"min_bound_slack", b.min_slack},
                      {"max_gamma", b.max_gamma},
                      {"mean_gamma", b.mean_gamma},
                      {"max_rel_error", b.max_rel},
                      {"mean_rel_error", b.mean_rel},
                      {"max_l1_error", b.max_actual},
                      {"max_error_to_bound", b.max_tightness},
                      {"bound_violations", b.violations}});
        worst_slack = std::min(worst_slack, b.min_slack);
        max_rel = std::max(max_rel, b.max_rel);
        mean_rel += b.mean_rel / bounds.size();
        violations += b.violations;
    }
    j["q_heads"] = qh;
    j["totals"] = {{"keep_ratio", double(kept_total) / (double(acc.tokens_seen) * acc.global.size())},
                   {"kv_bytes_dense", dense_total},
                   {"kv_bytes_tca", tca_total},
                   {"kv_reduction", 1.0 - double(tca_total) / dense_total},
                   {"min_bound_slack", bounds.empty() ? 0.0 : worst_slack},
                   {"max_rel_error", max_rel},
                   {"mean_rel_error", mean_rel},
                   {"bound_violations", violations}};
    return j.dump(2) + "\n";
}

}  // namespace tca::detail::tools
