// Thin C++ layer over the C ABI: RAII handles and exceptions. It adds nothing else, so every
// behaviour is documented once, in tca.h.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tca/tca.h"

namespace tca {

class Exception : public std::runtime_error {
public:
    Exception(tca_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
    tca_status status() const { return status_; }

private:
    tca_status status_;
};

// Throws Exception with the thread's last error message when `s` is not TCA_OK.
inline void check(tca_status s) {
    if (s != TCA_OK) throw Exception(s, std::string(tca_status_name(s)) + ": " + tca_last_error());
}

inline std::vector<tca_device_info> devices() {
    int n = 0;
    check(tca_device_count(&n));
    std::vector<tca_device_info> out(n);
    for (int i = 0; i < n; ++i) {
        out[i].struct_size = sizeof(tca_device_info);
        check(tca_device_get_info(i, &out[i]));
    }
    return out;
}

class Context {
public:
    explicit Context(const std::string& device = "") {
        tca_context* c = nullptr;
        check(tca_context_create(device.c_str(), &c));
        ctx_.reset(c);
    }
    // Zero-copy interop: a context on your OpenCL objects or Vulkan handles (rules in tca.h).
    static Context opencl(struct _cl_context* context, struct _cl_device_id* device, struct _cl_command_queue* queue) {
        tca_context* c = nullptr;
        check(tca_context_create_opencl(context, device, queue, &c));
        return Context(c);
    }
    static Context vulkan(const tca_vulkan_handles& handles) {
        tca_context* c = nullptr;
        check(tca_context_create_vulkan(&handles, &c));
        return Context(c);
    }
    tca_context* get() const { return ctx_.get(); }
    tca_device_info info() const {
        tca_device_info i{};
        i.struct_size = sizeof i;
        check(tca_context_device_info(ctx_.get(), &i));
        return i;
    }
    void set_profiling(bool on) { check(tca_context_set_profiling(ctx_.get(), on ? 1 : 0)); }
    tca_call_stats last_stats() const {
        tca_call_stats s{};
        s.struct_size = sizeof s;
        check(tca_context_last_stats(ctx_.get(), &s));
        return s;
    }
    void finish() { check(tca_context_finish(ctx_.get())); }

private:
    explicit Context(tca_context* c) : ctx_(c) {}
    struct Deleter {
        void operator()(tca_context* c) const { tca_context_destroy(c); }
    };
    std::unique_ptr<tca_context, Deleter> ctx_;
};

struct TensorShape {
    tca_dtype dtype;
    int heads, tokens, dim;
};

// Zero-copy tensors keep the caller's buffer; destroying them never frees it (tca.h).
inline tca_tensor_desc tensor_desc(tca_dtype dtype, int heads, int tokens, int dim, int64_t head_stride = 0,
                                   int64_t token_stride = 0) {
    tca_tensor_desc d{};
    d.struct_size = sizeof d;
    d.dtype = dtype, d.heads = heads, d.tokens = tokens, d.dim = dim;
    d.head_stride = head_stride, d.token_stride = token_stride;
    return d;
}

class Tensor {
public:
    Tensor(Context& ctx, tca_dtype dtype, int heads, int tokens, int dim) {
        tca_tensor* t = nullptr;
        check(tca_tensor_create(ctx.get(), dtype, heads, tokens, dim, &t));
        t_.reset(t);
    }
    static Tensor wrap_opencl(Context& ctx, struct _cl_mem* buffer, size_t offset, const tca_tensor_desc& desc) {
        tca_tensor* t = nullptr;
        check(tca_tensor_wrap_opencl(ctx.get(), buffer, offset, &desc, &t));
        return Tensor(t);
    }
    static Tensor wrap_vulkan(Context& ctx, uint64_t buffer, uint64_t buffer_size, uint64_t offset,
                              const tca_tensor_desc& desc) {
        tca_tensor* t = nullptr;
        check(tca_tensor_wrap_vulkan(ctx.get(), buffer, buffer_size, offset, &desc, &t));
        return Tensor(t);
    }
    tca_tensor* get() const { return t_.get(); }
    TensorShape shape() const {
        TensorShape s{};
        check(tca_tensor_shape(t_.get(), &s.dtype, &s.heads, &s.tokens, &s.dim));
        return s;
    }
    void upload(const void* host, size_t bytes) { check(tca_tensor_upload(t_.get(), host, bytes)); }
    void download(void* host, size_t bytes) const { check(tca_tensor_download(t_.get(), host, bytes)); }

private:
    explicit Tensor(tca_tensor* t) : t_(t) {}
    struct Deleter {
        void operator()(tca_tensor* t) const { tca_tensor_destroy(t); }
    };
    std::unique_ptr<tca_tensor, Deleter> t_;
};

inline void dense_prefill(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o,
                          float scale = 0.f) {
    check(tca_dense_prefill(ctx.get(), q.get(), k.get(), v.get(), o.get(), scale));
}

inline void dense_prefill_chunk(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o,
                                int q_pos0, float scale = 0.f) {
    check(tca_dense_prefill_chunk(ctx.get(), q.get(), k.get(), v.get(), o.get(), q_pos0, scale));
}

inline void dense_decode(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int n_keys, Tensor& o,
                         float scale = 0.f) {
    check(tca_dense_decode(ctx.get(), q.get(), k.get(), v.get(), n_keys, o.get(), scale));
}

// The spec's defaults (tca_params_init).
inline tca_params default_params() {
    tca_params p{};
    p.struct_size = sizeof p;
    check(tca_params_init(&p));
    return p;
}

class Profile {
public:
    static Profile load(const std::string& path) {
        tca_profile* p = nullptr;
        check(tca_profile_load(path.c_str(), &p));
        return Profile(p);
    }
    // params null: defaults.
    static Profile fixed(const tca_params* params, int layers, int q_heads, int kv_heads, int head_dim, double keep_ratio) {
        tca_profile* p = nullptr;
        check(tca_profile_fixed(params, layers, q_heads, kv_heads, head_dim, keep_ratio, &p));
        return Profile(p);
    }
    // q[l], k[l]: layer l's calibration tensors; params null: defaults.
    static Profile calibrate(Context& ctx, const tca_params* params, const std::vector<const Tensor*>& q,
                             const std::vector<const Tensor*>& k) {
        if (q.size() != k.size())
            throw Exception(TCA_ERROR_INVALID_ARGUMENT, "TCA_ERROR_INVALID_ARGUMENT: calibrate: q and k layer counts differ");
        std::vector<const tca_tensor*> qs, ks;
        for (const Tensor* t : q) qs.push_back(t ? t->get() : nullptr);
        for (const Tensor* t : k) ks.push_back(t ? t->get() : nullptr);
        tca_profile* p = nullptr;
        check(tca_calibrate(ctx.get(), params, int(qs.size()), qs.data(), ks.data(), &p));
        return Profile(p);
    }
    const tca_profile* get() const { return p_.get(); }
    // KV heads [kv_head_begin, kv_head_begin + kv_heads) with their query heads: one device's shard.
    Profile slice(int kv_head_begin, int kv_heads) const {
        tca_profile* p = nullptr;
        check(tca_profile_slice(p_.get(), kv_head_begin, kv_heads, &p));
        return Profile(p);
    }
    void save(const std::string& path) const { check(tca_profile_save(p_.get(), path.c_str())); }
    struct Shape {
        int layers, q_heads, kv_heads, head_dim;
    };
    Shape shape() const {
        Shape s{};
        check(tca_profile_shape(p_.get(), &s.layers, &s.q_heads, &s.kv_heads, &s.head_dim));
        return s;
    }
    double keep_ratio(int layer, int kv_head) const {
        double r = 0;
        check(tca_profile_keep_ratio(p_.get(), layer, kv_head, &r));
        return r;
    }

private:
    explicit Profile(tca_profile* p) : p_(p) {}
    struct Deleter {
        void operator()(tca_profile* p) const { tca_profile_destroy(p); }
    };
    std::unique_ptr<tca_profile, Deleter> p_;
};

// A per-sequence KV cache of one layer; profile null: dense.
class Cache {
public:
    Cache(Context& ctx, const Profile* profile, int layer, int q_heads, int kv_heads, int head_dim, tca_dtype kv_dtype,
          int max_tokens) {
        tca_cache* c = nullptr;
        check(tca_cache_create(ctx.get(), profile ? profile->get() : nullptr, layer, q_heads, kv_heads, head_dim, kv_dtype,
                               max_tokens, &c));
        c_.reset(c);
    }
    // With options (tca_cache_create_ex), e.g. a chunked prompt: chunked(max_chunk).
    Cache(Context& ctx, const Profile* profile, int layer, int q_heads, int kv_heads, int head_dim, tca_dtype kv_dtype,
          int max_tokens, const tca_cache_options& options) {
        tca_cache* c = nullptr;
        check(tca_cache_create_ex(ctx.get(), profile ? profile->get() : nullptr, layer, q_heads, kv_heads, head_dim,
                                  kv_dtype, max_tokens, &options, &c));
        c_.reset(c);
    }
    static tca_cache_options chunked(int max_chunk) {
        tca_cache_options o{};
        o.struct_size = sizeof o;
        check(tca_cache_options_init(&o));
        o.mode = TCA_CACHE_CHUNKED;
        o.max_chunk = max_chunk;
        return o;
    }
    tca_cache* get() const { return c_.get(); }
    void reset() { check(tca_cache_reset(c_.get())); }
    void prefill(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o) {
        check(tca_cache_prefill(c_.get(), q.get(), k.get(), v.get(), o.get()));
    }
    void decode(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o) {
        check(tca_cache_decode(c_.get(), q.get(), k.get(), v.get(), o.get()));
    }
    struct Size {
        uint64_t bytes, dense_bytes;
        int tokens;
    };
    Size size() const {
        Size s{};
        check(tca_cache_size(c_.get(), &s.bytes, &s.dense_bytes, &s.tokens));
        return s;
    }
    // The most bytes held since create or reset (tca_cache_peak_size); tokens is 0.
    Size peak_size() const {
        Size s{};
        check(tca_cache_peak_size(c_.get(), &s.bytes, &s.dense_bytes));
        return s;
    }

private:
    struct Deleter {
        void operator()(tca_cache* c) const { tca_cache_destroy(c); }
    };
    std::unique_ptr<tca_cache, Deleter> c_;
};

}  // namespace tca
