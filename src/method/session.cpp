// What both sessions share: shape checks and the host wrappers over the device-resident calls.
#include "method/device_util.h"
#include "method/session.h"

namespace tca::method {

void AttentionSession::check_call(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                                  bool one_token) const {
    const std::string w = one_token ? "decode" : "prefill";
    require(!one_token || q.tokens == 1, TCA_ERROR_SHAPE_MISMATCH, "decode takes one token per call, got " +
                                                                         std::to_string(q.tokens));
    require(q.heads == s_.q_heads && q.dim == s_.dim && o.heads == s_.q_heads && o.dim == s_.dim &&
                o.tokens == q.tokens,
            TCA_ERROR_SHAPE_MISMATCH, w + ": q/o do not match the session's " + std::to_string(s_.q_heads) +
                                          " query heads of dim " + std::to_string(s_.dim));
    require(k.heads == s_.kv_heads && v.heads == s_.kv_heads && k.dim == s_.dim && v.dim == s_.dim &&
                k.tokens == q.tokens && v.tokens == q.tokens,
            TCA_ERROR_SHAPE_MISMATCH, w + ": k/v do not match the session's " + std::to_string(s_.kv_heads) +
                                          " KV heads and q's " + std::to_string(q.tokens) + " tokens");
    require(k.dtype == kv_dtype_ && v.dtype == kv_dtype_, TCA_ERROR_INVALID_ARGUMENT,
            w + ": k/v must be " + dtype_name(kv_dtype_) + ", the session's K/V storage type");
}

HostTensor AttentionSession::prefill(const HostTensor& q, const HostTensor& k, const HostTensor& v) {
    // Query-shaped tensors split (if they must) at GQA-group boundaries, so no group straddles buffers.
    const int group = s_.q_heads / s_.kv_heads;
    const Tensor qd = upload_tensor(dev_, q, DType::f32, group), kd = upload_tensor(dev_, k, kv_dtype_),
                 vd = upload_tensor(dev_, v, kv_dtype_);
    const Tensor o = alloc_tensor(dev_, s_.q_heads, q.tokens, s_.dim, DType::f32, group);
    prefill_on_device(qd, kd, vd, o);
    return download_tensor(dev_, o);
}

std::vector<float> AttentionSession::decode(const float* q, const float* k, const float* v) {
    if (!step_[0].data) {
        step_[0] = alloc_tensor(dev_, s_.q_heads, 1, s_.dim);
        step_[1] = alloc_tensor(dev_, s_.kv_heads, 1, s_.dim, kv_dtype_);
        step_[2] = alloc_tensor(dev_, s_.kv_heads, 1, s_.dim, kv_dtype_);
        step_[3] = alloc_tensor(dev_, s_.q_heads, 1, s_.dim);
    }
    dev_.write(step_[0].data, q, size_t(s_.q_heads) * s_.dim * 4);
    for (int h = 0; h < s_.kv_heads; ++h) {
        write_row(dev_, Tensor{step_[1]}, h, 0, k + size_t(h) * s_.dim);
        write_row(dev_, Tensor{step_[2]}, h, 0, v + size_t(h) * s_.dim);
    }
    decode_on_device(step_[0], step_[1], step_[2], step_[3]);
    std::vector<float> o(size_t(s_.q_heads) * s_.dim);
    dev_.read(step_[3].data, o.data(), o.size() * 4);
    return o;
}

}  // namespace tca::method
