#include "lm/generate.h"

#include <algorithm>

#include <fmt/core.h>

#include "core/checked.h"
#include "core/error.h"
#include "lm/forward.h"

namespace tca::detail::lm {

Generator::Generator(const Model& m, tca::Context& ctx, int max_tokens, const GenerateOptions& opt)
    : m_(m), ctx_(ctx), opt_(opt), max_tokens_(max_tokens) {
    require(max_tokens >= 1, TCA_ERROR_INVALID_ARGUMENT, "generation: max_tokens must be >= 1");
    require(opt.chunk >= 0, TCA_ERROR_INVALID_ARGUMENT, "generation: the chunk length must be >= 0");
    check_profile_shape(m, opt.profile);
    const Config& c = m.cfg;
    for (int l = 0; l < c.n_layers; ++l) {
        if (opt.chunk > 0)
            caches_.push_back(std::make_unique<tca::Cache>(ctx, opt.profile, l, c.n_heads, c.n_kv_heads, c.head_dim,
                                                           TCA_F32, max_tokens, tca::Cache::chunked(opt.chunk)));
        else
            caches_.push_back(std::make_unique<tca::Cache>(ctx, opt.profile, l, c.n_heads, c.n_kv_heads, c.head_dim,
                                                           TCA_F32, max_tokens));
    }
}

std::vector<float> Generator::attend(int layer, const std::vector<float>& q, const std::vector<float>& k,
                                     const std::vector<float>& v, int T, bool prompt) {
    const Config& c = m_.cfg;
    const int Hq = c.n_heads, Hkv = c.n_kv_heads, hd = c.head_dim;
    tca::Tensor tq(ctx_, TCA_F32, Hq, T, hd), tk(ctx_, TCA_F32, Hkv, T, hd), tv(ctx_, TCA_F32, Hkv, T, hd);
    tca::Tensor to(ctx_, TCA_F32, Hq, T, hd);
    tq.upload(q.data(), q.size() * sizeof(float));
    tk.upload(k.data(), k.size() * sizeof(float));
    tv.upload(v.data(), v.size() * sizeof(float));
    if (prompt) caches_[size_t(layer)]->prefill(tq, tk, tv, to);
    else caches_[size_t(layer)]->decode(tq, tk, tv, to);
    std::vector<float> o(q.size());
    to.download(o.data(), o.size() * sizeof(float));
    return o;
}

std::vector<float> Generator::prefill(const uint8_t* bytes, int n) {
    require(pos_ == 0, TCA_ERROR_INVALID_ARGUMENT, "generation: the prompt was given already");
    require(n >= 1 && n <= max_tokens_, TCA_ERROR_INVALID_ARGUMENT,
            fmt::format("generation: a prompt of {} bytes (1 .. {} fit the caches)", n, max_tokens_));
    const int step = opt_.chunk > 0 ? opt_.chunk : n;
    std::vector<float> x;
    for (int s = 0; s < n; s += step) {
        const int len = std::min(step, n - s);
        x = embed(m_, bytes + s, len);
        run_layers(
            m_, x, len, s,
            [&](int l, const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v) {
                return attend(l, q, k, v, len, true);
            },
            opt_.threads);
    }
    pos_ = n;
    // Only the last position's logits are needed: the output head over its residual row alone.
    const size_t D = size_t(m_.cfg.dim);
    std::vector<float> last(x.end() - std::ptrdiff_t(D), x.end());
    return output_logits(m_, last, 1, opt_.threads);
}

std::vector<float> Generator::step(uint8_t byte) {
    require(pos_ >= 1, TCA_ERROR_INVALID_ARGUMENT, "generation: a step before the prompt");
    require(pos_ < max_tokens_, TCA_ERROR_INVALID_ARGUMENT,
            fmt::format("generation: position {} is past the caches' {} tokens", pos_, max_tokens_));
    std::vector<float> x = embed(m_, &byte, 1);
    run_layers(
        m_, x, 1, pos_,
        [&](int l, const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v) {
            return attend(l, q, k, v, 1, false);
        },
        opt_.threads);
    ++pos_;
    return output_logits(m_, x, 1, opt_.threads);
}

uint8_t greedy_byte(const std::vector<float>& logits) {
    size_t best = 0;
    for (size_t j = 1; j < logits.size(); ++j)
        if (logits[j] > logits[best]) best = j;
    return uint8_t(best);
}

std::vector<uint8_t> generate_greedy(const Model& m, tca::Context& ctx, const std::vector<uint8_t>& prompt, int max_bytes,
                                     const GenerateOptions& opt) {
    return generate_turns(m, ctx, prompt, {}, max_bytes, opt);
}

std::vector<uint8_t> generate_turns(const Model& m, tca::Context& ctx, const std::vector<uint8_t>& prompt,
                                    const std::vector<std::vector<uint8_t>>& turns, int max_bytes,
                                    const GenerateOptions& opt) {
    require(!prompt.empty(), TCA_ERROR_INVALID_ARGUMENT, "generation: the prompt is empty");
    require(max_bytes >= 0, TCA_ERROR_INVALID_ARGUMENT, "generation: max_bytes must be >= 0");
    // Every length is checked before the caches are made: a failure costs no device work.
    uint64_t total = uint64_t(prompt.size());
    for (const std::vector<uint8_t>& t : turns) {
        require(!t.empty(), TCA_ERROR_INVALID_ARGUMENT, "generation: a turn is empty");
        total = checked_add(total, uint64_t(t.size()), "prompt + turns");
    }
    total = checked_add(total, checked_mul(uint64_t(max_bytes), uint64_t(turns.size() + 1), "generated bytes"),
                        "prompt + turns + generated bytes");
    Generator g(m, ctx, checked_narrow<int>(total, "prompt + turns + generated bytes"), opt);
    std::vector<uint8_t> out;
    if (max_bytes == 0) return out;
    out.reserve(size_t(max_bytes) * (turns.size() + 1));
    std::vector<float> logits = g.prefill(prompt.data(), checked_narrow<int>(prompt.size(), "prompt bytes"));
    for (size_t turn = 0; turn <= turns.size(); ++turn) {
        if (turn > 0) {
            // The last generated byte, then the next turn, go in one decode step per byte: a cache
            // that has already compressed its prompt sees the new question only now, as a chat
            // runtime's would (the spec's decode rule, not a second prefill).
            logits = g.step(out.back());
            for (uint8_t b : turns[turn - 1]) logits = g.step(b);
        }
        for (int i = 0; i < max_bytes; ++i) {
            out.push_back(greedy_byte(logits));
            if (i + 1 < max_bytes) logits = g.step(out.back());
        }
    }
    return out;
}

}  // namespace tca::detail::lm
