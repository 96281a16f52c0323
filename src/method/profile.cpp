#include "method/profile.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"

namespace tca::method {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& what, const std::string& msg) { throw Error(TCA_ERROR_IO, what + ": " + msg); }

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
    return j.dump(2) + "\n";
}

Profile profile_from_json(const std::string& text, const std::string& what) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::parse_error& e) {
        bad(what, std::string("not valid JSON: ") + e.what());
    }
    if (!j.is_object()) bad(what, "not a JSON object");
    const auto format = field<std::string>(j, "format", what);
    if (format != kProfileFormat) bad(what, "format is '" + format + "', expected '" + kProfileFormat + "'");
    const int version = field<int>(j, "version", what);
    if (version != kProfileVersion)
        bad(what, "profile version " + std::to_string(version) + " is not supported (this build reads version " +
                      std::to_string(kProfileVersion) + ")");

    Profile p;
    const json& m = j.contains("model") ? j["model"] : json();
    p.shape.layers = field<int>(m, "layers", what + " model");
    p.shape.q_heads = field<int>(m, "q_heads", what + " model");
    p.shape.kv_heads = field<int>(m, "kv_heads", what + " model");
    p.shape.head_dim = field<int>(m, "head_dim", what + " model");
    if (p.shape.layers < 1 || p.shape.kv_heads < 1 || p.shape.q_heads < 1 || p.shape.head_dim < 1 ||
        p.shape.q_heads % p.shape.kv_heads != 0)
        bad(what, "impossible model shape");

    const json& pr = j.contains("params") ? j["params"] : json();
    p.params.block = field<int>(pr, "block", what + " params");
    p.params.window = field<int>(pr, "window", what + " params");
    p.params.tau = field<double>(pr, "tau", what + " params");
    p.params.alpha = field<double>(pr, "alpha", what + " params");
    p.params.n_lognormal = field<int>(pr, "n_lognormal", what + " params");
    p.params.sigma = field<double>(pr, "sigma", what + " params");
    p.params.mu_extra = field<double>(pr, "mu_extra", what + " params");
    p.params.dense_candidate = field<bool>(pr, "dense_candidate", what + " params");
    try {
        validate_params(p.params);
    } catch (const Error& e) {
        bad(what, std::string("bad parameters: ") + e.what());
    }
    p.calibration_tokens = field<int>(j, "calibration_tokens", what);

    const json& c = j.contains("candidates") ? j["candidates"] : json();
    p.keep_counts = field<std::vector<int>>(c, "keep_counts", what + " candidates");
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
        h.layer = field<int>(hj, "layer", what + " head");
        h.kv_head = field<int>(hj, "kv_head", what + " head");
        if (h.layer < 0 || h.layer >= p.shape.layers || h.kv_head < 0 || h.kv_head >= p.shape.kv_heads)
            bad(what, "head entry (" + std::to_string(h.layer) + ", " + std::to_string(h.kv_head) + ") outside the model");
        const size_t slot = size_t(h.layer) * p.shape.kv_heads + h.kv_head;
        if (seen[slot]) bad(what, "duplicate entry for layer " + std::to_string(h.layer) + " KV head " + std::to_string(h.kv_head));
        seen[slot] = true;
        h.candidate = field<int>(hj, "candidate", what + " head");
        if (h.candidate < 0 || h.candidate >= int(p.candidates.size())) bad(what, "head entry names a missing candidate");
        h.p = field<std::vector<double>>(hj, "p", what + " head");
        const auto& cp = p.candidates[h.candidate].p;
        if (h.p.size() != cp.size()) bad(what, "a head's p* does not match its candidate");
        for (size_t i = 0; i < cp.size(); ++i)
            if (std::fabs(h.p[i] - cp[i]) > 1e-9) bad(what, "a head's p* does not match its candidate");
        h.covered_mass = field<double>(hj, "covered_mass", what + " head");
        h.kept_tokens = field<int>(hj, "kept_tokens", what + " head");
        h.global_tokens = field<int>(hj, "global_tokens", what + " head");
        h.keep_ratio = field<double>(hj, "keep_ratio", what + " head");
        if (!(h.covered_mass >= 0 && h.covered_mass <= 1 + 1e-9) || !(h.keep_ratio >= 0 && h.keep_ratio <= 1 + 1e-9))
            bad(what, "covered_mass and keep_ratio must lie in [0, 1]");
        p.heads[slot] = std::move(h);
    }
    return p;
}

Profile load_profile(const std::string& path) {
    const auto bytes = io::read_file(path);
    return profile_from_json(std::string(bytes.begin(), bytes.end()), path);
}

void check_profile_shape(const Profile& p, int q_heads, int kv_heads, int head_dim) {
    require(p.shape.q_heads == q_heads && p.shape.kv_heads == kv_heads && p.shape.head_dim == head_dim,
            TCA_ERROR_SHAPE_MISMATCH,
            "profile is for " + std::to_string(p.shape.q_heads) + " query heads / " + std::to_string(p.shape.kv_heads) +
                " KV heads / head dim " + std::to_string(p.shape.head_dim) + ", the tensors have " +
                std::to_string(q_heads) + " / " + std::to_string(kv_heads) + " / " + std::to_string(head_dim));
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

}  // namespace tca::method
