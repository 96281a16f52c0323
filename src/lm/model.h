// The in-house byte-level language model of docs/lm.md: loading and validating model.json +
// model.bin. The LM is a client of libtca (used by `tca lm` and its tests), not part of it.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tca::detail::lm {

struct Config {
    int vocab = 256, dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, ffn_dim = 0;
    float norm_eps = 1e-5f;
    double rope_theta = 10000.0;
    int train_context = 0;
};

// A linear map y = W x with W stored [out, in] in the file. We keep it transposed, [in, out], so
// the matmul streams rows of W^T with unit stride (see matmul.h).
struct Linear {
    int in = 0, out = 0;
    std::vector<float> wt;  // [in, out]
};

struct Layer {
    std::vector<float> attn_norm, ffn_norm;  // [dim]
    Linear wq, wk, wv, wo, w1, w2, w3;
};

struct Model {
    Config cfg;
    std::vector<float> tok_emb;  // [vocab, dim]
    std::vector<Layer> layers;
    std::vector<float> norm;  // [dim]
    Linear output;            // [vocab, dim] in the file
    nlohmann::json training;  // how it was made (copied from model.json, may be null)
    std::string path;         // the model.json it came from
};

// Loads model.json and the weights file it names (relative to model.json's directory). Every
// problem -- a missing or unreadable file or one that is not a regular file, bad JSON, an unknown
// format or version, a field of the wrong JSON type, a config field missing, not an integer,
// outside its range or inconsistent, a config whose weights the file is too small to hold
// (checked before anything is built from it), a tensor missing, duplicated, unknown or of the
// wrong shape, a weights file too short for the offsets, a non-finite weight -- throws
// tca::detail::Error(TCA_ERROR_IO) with a message naming the file and the field.
Model load_model(const std::string& json_path);

// Parameter count (every stored tensor).
size_t parameter_count(const Model& m);

}  // namespace tca::detail::lm
