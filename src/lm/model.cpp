#include "lm/model.h"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>

#include <fmt/core.h>

#include "core/error.h"
#include "core/half.h"
#include "io/input_file.h"

namespace tca::detail::lm {

namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& file, const std::string& what) {
    throw Error(TCA_ERROR_IO, file + ": " + what);
}

// The largest model this loader accepts. Far above any model that runs here (Llama-3.1-405B has
// 126 layers, d = 16384, F = 53248, 128 heads of 128), they keep every width an int and every
// product far inside 64 bits, so the checks below cannot be fooled by wrapping arithmetic.
constexpr int64_t kMaxLayers = 4096, kMaxDim = 1 << 16, kMaxHeads = 1024, kMaxHeadDim = 1024, kMaxFfn = 1 << 20,
                  kMaxContext = 1 << 24;
// model.json holds the config and ~100 bytes per tensor: a few hundred KB at the limits above.
constexpr uint64_t kMaxJsonBytes = 64ull << 20;

// nlohmann's messages start with a tag ("[json.exception.parse_error.101] ") that means nothing to
// a user; the rest says what is wrong and where.
std::string json_message(const nlohmann::json::exception& e) {
    const std::string m = e.what();
    const size_t end = m.find("] ");
    return m.rfind("[json.exception.", 0) == 0 && end != std::string::npos ? m.substr(end + 2) : m;
}

int config_int(const json& cfg, const char* key, const std::string& file, int64_t hi) {
    if (!cfg.contains(key)) fail(file, fmt::format("config.{} is missing", key));
    const json& v = cfg[key];
    // A JSON integer only (not 1.5 or 1e3), read without nlohmann's silent conversions.
    const bool ok = v.is_number_unsigned() ? v.get<uint64_t>() >= 1 && v.get<uint64_t>() <= uint64_t(hi)
                                           : v.is_number_integer() && v.get<int64_t>() >= 1 && v.get<int64_t>() <= hi;
    if (!ok) fail(file, fmt::format("config.{} must be an integer in [1, {}], got {}", key, hi, v.dump()));
    return int(v.get<int64_t>());
}

double config_number(const json& cfg, const char* key, const std::string& file, double hi) {
    if (!cfg.contains(key)) fail(file, fmt::format("config.{} is missing", key));
    const json& v = cfg[key];
    if (!v.is_number() || !(v.get<double>() > 0) || !(v.get<double>() <= hi))
        fail(file, fmt::format("config.{} must be a number in (0, {}], got {}", key, hi, v.dump()));
    return v.get<double>();
}

Config parse_config(const json& doc, const std::string& file) {
    if (!doc.contains("config") || !doc["config"].is_object()) fail(file, "\"config\" object is missing");
    const json& c = doc["config"];
    Config cfg;
    cfg.vocab = config_int(c, "vocab", file, 256);
    cfg.dim = config_int(c, "dim", file, kMaxDim);
    cfg.n_layers = config_int(c, "n_layers", file, kMaxLayers);
    cfg.n_heads = config_int(c, "n_heads", file, kMaxHeads);
    cfg.n_kv_heads = config_int(c, "n_kv_heads", file, kMaxHeads);
    cfg.head_dim = config_int(c, "head_dim", file, kMaxHeadDim);
    cfg.ffn_dim = config_int(c, "ffn_dim", file, kMaxFfn);
    cfg.norm_eps = float(config_number(c, "norm_eps", file, 1.0));
    cfg.rope_theta = config_number(c, "rope_theta", file, 1e30);
    cfg.train_context = c.contains("train_context") ? config_int(c, "train_context", file, kMaxContext) : 0;
    if (cfg.vocab != 256) fail(file, fmt::format("config.vocab is {}; a byte-level model has 256", cfg.vocab));
    if (cfg.n_heads % cfg.n_kv_heads != 0)
        fail(file, fmt::format("config.n_heads {} is not a multiple of config.n_kv_heads {}", cfg.n_heads, cfg.n_kv_heads));
    if (cfg.head_dim % 2 != 0) fail(file, fmt::format("config.head_dim {} is odd: rotate-half RoPE needs pairs", cfg.head_dim));
    return cfg;
}

// a * b + c, false when it does not fit in 64 bits. (Local checked arithmetic; src/core may grow
// a shared helper for this.)
bool mul_add(uint64_t a, uint64_t b, uint64_t c, uint64_t& out) {
    return !__builtin_mul_overflow(a, b, &out) && !__builtin_add_overflow(out, c, &out);
}

// Bytes of half weights the config implies, or false on overflow (impossible within the limits
// above, checked anyway so the limits can change without reopening this).
bool weight_bytes(const Config& c, uint64_t& bytes) {
    const uint64_t D = uint64_t(c.dim), qd = uint64_t(c.n_heads) * c.head_dim, kvd = uint64_t(c.n_kv_heads) * c.head_dim,
                   F = uint64_t(c.ffn_dim), V = uint64_t(c.vocab);
    uint64_t layer = 0, mats = 0;
    // per layer: two norms [D], wq and wo [qd, D], wk and wv [kvd, D], w1, w2, w3 [F, D]
    if (!mul_add(2 * qd + 2 * kvd + 3 * F, D, 2 * D, layer)) return false;
    if (!mul_add(layer, uint64_t(c.n_layers), 0, mats)) return false;
    uint64_t params = 0;  // + tok_emb and output [V, D], norm [D]
    if (!mul_add(2 * V + 1, D, mats, params)) return false;
    return !__builtin_mul_overflow(params, uint64_t(2), &bytes);
}

// Every tensor the config implies, with its [out, in] (or [n]) shape.
std::map<std::string, std::vector<int64_t>> expected_shapes(const Config& c) {
    std::map<std::string, std::vector<int64_t>> s;
    const int64_t D = c.dim, qd = int64_t(c.n_heads) * c.head_dim, kvd = int64_t(c.n_kv_heads) * c.head_dim;
    s["tok_emb"] = {c.vocab, D};
    for (int i = 0; i < c.n_layers; ++i) {
        const std::string p = fmt::format("layers.{}.", i);
        s[p + "attn_norm"] = {D};
        s[p + "wq"] = {qd, D};
        s[p + "wk"] = {kvd, D};
        s[p + "wv"] = {kvd, D};
        s[p + "wo"] = {D, qd};
        s[p + "ffn_norm"] = {D};
        s[p + "w1"] = {c.ffn_dim, D};
        s[p + "w2"] = {D, c.ffn_dim};
        s[p + "w3"] = {c.ffn_dim, D};
    }
    s["norm"] = {D};
    s["output"] = {c.vocab, D};
    return s;
}

std::string shape_str(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

Linear to_linear(const std::vector<float>& w, int out, int in) {
    Linear l;
    l.in = in, l.out = out;
    l.wt.resize(size_t(in) * out);
    for (int o = 0; o < out; ++o)
        for (int k = 0; k < in; ++k) l.wt[size_t(k) * out + o] = w[size_t(o) * in + k];
    return l;
}

}  // namespace

Model load_model(const std::string& json_path) {
    const auto text = io::read_regular_file(json_path, kMaxJsonBytes);
    json doc;
    try {
        doc = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {
        fail(json_path, "not valid JSON: " + json_message(e));
    }
    // Every type is checked before a value is read: nlohmann throws its own exceptions on a wrong type.
    if (!doc.is_object() || !doc.contains("format") || doc["format"] != "tca-lm")
        fail(json_path, "not a tca-lm model file (\"format\" must be \"tca-lm\"; see docs/lm.md)");
    if (!doc.contains("version") || !doc["version"].is_number_integer() || doc["version"] != 1)
        fail(json_path, fmt::format("unsupported version {} (this build reads version 1)",
                                    doc.contains("version") ? doc["version"].dump() : "(missing)"));
    if (!doc.contains("dtype") || doc["dtype"] != "f16")
        fail(json_path, "\"dtype\" must be \"f16\" (the only weight type of version 1)");
    if (!doc.contains("weights") || !doc["weights"].is_string()) fail(json_path, "\"weights\" (file name) is missing");
    Model m;
    m.path = json_path;
    m.cfg = parse_config(doc, json_path);
    if (doc.contains("training")) m.training = doc["training"];

    const std::string bin_path =
        (std::filesystem::path(json_path).parent_path() / doc["weights"].get<std::string>()).string();
    // The config is checked against the weights file's size before anything is built from it:
    // a few bytes of JSON claiming 16M layers must not make millions of tensor names first.
    uint64_t need = 0;
    const io::RegularFile bin(bin_path);
    const uint64_t have = bin.size();
    if (!weight_bytes(m.cfg, need) || have < need)
        fail(bin_path, fmt::format("is {} bytes, but the config ({} layers, dim {}, {} heads of {}, ffn {}) needs {} bytes "
                                   "of f16 weights (truncated, or not this model's weights)",
                                   have, m.cfg.n_layers, m.cfg.dim, m.cfg.n_heads, m.cfg.head_dim, m.cfg.ffn_dim, need));

    auto expected = expected_shapes(m.cfg);
    std::map<std::string, std::vector<float>> loaded;
    if (!doc.contains("tensors") || !doc["tensors"].is_array()) fail(json_path, "\"tensors\" list is missing");
    for (const json& t : doc["tensors"]) {
        if (!t.is_object() || !t.contains("name") || !t["name"].is_string() || !t.contains("shape") ||
            !t["shape"].is_array() || !t.contains("offset") || !t["offset"].is_number_integer())
            fail(json_path, "a tensors entry lacks name, shape or offset: " + t.dump());
        const std::string name = t["name"];
        const auto it = expected.find(name);
        if (it == expected.end()) {
            fail(json_path, loaded.count(name) ? "tensor " + name + " is listed twice"
                                               : "unknown tensor " + name + " (not part of the config's model)");
        }
        std::vector<int64_t> shape;
        for (const json& d : t["shape"]) {
            if (!d.is_number_integer()) fail(json_path, "tensor " + name + " has a non-integer shape " + t["shape"].dump());
            shape.push_back(d.get<int64_t>());
        }
        if (shape != it->second)
            fail(json_path, fmt::format("tensor {} has shape {}, the config implies {}", name, shape_str(shape),
                                        shape_str(it->second)));
        // The shape equals the config's, whose products the size check above bounded.
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        const json& oj = t["offset"];
        if (oj.is_number_unsigned() ? oj.get<uint64_t>() > uint64_t(INT64_MAX) || oj.get<uint64_t>() % 2 != 0
                                    : oj.get<int64_t>() < 0 || oj.get<int64_t>() % 2 != 0)
            fail(json_path, fmt::format("tensor {} has a bad offset {}", name, oj.dump()));
        const uint64_t off = oj.get<uint64_t>();
        const uint64_t end = off + uint64_t(n) * 2;  // < 2^63 + 2^48: cannot wrap
        if (end > have)
            fail(bin_path, fmt::format("is {} bytes but tensor {} ends at byte {} (truncated, or not this model's weights)",
                                       have, name, end));
        // Each tensor is read where it lies, so the memory held is what the config needs even
        // when the weights file is far larger.
        std::vector<uint16_t> halves(static_cast<size_t>(n));
        bin.read_at(off, halves.data(), halves.size() * 2);
        std::vector<float> v(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
            v[size_t(i)] = half_to_float(halves[size_t(i)]);  // little-endian host, as the format
            if (!std::isfinite(v[size_t(i)]))
                fail(bin_path, fmt::format("tensor {} element {} is not finite", name, i));
        }
        loaded[name] = std::move(v);
        expected.erase(it);
    }
    if (!expected.empty()) fail(json_path, "tensor " + expected.begin()->first + " is missing");

    const Config& c = m.cfg;
    const int qd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim;
    m.tok_emb = std::move(loaded["tok_emb"]);
    m.norm = std::move(loaded["norm"]);
    m.output = to_linear(loaded["output"], c.vocab, c.dim);
    for (int i = 0; i < c.n_layers; ++i) {
        const std::string p = fmt::format("layers.{}.", i);
        Layer l;
        l.attn_norm = std::move(loaded[p + "attn_norm"]);
        l.ffn_norm = std::move(loaded[p + "ffn_norm"]);
        l.wq = to_linear(loaded[p + "wq"], qd, c.dim);
        l.wk = to_linear(loaded[p + "wk"], kvd, c.dim);
        l.wv = to_linear(loaded[p + "wv"], kvd, c.dim);
        l.wo = to_linear(loaded[p + "wo"], c.dim, qd);
        l.w1 = to_linear(loaded[p + "w1"], c.ffn_dim, c.dim);
        l.w2 = to_linear(loaded[p + "w2"], c.dim, c.ffn_dim);
        l.w3 = to_linear(loaded[p + "w3"], c.ffn_dim, c.dim);
        m.layers.push_back(std::move(l));
    }
    return m;
}

size_t parameter_count(const Model& m) {
    size_t n = m.tok_emb.size() + m.norm.size() + m.output.wt.size();
    for (const Layer& l : m.layers)
        n += l.attn_norm.size() + l.ffn_norm.size() + l.wq.wt.size() + l.wk.wt.size() + l.wv.wt.size() +
             l.wo.wt.size() + l.w1.wt.size() + l.w2.wt.size() + l.w3.wt.size();
    return n;
}

}  // namespace tca::detail::lm
