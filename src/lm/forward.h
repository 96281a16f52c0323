// The LM's forward pass over one window of bytes (docs/lm.md): float32 on the host for the
// embeddings, norms, projections, RoPE and FFN; attention through libtca's public API on the
// context's device -- a per-layer tca_cache (dense, or TCA from a profile) exactly as a runtime
// would use it.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "lm/model.h"
#include "tca/tca.hpp"

namespace tca::detail::lm {

// Called once per layer with its attention inputs after RoPE, head-major as libtca takes them:
// q [Hq, T, hd], k and v [Hkv, T, hd]. For dumps and calibration.
using QkvSink = std::function<void(int layer, const std::vector<float>& q, const std::vector<float>& k,
                                   const std::vector<float>& v)>;

struct ForwardOptions {
    const tca::Profile* profile = nullptr;  // null: dense attention (a dense tca_cache)
    int window = 0;                         // the profile's local window w (for the statistics)
    bool compare_dense = false;             // also run tca_dense_prefill on each layer's inputs; record errors
    bool keep_logits = false;               // return the logits
    QkvSink on_qkv;                         // optional
    int threads = 0;                        // matmul threads; <= 0: default_threads()
};

struct LayerStats {
    std::vector<int> kept;  // per KV head: kept global tokens (TCA); global_tokens when dense
    int global_tokens = 0;  // tokens outside the final local window: T - w (T when dense)
    uint64_t kv_bytes = 0, kv_bytes_dense = 0;  // tca_cache_size after the prefill
    // compare_dense: relative L1 error of the attention output per query row,
    // ||o_tca - o_dense||_1 / ||o_dense||_1, over the rows that can drop anything (position >= w),
    // every query head.
    double rel_l1_sum = 0, rel_l1_max = 0;
    int64_t rel_l1_rows = 0;
};

struct WindowResult {
    double bits = 0;        // sum over predicted positions of -log2 p(next byte)
    int predicted = 0;      // T - 1: every byte but the first is predicted from the ones before it
    std::vector<float> logits;  // [T, vocab] when keep_logits
    std::vector<LayerStats> layers;
    double matmul_seconds = 0, attention_seconds = 0;  // host wall time of the two halves
};

// Runs the model over bytes[0 .. T) (positions 0 .. T-1, RoPE from 0).
WindowResult forward(const Model& m, tca::Context& ctx, const uint8_t* bytes, int T, const ForwardOptions& opt);

// Pieces of the forward pass, exposed for the tests.
// y[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight, rows of width dim.
void rms_norm(const float* x, int T, int dim, const std::vector<float>& weight, float eps, float* y);
// Rotate-half RoPE on a projection output y [T, H*hd] (token-major), written head-major to
// out [H, T, hd].
void rope_to_heads(const float* y, int T, int heads, int head_dim, double theta, float* out);

}  // namespace tca::detail::lm
