// A calibration profile: the chosen sparsity configuration p* per (layer, KV head), with the
// parameters and model shape it was made for. Stored as versioned JSON (docs/profile.md).
#pragma once

#include <string>
#include <vector>

#include "method/candidates.h"
#include "method/params.h"

namespace tca::detail::method {

constexpr const char* kProfileFormat = "tca-profile";
constexpr int kProfileVersion = 1;

struct ModelShape {
    int layers = 1, q_heads = 0, kv_heads = 0, head_dim = 0;
};

struct HeadProfile {
    int layer = 0, kv_head = 0;
    int candidate = 0;           // index into Profile::candidates
    std::vector<double> p;       // p* (a copy of the candidate's distribution)
    double covered_mass = 0;     // a_i of the chosen candidate on the calibration sequence
    int kept_tokens = 0;         // global tokens it kept there
    int global_tokens = 0;       // tokens outside the final window there (L - w)
    double keep_ratio = 0;       // kept_tokens / global_tokens
};

struct Profile {
    ModelShape shape;
    TcaParams params;
    int calibration_tokens = 0;  // L of the calibration sequence
    std::vector<int> keep_counts;
    std::vector<Candidate> candidates;
    std::vector<HeadProfile> heads;  // index layer * kv_heads + kv_head
    // A head shard (slice_kv_heads): the whole model's KV heads and this shard's first one; 0, 0 for
    // a whole model. Saved as the optional "shard" object.
    int model_kv_heads = 0, shard_begin = 0;

    const HeadProfile& head(int layer, int kv_head) const { return heads[size_t(layer) * shape.kv_heads + kv_head]; }
    // p* of every KV head of a layer, as a session takes it.
    std::vector<std::vector<double>> layer_p(int layer) const;
};

// A profile without calibration: every head uses the log-Gaussian (the grid's sigma) whose expected
// keep ratio (sum_k k p_k / b) is `keep_ratio`, appended to the candidate list after the grid
// (log_gaussian_with_ratio). covered_mass is 0 (unmeasured) and keep_ratio is that expected ratio.
// For benchmarks that read speed apart from calibration, and for runtimes that want a fixed budget.
Profile fixed_ratio_profile(const TcaParams& params, const ModelShape& shape, double keep_ratio);

std::string profile_to_json(const Profile& p);
// Parses and validates (format, version, shape, parameters, candidates, one entry per head);
// `what` names the source in messages. Throws Error(TCA_ERROR_IO).
Profile profile_from_json(const std::string& text, const std::string& what);

Profile load_profile(const std::string& path);

// KV heads [begin, begin + count) of every layer (and their query heads, g per KV head), renumbered
// from 0: the profile of one shard of a model whose heads run on several devices (tensor
// parallelism). Selection and budgets are per (layer, KV head), so a cache made from the slice on
// that shard's heads computes exactly what the full profile's cache computes for them.
// Throws TCA_ERROR_INVALID_ARGUMENT for a range outside the profile's KV heads.
Profile slice_kv_heads(const Profile& p, int begin, int count);

// Throws TCA_ERROR_SHAPE_MISMATCH unless the profile was made for this attention shape.
void check_profile_shape(const Profile& p, int q_heads, int kv_heads, int head_dim);

}  // namespace tca::detail::method
