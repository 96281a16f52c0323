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
    std::vector<float> position_bits;  // [T - 1]: -log2 p(bytes[t + 1]) for each t
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
// Rotate-half RoPE on a projection output y [T, H*hd] (token-major) at positions pos0 .. pos0+T-1,
// written head-major to out [H, T, hd].
void rope_to_heads(const float* y, int T, int heads, int head_dim, double theta, float* out, int pos0 = 0);

// The layer stack over T tokens at positions pos0 .. pos0+T-1 (x [T, dim] in, the residual stream
// after the last layer out), with each layer's attention left to `attention` (layer, q, k, v after
// RoPE, head-major) -> o [Hq, T, hd]: forward() uses a fresh tca_cache per window, the generator
// (lm/generate.h) one per layer kept across its decode steps.
using LayerAttention =
    std::function<std::vector<float>(int layer, const std::vector<float>& q, const std::vector<float>& k,
                                     const std::vector<float>& v)>;
void run_layers(const Model& m, std::vector<float>& x, int T, int pos0, const LayerAttention& attention, int threads,
                const QkvSink& on_qkv = nullptr, double* matmul_seconds = nullptr, double* attention_seconds = nullptr);
// Token embeddings of bytes[0 .. T) ([T, dim]); the logits [T, vocab] of a residual stream.
std::vector<float> embed(const Model& m, const uint8_t* bytes, int T);
std::vector<float> output_logits(const Model& m, const std::vector<float>& x, int T, int threads);
// TCA_ERROR_SHAPE_MISMATCH unless the profile (when given) was made for the model's shape.
void check_profile_shape(const Model& m, const tca::Profile* profile);

}  // namespace tca::detail::lm
