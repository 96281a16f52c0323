// What `tca attend` reports besides the output: the selection map and the stats JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "method/bound.h"
#include "method/session.h"

namespace tca::detail::tools {

// uint8 [Hkv, L] from the final cache: 1 = in the global store (kept by selection or eviction),
// 2 = held uncompressed (local window / ring / pending; every token for dense), 0 = dropped.
std::vector<uint8_t> selection_map(const method::CacheAccount& acc, const method::AttentionTrace& trace, int kv_heads);

struct AttendInfo {
    std::string device, mode;  // mode "tca" or "dense"
    int tokens = 0, prompt = 0, decode_steps = 0, block = 0, window = 0;
    int chunk = 0;  // --chunk (0: the prompt in one call)
};

// Stats JSON: per KV head cache sizes and bytes, per query head the bound check (if qb given).
std::string stats_json(const AttendInfo& info, const method::CacheAccount& acc,
                       const std::vector<method::HeadBoundSummary>& bounds);

}  // namespace tca::detail::tools
