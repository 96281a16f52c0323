#include "lm/forward.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/core.h>

#include "core/error.h"
#include "lm/matmul.h"

namespace tca::detail::lm {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// [H, T, hd] head-major back to [T, H*hd] token-major (the input of Wo).
void heads_to_tokens(const float* in, int T, int heads, int hd, float* out) {
    for (int h = 0; h < heads; ++h)
        for (int t = 0; t < T; ++t)
            std::copy(in + (size_t(h) * T + t) * hd, in + (size_t(h) * T + t + 1) * hd, out + (size_t(t) * heads + h) * hd);
}

// [T, H*hd] token-major to [H, T, hd] head-major (V: no rotation).
void tokens_to_heads(const float* in, int T, int heads, int hd, float* out) {
    for (int h = 0; h < heads; ++h)
        for (int t = 0; t < T; ++t)
            std::copy(in + (size_t(t) * heads + h) * hd, in + (size_t(t) * heads + h + 1) * hd, out + (size_t(h) * T + t) * hd);
}

// Relative L1 error per query row of `o` against `dense` (both [Hq, T, hd]), rows t >= w.
void compare_rows(const std::vector<float>& o, const std::vector<float>& dense, int Hq, int T, int hd, int w,
                  LayerStats& s) {
    for (int h = 0; h < Hq; ++h)
        for (int t = std::max(0, w); t < T; ++t) {
            const float* a = o.data() + (size_t(h) * T + t) * hd;
            const float* b = dense.data() + (size_t(h) * T + t) * hd;
            double diff = 0, norm = 0;
            for (int i = 0; i < hd; ++i) diff += std::fabs(double(a[i]) - b[i]), norm += std::fabs(double(b[i]));
            const double rel = norm > 0 ? diff / norm : diff;
            s.rel_l1_sum += rel;
            s.rel_l1_max = std::max(s.rel_l1_max, rel);
            ++s.rel_l1_rows;
        }
}

// One layer's attention through libtca: a tca_cache prefill (dense cache when there is no
// profile), plus, on request, tca_dense_prefill on the same inputs for the error statistics.
std::vector<float> attend(const Model& m, tca::Context& ctx, int layer, int T, const std::vector<float>& q,
                          const std::vector<float>& k, const std::vector<float>& v, const ForwardOptions& opt,
                          LayerStats& s) {
    const Config& c = m.cfg;
    const int Hq = c.n_heads, Hkv = c.n_kv_heads, hd = c.head_dim;
    tca::Tensor tq(ctx, TCA_F32, Hq, T, hd), tk(ctx, TCA_F32, Hkv, T, hd), tv(ctx, TCA_F32, Hkv, T, hd);
    tca::Tensor to(ctx, TCA_F32, Hq, T, hd);
    tq.upload(q.data(), q.size() * sizeof(float));
    tk.upload(k.data(), k.size() * sizeof(float));
    tv.upload(v.data(), v.size() * sizeof(float));
    tca::Cache cache(ctx, opt.profile, layer, Hq, Hkv, hd, TCA_F32, T);
    cache.prefill(tq, tk, tv, to);
    std::vector<float> o(q.size());
    to.download(o.data(), o.size() * sizeof(float));

    const auto size = cache.size();
    s.kv_bytes = size.bytes, s.kv_bytes_dense = size.dense_bytes;
    const int w = opt.profile ? opt.window : 0;
    s.global_tokens = opt.profile ? std::max(0, T - w) : T;
    s.kept.assign(size_t(Hkv), s.global_tokens);
    if (opt.profile)
        for (int h = 0; h < Hkv; ++h) check(tca_cache_kept_positions(cache.get(), h, nullptr, 0, &s.kept[size_t(h)]));
    if (opt.compare_dense) {
        tca::Tensor td(ctx, TCA_F32, Hq, T, hd);
        tca::dense_prefill(ctx, tq, tk, tv, td);
        std::vector<float> dense(q.size());
        td.download(dense.data(), dense.size() * sizeof(float));
        compare_rows(o, dense, Hq, T, hd, w, s);
    }
    return o;
}

}  // namespace

void rms_norm(const float* x, int T, int dim, const std::vector<float>& weight, float eps, float* y) {
    for (int t = 0; t < T; ++t) {
        const float* r = x + size_t(t) * dim;
        double ss = 0;
        for (int i = 0; i < dim; ++i) ss += double(r[i]) * r[i];
        const float inv = float(1.0 / std::sqrt(ss / dim + double(eps)));
        for (int i = 0; i < dim; ++i) y[size_t(t) * dim + i] = r[i] * inv * weight[size_t(i)];
    }
}

void rope_to_heads(const float* y, int T, int heads, int hd, double theta, float* out, int pos0) {
    const int half = hd / 2;
    // Angles in double: at position 16383 float32 would already be off by ~1e-3 rad.
    std::vector<double> freq(static_cast<size_t>(half));
    for (int j = 0; j < half; ++j) freq[size_t(j)] = std::pow(theta, -2.0 * j / hd);
    std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
    for (int t = 0; t < T; ++t) {
        for (int j = 0; j < half; ++j) {
            const double a = double(pos0 + t) * freq[size_t(j)];
            cs[size_t(j)] = float(std::cos(a)), sn[size_t(j)] = float(std::sin(a));
        }
        for (int h = 0; h < heads; ++h) {
            const float* x = y + (size_t(t) * heads + h) * hd;
            float* o = out + (size_t(h) * T + t) * hd;
            for (int j = 0; j < half; ++j) {
                o[j] = x[j] * cs[size_t(j)] - x[j + half] * sn[size_t(j)];
                o[j + half] = x[j + half] * cs[size_t(j)] + x[j] * sn[size_t(j)];
            }
        }
    }
}

void run_layers(const Model& m, std::vector<float>& x, int T, int pos0, const LayerAttention& attention, int threads,
                const QkvSink& on_qkv, double* matmul_seconds, double* attention_seconds) {
    const Config& c = m.cfg;
    const int D = c.dim, Hq = c.n_heads, Hkv = c.n_kv_heads, hd = c.head_dim, F = c.ffn_dim;
    const size_t qn = size_t(T) * Hq * hd, kvn = size_t(T) * Hkv * hd;
    std::vector<float> n(size_t(T) * D), tmp(size_t(T) * std::max<size_t>(D, Hq * hd));
    std::vector<float> yq(qn), yk(kvn), yv(kvn), q(qn), k(kvn), v(kvn), att(qn);
    std::vector<float> a(size_t(T) * F), b(size_t(T) * F);
    double mm = 0, at = 0;
    for (int l = 0; l < c.n_layers; ++l) {
        const Layer& L = m.layers[size_t(l)];
        auto t0 = Clock::now();
        rms_norm(x.data(), T, D, L.attn_norm, c.norm_eps, n.data());
        matmul(n.data(), T, L.wq, yq.data(), threads);
        matmul(n.data(), T, L.wk, yk.data(), threads);
        matmul(n.data(), T, L.wv, yv.data(), threads);
        rope_to_heads(yq.data(), T, Hq, hd, c.rope_theta, q.data(), pos0);
        rope_to_heads(yk.data(), T, Hkv, hd, c.rope_theta, k.data(), pos0);
        tokens_to_heads(yv.data(), T, Hkv, hd, v.data());
        if (on_qkv) on_qkv(l, q, k, v);
        mm += since(t0);

        t0 = Clock::now();
        const std::vector<float> o = attention(l, q, k, v);
        at += since(t0);

        t0 = Clock::now();
        heads_to_tokens(o.data(), T, Hq, hd, att.data());
        matmul(att.data(), T, L.wo, tmp.data(), threads);
        for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
        rms_norm(x.data(), T, D, L.ffn_norm, c.norm_eps, n.data());
        matmul(n.data(), T, L.w1, a.data(), threads);
        matmul(n.data(), T, L.w3, b.data(), threads);
        for (size_t i = 0; i < a.size(); ++i) a[i] = a[i] / (1.f + std::exp(-a[i])) * b[i];  // silu(w1 x) * w3 x
        matmul(a.data(), T, L.w2, tmp.data(), threads);
        for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
        mm += since(t0);
    }
    if (matmul_seconds) *matmul_seconds += mm;
    if (attention_seconds) *attention_seconds += at;
}

std::vector<float> embed(const Model& m, const uint8_t* bytes, int T) {
    const int D = m.cfg.dim;
    std::vector<float> x(size_t(T) * D);
    for (int t = 0; t < T; ++t)
        std::copy(m.tok_emb.begin() + size_t(bytes[t]) * D, m.tok_emb.begin() + size_t(bytes[t] + 1) * D,
                  x.begin() + size_t(t) * D);
    return x;
}

std::vector<float> output_logits(const Model& m, const std::vector<float>& x, int T, int threads) {
    const Config& c = m.cfg;
    std::vector<float> n(size_t(T) * c.dim), logits(size_t(T) * c.vocab);
    rms_norm(x.data(), T, c.dim, m.norm, c.norm_eps, n.data());
    matmul(n.data(), T, m.output, logits.data(), threads);
    return logits;
}

void check_profile_shape(const Model& m, const tca::Profile* profile) {
    if (!profile) return;
    const Config& c = m.cfg;
    const auto ps = profile->shape();
    require(ps.layers == c.n_layers && ps.q_heads == c.n_heads && ps.kv_heads == c.n_kv_heads && ps.head_dim == c.head_dim,
            TCA_ERROR_SHAPE_MISMATCH,
            fmt::format("the profile is for {} layers, {} query / {} KV heads, head dim {}; the model has {}, {} / {}, {}",
                        ps.layers, ps.q_heads, ps.kv_heads, ps.head_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim));
}

WindowResult forward(const Model& m, tca::Context& ctx, const uint8_t* bytes, int T, const ForwardOptions& opt) {
    const Config& c = m.cfg;
    require(T >= 2, TCA_ERROR_INVALID_ARGUMENT, fmt::format("a window of {} bytes predicts nothing; need at least 2", T));
    check_profile_shape(m, opt.profile);
    WindowResult res;
    res.layers.resize(size_t(c.n_layers));
    std::vector<float> x = embed(m, bytes, T);
    run_layers(
        m, x, T, 0,
        [&](int l, const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v) {
            return attend(m, ctx, l, T, q, k, v, opt, res.layers[size_t(l)]);
        },
        opt.threads, opt.on_qkv, &res.matmul_seconds, &res.attention_seconds);

    auto t0 = Clock::now();
    std::vector<float> logits = output_logits(m, x, T, opt.threads);
    // -log2 softmax(logits[t])[bytes[t+1]], in double.
    res.position_bits.resize(size_t(T - 1));
    for (int t = 0; t + 1 < T; ++t) {
        const float* z = logits.data() + size_t(t) * c.vocab;
        const double mx = *std::max_element(z, z + c.vocab);
        double sum = 0;
        for (int j = 0; j < c.vocab; ++j) sum += std::exp(double(z[j]) - mx);
        const double bits = (std::log(sum) - (double(z[bytes[t + 1]]) - mx)) / std::log(2.0);
        res.position_bits[size_t(t)] = float(bits);
        res.bits += bits;
    }
    res.predicted = T - 1;
    res.matmul_seconds += since(t0);
    if (opt.keep_logits) res.logits = std::move(logits);
    return res;
}

}  // namespace tca::detail::lm
