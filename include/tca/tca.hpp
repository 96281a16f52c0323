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
    struct Deleter {
        void operator()(tca_context* c) const { tca_context_destroy(c); }
    };
    std::unique_ptr<tca_context, Deleter> ctx_;
};

class Tensor {
public:
    Tensor(Context& ctx, tca_dtype dtype, int heads, int tokens, int dim) {
        tca_tensor* t = nullptr;
        check(tca_tensor_create(ctx.get(), dtype, heads, tokens, dim, &t));
        t_.reset(t);
    }
    tca_tensor* get() const { return t_.get(); }
    void upload(const void* host, size_t bytes) { check(tca_tensor_upload(t_.get(), host, bytes)); }
    void download(void* host, size_t bytes) const { check(tca_tensor_download(t_.get(), host, bytes)); }

private:
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

}  // namespace tca
