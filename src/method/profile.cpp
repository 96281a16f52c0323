#include "method/profile.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/input_file.h"

namespace tca::detail::method {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& what, const std::string& msg) { throw Error(TCA_ERROR_IO, what + ": " + msg); }

// nlohmann's messages start with a tag ("[json.exception.parse_error.101] ") that means nothing to
// a user; the rest says what is wrong and where.
std::string json_message(const nlohmann::json::exception& e) {
    const std::string m = e.what();
    const size_t end = m.find("] ");
    return m.rfind("[json.exception.", 0) == 0 && end != std::string::npos ? m.substr(end + 2) : m;
}

// Typed field access with a message that names the field.
template <typename T>
T field(const json& j, const char* key, const std::string& what) {
    if (!j.is_object() || !j.contains(key)) bad(what, std::string("missing field '") + key + "'");
    try {
        return j.at(key).get<T>();
    } catch (const json::exception&) {
        bad(what, std::string("field '") + key + "' has the wrong type");
    }
}

// An integer field: a JSON integer (not 1.5, not 1e20) within [lo, hi]. nlohmann's get<int>
// converts silently (4294967297 -> 1, 1.5 -> 1, 1e20 -> undefined), which loaded wrong profiles.
int int_value(const json& v, const std::string& name, const std::string& what, int64_t lo, int64_t hi) {
    const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    if (!v.is_number_integer()) bad(what, "field '" + name + "' must be an integer in " + range + ", got " + v.dump());
    const bool in_range = v.is_number_unsigned() ? v.get<uint64_t>() >= uint64_t(std::max<int64_t>(lo, 0)) &&
                                                       v.get<uint64_t>() <= uint64_t(hi)
                                                 : v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
    if (!in_range) bad(what, "field '" + name + "' is " + v.dump() + ", outside " + range);
    return int(v.get<int64_t>());
}

int int_field(const json& j, const char* key, const std::string& what, int64_t lo = 0, int64_t hi = INT_MAX) {
    if (!j.is_object() || !j.contains(key)) bad(what, std::string("missing field '") + key + "'");
    return int_value(j.at(key), key, what, lo, hi);
}

std::vector<int> int_array_field(const json& j, const char* key, const std::string& what, int64_t lo, int64_t hi) {
    if (!j.is_object() || !j.contains(key)) bad(what, std::string("missing field '") + key + "'");
    const json& a = j.at(key);
    if (!a.is_array()) bad(what, std::string("field '") + key + "' must be an array of integers");
    std::vector<int> out;
    for (size_t i = 0; i < a.size(); ++i) out.push_back(int_value(a[i], key + ("[" + std::to_string(i) + "]"), what, lo, hi));
    return out;
}

// A profile names one entry per (layer, KV head): a few hundred bytes each, so even a model of
// thousands of heads is a few MB. The cap keeps a mistaken path (a tensor dump, a log) from being
// parsed into a JSON tree many times its size.
constexpr uint64_t kMaxProfileBytes = 64ull << 20;

}  // namespace

std::vector<std::vector<double>> Profile::layer_p(int layer) const {
    std::vector<std::vector<double>> out;
    for (int h = 0; h < shape.kv_heads; ++h) out.push_back(head(layer, h).p);
    return out;
}

std::string profile_to_json(const Profile& p) {
    json j;
    j["format"] = kProfileFormat;
    j["version"] = kProfileVersion;
    j["model"] = {{"layers", p.shape.layers}, {"q_heads", p.shape.q_heads}, {"kv_heads", p.shape.kv_heads},
                  {"head_dim", p.shape.head_dim}};
    j["params"] = {{"block", p.params.block},   {"window", p.params.window},
                   {"tau", p.params.tau},       {"alpha", p.params.alpha},
                   {"n_lognormal", p.params.n_lognormal}, {"sigma", p.params.sigma},
                   {"mu_extra", p.params.mu_extra}, {"dense_candidate", p.params.dense_candidate}};
    j["calibration_tokens"] = p.calibration_tokens;
    json cands = json::array();
    for (const auto& c : p.candidates) cands.push_back({{"mu", c.mu}, {"dense", c.dense}, {"p", c.p}});
    j["candidates"] = {{"keep_counts", p.keep_counts}, {"list", cands}};
    json heads = json::array();
    for (const auto& h : p.heads)
        heads.push_back({{"layer", h.layer}, {"kv_head", h.kv_head}, {"candidate", h.candidate}, {"p", h.p},
                         {"covered_mass", h.covered_mass}, {"kept_tokens", h.kept_tokens},
                         {"global_tokens", h.global_tokens}, {"keep_ratio", h.keep_ratio}});
    j["heads"] = heads;
    if (p.model_kv_heads > 0) j["shard"] = {{"kv_head_begin", p.shard_begin}, {"model_kv_heads", p.model_kv_heads}};
    return j.dump(2) + "\n";
}

Profile profile_from_json(const std::string& text, const std::string& what) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e400
        bad(what, "not valid JSON: " + json_message(e));
    }
    if (!j.is_object()) bad(what, "not a JSON object");
    const auto format = field<std::string>(j, "format", what);
    if (format != kProfileFormat) bad(what, "format is '" + format + "', expected '" + kProfileFormat + "'");
    const int version = int_field(j, "version", what);
    if (version != kProfileVersion)
        bad(what, "profile version " + std::to_string(version) + " is not supported (this build reads version " +
                      std::to_string(kProfileVersion) + ")");

    Profile p;
    const json& m = j.contains("model") ? j["model"] : json();
    p.shape.layers = int_field(m, "layers", what + " model", 1);
    p.shape.q_heads = int_field(m, "q_heads", what + " model", 1);
    p.shape.kv_heads = int_field(m, "kv_heads", what + " model", 1);
    p.shape.head_dim = int_field(m, "head_dim", what + " model", 1);
    if (p.shape.layers < 1 || p.shape.kv_heads < 1 || p.shape.q_heads < 1 || p.shape.head_dim < 1 ||
        p.shape.q_heads % p.shape.kv_heads != 0)
        bad(what, "impossible model shape");

    const json& pr = j.contains("params") ? j["params"] : json();
    p.params.block = int_field(pr, "block", what + " params", 1);
    p.params.window = int_field(pr, "window", what + " params", 1);
    p.params.tau = field<double>(pr, "tau", what + " params");
    p.params.alpha = field<double>(pr, "alpha", what + " params");
    p.params.n_lognormal = int_field(pr, "n_lognormal", what + " params", 2);
    p.params.sigma = field<double>(pr, "sigma", what + " params");
    p.params.mu_extra = field<double>(pr, "mu_extra", what + " params");
    p.params.dense_candidate = field<bool>(pr, "dense_candidate", what + " params");
    try {
        validate_params(p.params);
    } catch (const Error& e) {
        bad(what, std::string("bad parameters: ") + e.what());
    }
    p.calibration_tokens = int_field(j, "calibration_tokens", what);
    if (j.contains("shard")) {
        const json& sh = j["shard"];
        p.model_kv_heads = int_field(sh, "model_kv_heads", what + " shard", 1);
        p.shard_begin = int_field(sh, "kv_head_begin", what + " shard", 0);
        if (p.model_kv_heads < p.shape.kv_heads || p.shard_begin > p.model_kv_heads - p.shape.kv_heads)
            bad(what, "shard: KV heads " + std::to_string(p.shard_begin) + " + " + std::to_string(p.shape.kv_heads) +
                          " do not fit the model's " + std::to_string(p.model_kv_heads));
    }

    const json& c = j.contains("candidates") ? j["candidates"] : json();
    p.keep_counts = int_array_field(c, "keep_counts", what + " candidates", 1, INT_MAX);
    if (p.keep_counts != keep_counts(p.params.block)) bad(what, "keep_counts do not match the block size");
    const json& list = c.contains("list") ? c["list"] : json();
    if (!list.is_array() || list.empty()) bad(what, "candidates.list must be a non-empty array");
    for (const auto& cj : list) {
        Candidate cand;
        cand.mu = field<double>(cj, "mu", what + " candidate");
        cand.dense = field<bool>(cj, "dense", what + " candidate");
        cand.p = field<std::vector<double>>(cj, "p", what + " candidate");
        try {
            validate_distribution(p.keep_counts, cand.p, "candidate");
        } catch (const Error& e) {
            bad(what, e.what());
        }
        p.candidates.push_back(std::move(cand));
    }

    const json& heads = j.contains("heads") ? j["heads"] : json();
    if (!heads.is_array()) bad(what, "missing 'heads' array");
    const size_t n_heads = size_t(p.shape.layers) * p.shape.kv_heads;
    if (heads.size() != n_heads)
        bad(what, "has " + std::to_string(heads.size()) + " head entries, the model shape needs " + std::to_string(n_heads));
    p.heads.resize(n_heads);
    std::vector<bool> seen(n_heads, false);
    for (const auto& hj : heads) {
        HeadProfile h;
        h.layer = int_field(hj, "layer", what + " head");
        h.kv_head = int_field(hj, "kv_head", what + " head");
        if (h.layer < 0 || h.layer >= p.shape.layers || h.kv_head < 0 || h.kv_head >= p.shape.kv_heads)
            bad(what, "head entry (" + std::to_string(h.layer) + ", " + std::to_string(h.kv_head) + ") outside the model");
        const size_t slot = size_t(h.layer) * p.shape.kv_heads + h.kv_head;
        if (seen[slot]) bad(what, "duplicate entry for layer " + std::to_string(h.layer) + " KV head " + std::to_string(h.kv_head));
        seen[slot] = true;
        h.candidate = int_field(hj, "candidate", what + " head");
        if (h.candidate < 0 || h.candidate >= int(p.candidates.size())) bad(what, "head entry names a missing candidate");
        h.p = field<std::vector<double>>(hj, "p", what + " head");
        const auto& cp = p.candidates[h.candidate].p;
        if (h.p.size() != cp.size()) bad(what, "a head's p* does not match its candidate");
        for (size_t i = 0; i < cp.size(); ++i)
            if (std::fabs(h.p[i] - cp[i]) > 1e-9) bad(what, "a head's p* does not match its candidate");
        h.covered_mass = field<double>(hj, "covered_mass", what + " head");
        h.kept_tokens = int_field(hj, "kept_tokens", what + " head");
        h.global_tokens = int_field(hj, "global_tokens", what + " head");
        h.keep_ratio = field<double>(hj, "keep_ratio", what + " head");
        if (h.kept_tokens > h.global_tokens)
            bad(what, "a head keeps " + std::to_string(h.kept_tokens) + " of only " + std::to_string(h.global_tokens) +
                          " global tokens");
        if (!(h.covered_mass >= 0 && h.covered_mass <= 1 + 1e-9) || !(h.keep_ratio >= 0 && h.keep_ratio <= 1 + 1e-9))
            bad(what, "covered_mass and keep_ratio must lie in [0, 1]");
        p.heads[slot] = std::move(h);
    }
    return p;
}

Profile load_profile(const std::string& path) {
    const auto bytes = io::read_regular_file(path, kMaxProfileBytes);
    return profile_from_json(std::string(bytes.begin(), bytes.end()), path);
}

void check_profile_shape(const Profile& p, int q_heads, int kv_heads, int head_dim) {
    require(p.shape.q_heads == q_heads && p.shape.kv_heads == kv_heads && p.shape.head_dim == head_dim,
            TCA_ERROR_SHAPE_MISMATCH,
            "profile is for " + std::to_string(p.shape.q_heads) + " query heads / " + std::to_string(p.shape.kv_heads) +
                " KV heads / head dim " + std::to_string(p.shape.head_dim) + ", the tensors have " +
                std::to_string(q_heads) + " / " + std::to_string(kv_heads) + " / " + std::to_string(head_dim));
}

Profile slice_kv_heads(const Profile& p, int begin, int count) {
    // Written as subtractions so that no sum of caller values can overflow.
    require(begin >= 0 && count >= 1 && begin < p.shape.kv_heads && count <= p.shape.kv_heads - begin,
            TCA_ERROR_INVALID_ARGUMENT,
            "KV heads [" + std::to_string(begin) + ", " + std::to_string(begin) + " + " + std::to_string(count) +
                ") are not a non-empty range of the profile's " + std::to_string(p.shape.kv_heads) + " KV heads");
    Profile out = p;
    out.model_kv_heads = p.model_kv_heads > 0 ? p.model_kv_heads : p.shape.kv_heads;
    out.shard_begin = p.shard_begin + begin;
    const int group = p.shape.q_heads / p.shape.kv_heads;
    out.shape.kv_heads = count;
    out.shape.q_heads = count * group;
    out.heads.clear();
    for (int l = 0; l < p.shape.layers; ++l)
        for (int h = 0; h < count; ++h) {
            HeadProfile hp = p.head(l, begin + h);
            hp.kv_head = h;
            out.heads.push_back(hp);
        }
    return out;
}

Profile fixed_ratio_profile(const TcaParams& params, const ModelShape& shape, double keep_ratio) {
    validate_params(params);
    require(keep_ratio > 0 && keep_ratio <= 1, TCA_ERROR_INVALID_ARGUMENT, "keep ratio must lie in (0, 1]");
    require(shape.layers >= 1 && shape.q_heads >= 1 && shape.kv_heads >= 1 && shape.q_heads % shape.kv_heads == 0 &&
                shape.head_dim >= 1,
            TCA_ERROR_INVALID_ARGUMENT,
            "bad model shape: " + std::to_string(shape.layers) + " layers, " + std::to_string(shape.q_heads) +
                " query heads, " + std::to_string(shape.kv_heads) + " KV heads, head dim " + std::to_string(shape.head_dim) +
                " (all must be positive; query heads a multiple of KV heads)");
    Profile p;
    p.shape = shape;
    p.params = params;
    p.keep_counts = keep_counts(params.block);
    p.candidates = candidate_grid(params);
    // Not the nearest grid point: the grid is coarse (0.25 and 0.35 both snap to 0.28 at b = 128),
    // and a fixed budget is asked for to read speed against an exact ratio. The exact candidate is
    // appended to the list, so the saved profile stays self-describing and loads like any other.
    p.candidates.push_back(log_gaussian_with_ratio(p.keep_counts, params.sigma, keep_ratio));
    const int best = int(p.candidates.size()) - 1;
    for (int l = 0; l < shape.layers; ++l)
        for (int h = 0; h < shape.kv_heads; ++h) {
            HeadProfile hp;
            hp.layer = l, hp.kv_head = h, hp.candidate = best, hp.p = p.candidates[best].p;
            hp.keep_ratio = mean_keep(p.keep_counts, hp.p) / params.block;
            p.heads.push_back(hp);
        }
    return p;
}

}  // namespace tca::detail::method
