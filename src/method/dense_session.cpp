// The dense baseline: the whole sequence stays in one K/V buffer; decode attends to all of it.
#include "core/checked.h"
#include <cstddef>
#include <utility>

#include "method/device_util.h"
#include "method/session.h"

namespace tca::detail::method {

namespace {

class DenseSession final : public AttentionSession {
public:
    DenseSession(Device& dev, AttnShape s, int capacity, DType dt) : AttentionSession(dev, s, dt) {
        require(capacity >= 1, TCA_ERROR_INVALID_ARGUMENT, "session capacity must be >= 1");
        k_ = alloc_tensor(dev, s.kv_heads, capacity, s.dim, dt);
        v_ = alloc_tensor(dev, s.kv_heads, capacity, s.dim, dt);
        acc_.bytes_per_token = int64_t(checked_product({2, s.dim, int64_t(dtype_size(dt))}, "K/V bytes per token"));
        acc_.global.assign(s.kv_heads, 0);
    }

    void prefill_on_device(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) override {
        check_call(q, k, v, o, false);
        const int P = q.tokens;
        require(acc_.tokens_seen == 0, TCA_ERROR_INVALID_ARGUMENT, "prefill: the session already holds a prompt (reset it first)");
        require(P <= k_.tokens, TCA_ERROR_INVALID_ARGUMENT, "prompt longer than the session's capacity");
        PrefillArgs a;
        a.q = q, a.k = k, a.v = v, a.o = o;
        dev().prefill(a);
        // Keep the prompt's K/V in the session's buffer for decode.
        GatherArgs g;
        g.src_k = k, g.src_v = v, g.dst_k = k_, g.dst_v = v_, g.uniform_count = P;
        dev().gather(g);
        acc_.tokens_seen = acc_.ring = P;
        prompt_ = P;
    }

    void decode_on_device(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) override {
        check_call(q, k, v, o, true);
        const int t = acc_.tokens_seen;
        require(t < k_.tokens, TCA_ERROR_INVALID_ARGUMENT, "decode past the session's capacity");
        GatherArgs g;  // append the new token's K/V at row t
        g.src_k = k, g.src_v = v, g.dst_k = row_view(k_, t), g.dst_v = row_view(v_, t), g.uniform_count = 1;
        dev().gather(g);
        DecodeArgs a;
        a.plan_heads = shape().plan_kv_heads;
        a.q = q, a.o = o, a.k1 = k_, a.v1 = v_, a.n1 = t + 1;
        dev().decode(a);
        if (step_trace_) trace_n1_.push_back(t + 1);  // the one step that may throw (host memory) comes before the commit
        acc_.tokens_seen = acc_.ring = t + 1;
    }

    const CacheAccount& account() override { return acc_; }
    int tokens_seen() const override { return acc_.tokens_seen; }
    std::function<int64_t()> kept_tokens_reader() override {
        return [] { return int64_t(-1); };
    }

    Mark mark() const override {
        Mark m;
        m.acc = acc_;
        m.steps = trace_n1_.size();
        return m;
    }
    void rewind(Mark m) noexcept override {
        acc_ = std::move(m.acc);
        trace_n1_.erase(trace_n1_.begin() + std::ptrdiff_t(m.steps), trace_n1_.end());
    }
    std::vector<int> device_global_lengths() override { return acc_.global; }

    AttentionTrace trace() override {
        AttentionTrace tr;
        tr.dense = true;
        tr.prompt = prompt_;
        tr.steps_recorded = step_trace_;
        tr.step_n1 = trace_n1_;
        tr.step_n2.assign(trace_n1_.size(), std::vector<int>(s_.kv_heads, 0));
        tr.g_positions.assign(s_.kv_heads, {});
        return tr;
    }

    CacheContents contents() override {
        CacheContents c;
        const int n = acc_.tokens_seen;
        for (int h = 0; h < s_.kv_heads; ++h) {
            c.positions.emplace_back(n);
            for (int j = 0; j < n; ++j) c.positions.back()[j] = j;
            c.k_rows.push_back(read_rows(dev(), k_, h, 0, n));
            c.v_rows.push_back(read_rows(dev(), v_, h, 0, n));
        }
        return c;
    }

private:
    Tensor k_, v_;
    CacheAccount acc_;
    std::vector<int> trace_n1_;
    int prompt_ = 0;
};

}  // namespace

std::unique_ptr<AttentionSession> make_dense_session(Device& dev, AttnShape shape, int capacity, DType kv_dtype) {
    return std::make_unique<DenseSession>(dev, shape, capacity, kv_dtype);
}

}  // namespace tca::detail::method
