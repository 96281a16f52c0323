// The dense baseline: the whole sequence stays in one K/V buffer; decode attends to all of it.
#include "method/device_util.h"
#include "method/session.h"

namespace tca::method {

namespace {

class DenseSession final : public AttentionSession {
public:
    DenseSession(Device& dev, AttnShape s, int capacity, DType dt) : dev_(dev), s_(s) {
        require(capacity >= 1, TCA_ERROR_INVALID_ARGUMENT, "session capacity must be >= 1");
        k_ = alloc_tensor(dev, s.kv_heads, capacity, s.dim, dt);
        v_ = alloc_tensor(dev, s.kv_heads, capacity, s.dim, dt);
        q1_ = alloc_tensor(dev, s.q_heads, 1, s.dim);
        o1_ = alloc_tensor(dev, s.q_heads, 1, s.dim);
        acc_.bytes_per_token = 2 * int64_t(s.dim) * dtype_size(dt);
        acc_.global.assign(s.kv_heads, 0);
    }

    HostTensor prefill(const HostTensor& q, const HostTensor& k, const HostTensor& v) override {
        const int P = q.tokens;
        Tensor qd = upload_tensor(dev_, q), kd = upload_tensor(dev_, k, k_.dtype), vd = upload_tensor(dev_, v, k_.dtype);
        Tensor o = alloc_tensor(dev_, s_.q_heads, P, s_.dim);
        PrefillArgs a;
        a.q = qd, a.k = kd, a.v = vd, a.o = o;
        dev_.prefill(a);
        // Keep the prompt's K/V in the session's buffer for decode.
        GatherArgs g;
        g.src_k = kd, g.src_v = vd, g.dst_k = k_, g.dst_v = v_, g.uniform_count = P;
        dev_.gather(g);
        acc_.tokens_seen = acc_.ring = P;
        return download_tensor(dev_, o);
    }

    std::vector<float> decode(const float* q, const float* k, const float* v) override {
        const int t = acc_.tokens_seen;
        require(t < k_.tokens, TCA_ERROR_INVALID_ARGUMENT, "decode past the session's capacity");
        for (int h = 0; h < s_.kv_heads; ++h) {
            write_row(dev_, k_, h, t, k + size_t(h) * s_.dim);
            write_row(dev_, v_, h, t, v + size_t(h) * s_.dim);
        }
        dev_.write(q1_.data, q, size_t(s_.q_heads) * s_.dim * 4);
        DecodeArgs a;
        a.q = q1_, a.o = o1_, a.k1 = k_, a.v1 = v_, a.n1 = t + 1;
        dev_.decode(a);
        acc_.tokens_seen = acc_.ring = t + 1;
        trace_n1_.push_back(t + 1);
        return read_floats(dev_, o1_.data, size_t(s_.q_heads) * s_.dim);
    }

    const CacheAccount& account() const override { return acc_; }
    std::vector<int> device_global_lengths() override { return acc_.global; }

    AttentionTrace trace() override {
        AttentionTrace tr;
        tr.dense = true;
        tr.prompt = acc_.tokens_seen - int(trace_n1_.size());
        tr.step_n1 = trace_n1_;
        tr.step_n2.assign(trace_n1_.size(), std::vector<int>(s_.kv_heads, 0));
        tr.g_positions.assign(s_.kv_heads, {});
        return tr;
    }

private:
    Device& dev_;
    AttnShape s_;
    Tensor k_, v_, q1_, o1_;
    CacheAccount acc_;
    std::vector<int> trace_n1_;
};

}  // namespace

std::unique_ptr<AttentionSession> make_dense_session(Device& dev, AttnShape shape, int capacity, DType kv_dtype) {
    return std::make_unique<DenseSession>(dev, shape, capacity, kv_dtype);
}

}  // namespace tca::method
