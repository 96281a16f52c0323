// What both sessions share: shape checks, the input-range bookkeeping and the host wrappers over
// the device-resident calls.
#include <algorithm>
#include <iterator>
#include <utility>

#include "core/checked.h"
#include "core/range.h"
#include "method/device_util.h"
#include "method/session.h"

namespace tca::detail::method {

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

void AttentionSession::check_range(double q, double k, double v, const char* what) const {
    // Sessions use the default scale (PrefillArgs / DecodeArgs scale 0).
    check_attention_range(what, 0.f, s_.dim, q, norm_max(k_norm_, k), v);
}

void AttentionSession::admit(double k, double v) {
    k_norm_ = norm_max(k_norm_, k);
    v_norm_ = norm_max(v_norm_, v);
}

namespace {
// Row-norm bound of host rows as the session will store them: rounding to f16 may lengthen a row
// by up to 2^-11 of each element, to bf16 by up to 2^-8.
double stored_norm(const float* x, size_t rows, int dim, DType dt) {
    const double n = max_row_norm(x, rows, dim);
    return dt == DType::f16 ? n * (1 + 1e-3) : dt == DType::bf16 ? n * (1 + 4e-3) : n;
}
}  // namespace

HostTensor AttentionSession::prefill(const HostTensor& q, const HostTensor& k, const HostTensor& v) {
    const double kn = stored_norm(k.data.data(), k.data.size() / size_t(std::max(1, k.dim)), k.dim, kv_dtype_);
    const double vn = stored_norm(v.data.data(), v.data.size() / size_t(std::max(1, v.dim)), v.dim, kv_dtype_);
    check_range(max_row_norm(q.data.data(), q.data.size() / size_t(std::max(1, q.dim)), q.dim), kn, vn, "prefill");
    // Query-shaped tensors split (if they must) at GQA-group boundaries, so no group straddles buffers.
    const int group = s_.q_heads / s_.kv_heads;
    const Tensor qd = upload_tensor(dev_, q, DType::f32, group), kd = upload_tensor(dev_, k, kv_dtype_),
                 vd = upload_tensor(dev_, v, kv_dtype_);
    const Tensor o = alloc_tensor(dev_, s_.q_heads, q.tokens, s_.dim, DType::f32, group);
    Mark m = mark();
    prefill_on_device(qd, kd, vd, o);
    try {
        HostTensor out = download_tensor(dev_, o);
        admit(kn, vn);
        return out;
    } catch (...) {
        rewind(std::move(m));  // the result is lost: so is the call
        throw;
    }
}

std::vector<float> AttentionSession::decode(const float* q, const float* k, const float* v) {
    if (!step_[0].data) {  // all four or none: a failed allocation leaves none behind
        Tensor s[4] = {alloc_tensor(dev_, s_.q_heads, 1, s_.dim), alloc_tensor(dev_, s_.kv_heads, 1, s_.dim, kv_dtype_),
                       alloc_tensor(dev_, s_.kv_heads, 1, s_.dim, kv_dtype_), alloc_tensor(dev_, s_.q_heads, 1, s_.dim)};
        std::move(std::begin(s), std::end(s), std::begin(step_));
    }
    const size_t q_elems = checked_product({s_.q_heads, s_.dim}, "decode q elements");
    const double kn = stored_norm(k, size_t(s_.kv_heads), s_.dim, kv_dtype_);
    const double vn = stored_norm(v, size_t(s_.kv_heads), s_.dim, kv_dtype_);
    check_range(max_row_norm(q, size_t(s_.q_heads), s_.dim), kn, vn, "decode");
    dev_.write(step_[0].data, q, checked_mul(q_elems, 4, "decode q bytes"));
    for (int h = 0; h < s_.kv_heads; ++h) {
        write_row(dev_, Tensor{step_[1]}, h, 0, k + size_t(h) * s_.dim);
        write_row(dev_, Tensor{step_[2]}, h, 0, v + size_t(h) * s_.dim);
    }
    std::vector<float> o(q_elems);
    Mark m = mark();
    decode_on_device(step_[0], step_[1], step_[2], step_[3]);
    try {
        dev_.read(step_[3].data, o.data(), o.size() * 4);
    } catch (...) {
        rewind(std::move(m));  // the result is lost: so is the call
        throw;
    }
    admit(kn, vn);
    return o;
}

}  // namespace tca::detail::method
