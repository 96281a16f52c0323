#include "lm/model.h"

#include <cmath>
#include <filesystem>
#include <map>

#include <fmt/core.h>

#include "core/error.h"
#include "core/half.h"
#include "io/atomic_file.h"

namespace tca::lm {

namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& file, const std::string& what) {
    throw Error(TCA_ERROR_IO, file + ": " + what);
}

int config_int(const json& cfg, const char* key, const std::string& file) {
    if (!cfg.contains(key)) fail(file, fmt::format("config.{} is missing", key));
    const json& v = cfg[key];
    if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (1 << 24))
        fail(file, fmt::format("config.{} must be a positive integer, got {}", key, v.dump()));
    return v.get<int>();
}

double config_number(const json& cfg, const char* key, const std::string& file) {
    if (!cfg.contains(key)) fail(file, fmt::format("config.{} is missing", key));
    const json& v = cfg[key];
    if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>()))
        fail(file, fmt::format("config.{} must be a positive number, got {}", key, v.dump()));
    return v.get<double>();
}

Config parse_config(const json& doc, const std::string& file) {
    if (!doc.contains("config") || !doc["config"].is_object()) fail(file, "\"config\" object is missing");
    const json& c = doc["config"];
    Config cfg;
    cfg.vocab = config_int(c, "vocab", file);
    cfg.dim = config_int(c, "dim", file);
    cfg.n_layers = config_int(c, "n_layers", file);
    cfg.n_heads = config_int(c, "n_heads", file);
    cfg.n_kv_heads = config_int(c, "n_kv_heads", file);
    cfg.head_dim = config_int(c, "head_dim", file);
    cfg.ffn_dim = config_int(c, "ffn_dim", file);
    cfg.norm_eps = float(config_number(c, "norm_eps", file));
    cfg.rope_theta = config_number(c, "rope_theta", file);
    cfg.train_context = c.contains("train_context") ? config_int(c, "train_context", file) : 0;
    if (cfg.vocab != 256) fail(file, fmt::format("config.vocab is {}; a byte-level model has 256", cfg.vocab));
    if (cfg.n_heads % cfg.n_kv_heads != 0)
        fail(file, fmt::format("config.n_heads {} is not a multiple of config.n_kv_heads {}", cfg.n_heads, cfg.n_kv_heads));
    if (cfg.head_dim % 2 != 0) fail(file, fmt::format("config.head_dim {} is odd: rotate-half RoPE needs pairs", cfg.head_dim));
    return cfg;
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
    const auto text = io::read_file(json_path);
    json doc;
    try {
        doc = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {
        fail(json_path, std::string("not valid JSON: ") + e.what());
    }
    if (!doc.is_object() || doc.value("format", std::string()) != "tca-lm")
        fail(json_path, "not a tca-lm model file (\"format\" must be \"tca-lm\"; see docs/lm.md)");
    if (!doc.contains("version") || doc["version"] != 1)
        fail(json_path, fmt::format("unsupported version {} (this build reads version 1)",
                                    doc.contains("version") ? doc["version"].dump() : "(missing)"));
    if (doc.value("dtype", std::string()) != "f16")
        fail(json_path, "\"dtype\" must be \"f16\" (the only weight type of version 1)");
    if (!doc.contains("weights") || !doc["weights"].is_string()) fail(json_path, "\"weights\" (file name) is missing");
    Model m;
    m.path = json_path;
    m.cfg = parse_config(doc, json_path);
    if (doc.contains("training")) m.training = doc["training"];

    const std::string bin_path =
        (std::filesystem::path(json_path).parent_path() / doc["weights"].get<std::string>()).string();
    const auto bin = io::read_file(bin_path);

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
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        const int64_t off = t["offset"].get<int64_t>();
        if (off < 0 || off % 2 != 0) fail(json_path, fmt::format("tensor {} has a bad offset {}", name, off));
        if (uint64_t(off) + uint64_t(n) * 2 > bin.size())
            fail(bin_path, fmt::format("is {} bytes but tensor {} ends at byte {} (truncated, or not this model's weights)",
                                       bin.size(), name, off + n * 2));
        std::vector<float> v(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
            uint16_t h;
            std::memcpy(&h, bin.data() + off + 2 * i, 2);
            v[size_t(i)] = half_to_float(h);
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

}  // namespace tca::lm
