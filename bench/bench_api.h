// Small RAII and transfer helpers over the public C API, for the benchmark only.
#pragma once

#include <fmt/core.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"
#include "tca/tca.h"

namespace tca::detail::bench {

// A failed API call; keeps the status so callers can tell "does not fit" from real failures. A
// tca::detail::Error, so the CLI reports it with its status like any other library failure.
struct ApiError : Error {
    tca_status status;
    ApiError(tca_status s, const std::string& what) : Error(s, what), status(s) {}
};

inline void check(tca_status s, const char* what) {
    if (s != TCA_OK) throw ApiError(s, fmt::format("{}: {} ({})", what, tca_last_error(), tca_status_name(s)));
}

struct ContextDeleter {
    void operator()(tca_context* c) const { tca_context_destroy(c); }
};
struct TensorDeleter {
    void operator()(tca_tensor* t) const { tca_tensor_destroy(t); }
};
struct ProfileDeleter {
    void operator()(tca_profile* p) const { tca_profile_destroy(p); }
};
struct CacheDeleter {
    void operator()(tca_cache* c) const { tca_cache_destroy(c); }
};
using Context = std::unique_ptr<tca_context, ContextDeleter>;
using TensorPtr = std::unique_ptr<tca_tensor, TensorDeleter>;
using ProfilePtr = std::unique_ptr<tca_profile, ProfileDeleter>;
using CachePtr = std::unique_ptr<tca_cache, CacheDeleter>;

// A host array [heads, tokens, dim], contiguous.
struct HostArray {
    int heads = 0, tokens = 0, dim = 0;
    std::vector<float> data;
    const float* row(int h, int t) const { return data.data() + (size_t(h) * tokens + t) * dim; }
};
// The inputs of one case: a synthetic workload made by tca_synth_workload.
struct Workload {
    HostArray q, k, v;
};
Workload synth_workload(const std::string& kind, int heads, int kv_heads, int tokens, int dim, uint64_t seed);
// Throws ApiError (the generator's message) unless `kind` names a synthetic kind.
void check_synth_kind(const std::string& kind);

Context open(const std::string& name);
// A device tensor filled from host floats (converted to fp16 when dt is TCA_F16).
TensorPtr upload(tca_context* ctx, tca_dtype dt, int h, int l, int d, const float* data);
TensorPtr output(tca_context* ctx, int h, int l, int d);
std::vector<float> download(const tca_tensor* t, size_t n);

}  // namespace tca::detail::bench
