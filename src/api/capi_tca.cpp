// The C ABI of the TCA method: parameters, profiles, calibration and the per-sequence cache.
// Each entry point validates handles, then hands over to src/method (which drives the device).
#include <algorithm>
#include <functional>
#include <memory>
#include <vector>

#include "api/capi_guard.h"
#include "api/dtypes.h"
#include "api/handles.h"
#include "api/struct_size.h"
#include "core/checked.h"
#include "io/atomic_file.h"
#include "method/batch.h"
#include "method/cache_pool.h"
#include "method/calibrate.h"
#include "method/chunked_session.h"
#include "method/profile.h"
#include "method/session.h"

using namespace tca::detail;

struct tca_profile {
    static constexpr uint32_t kMagic = 0x7ca0970f;
    uint32_t magic = kMagic;
    method::Profile p;
};

struct tca_cache_pool {
    static constexpr uint32_t kMagic = 0x7ca0900f;
    uint32_t magic = kMagic;
    tca_context* ctx = nullptr;
    std::shared_ptr<method::CachePool> pool;  // shared with the caches made in it
};

struct tca_cache {
    static constexpr uint32_t kMagic = 0x7ca0cace;
    uint32_t magic = kMagic;
    tca_context* ctx = nullptr;
    std::shared_ptr<method::CachePool> pool;  // null: memory of its own (declared before session: outlives it)
    // What create() was given, so reset() can start over with a fresh session.
    std::unique_ptr<method::Profile> profile;  // null: dense
    int layer = 0, max_tokens = 0;
    method::AttnShape shape;
    DType kv_dtype = DType::f32;
    int max_chunk = 0;  // > 0: chunked mode (tca_cache_options), the longest chunk a prefill takes
    std::unique_ptr<method::AttentionSession> session;

    void start() {
        Device& dev = pool ? static_cast<Device&>(*pool) : *ctx->device;
        // A pooled cache gives its ranges back first, so that a reset fits where the cache was.
        if (pool) session.reset();
        if (max_chunk > 0)
            session = profile ? method::make_chunked_tca_session(dev, shape, profile->params, profile->layer_p(layer),
                                                                 max_tokens, max_chunk, kv_dtype)
                              : method::make_chunked_dense_session(dev, shape, max_tokens, max_chunk, kv_dtype);
        else
            session = profile ? method::make_tca_session(dev, shape, profile->params, profile->layer_p(layer),
                                                         max_tokens, kv_dtype)
                              : method::make_dense_session(dev, shape, max_tokens, kv_dtype);
        session->set_step_trace(false);  // a library cache keeps no per-step history: host memory stays flat
    }
};

namespace {

const method::Profile& profile_of(const tca_profile* p) {
    require(p != nullptr && p->magic == tca_profile::kMagic, TCA_ERROR_INVALID_ARGUMENT, "invalid profile handle");
    return p->p;
}

tca_cache* cache_of(const tca_cache* c) {
    require(c != nullptr && c->magic == tca_cache::kMagic, TCA_ERROR_INVALID_ARGUMENT, "invalid cache handle");
    return const_cast<tca_cache*>(c);
}

method::TcaParams params_from(const tca_params* in) {
    method::TcaParams p;
    if (in) {
        // Fields past the caller's struct_size (none yet: every field is version 1) keep their defaults.
        tca_params defaults{};
        defaults.block = p.block, defaults.window = p.window, defaults.tau = p.tau, defaults.alpha = p.alpha;
        const tca_params r = api::read_struct(in, "params", defaults);
        p.block = r.block, p.window = r.window, p.tau = r.tau, p.alpha = r.alpha;
    }
    method::validate_params(p);
    return p;
}

method::HostTensor to_host(tca_context* ctx, const tca_tensor* t, const char* what) {
    const Tensor& x = check_tensor(ctx, t, what)->t;
    require(x.dtype == DType::f32, TCA_ERROR_INVALID_ARGUMENT, std::string(what) + ": calibration takes f32 tensors");
    method::HostTensor h(x.heads, x.tokens, x.dim);
    ctx->device->read(x.data, h.data.data(), h.data.size() * 4);
    return h;
}

}  // namespace

extern "C" {

TCA_API tca_status tca_params_init(tca_params* params) {
    return api::guarded([&] {
        const method::TcaParams d;
        tca_params out{};
        out.block = d.block, out.window = d.window, out.tau = d.tau, out.alpha = d.alpha;
        api::write_struct(params, out, "params");
    });
}

TCA_API tca_status tca_profile_load(const char* path, tca_profile** out) {
    return api::guarded([&] {
        require(path != nullptr && out != nullptr, TCA_ERROR_INVALID_ARGUMENT, "path or out is null");
        *out = nullptr;
        auto p = std::make_unique<tca_profile>();
        p->p = method::load_profile(path);
        *out = p.release();
    });
}

TCA_API tca_status tca_profile_save(const tca_profile* profile, const char* path) {
    return api::guarded([&] {
        require(path != nullptr, TCA_ERROR_INVALID_ARGUMENT, "path is null");
        const std::string text = method::profile_to_json(profile_of(profile));
        io::write_file_atomic(path, text.data(), text.size());
    });
}

TCA_API tca_status tca_profile_destroy(tca_profile* profile) {
    if (profile == nullptr) return TCA_OK;
    return api::guarded([&] {
        profile_of(profile);
        profile->magic = 0;
        delete profile;
    });
}

TCA_API tca_status tca_profile_shape(const tca_profile* profile, int* layers, int* q_heads, int* kv_heads,
                                     int* head_dim) {
    return api::guarded([&] {
        const auto& s = profile_of(profile).shape;
        if (layers) *layers = s.layers;
        if (q_heads) *q_heads = s.q_heads;
        if (kv_heads) *kv_heads = s.kv_heads;
        if (head_dim) *head_dim = s.head_dim;
    });
}

TCA_API tca_status tca_profile_keep_ratio(const tca_profile* profile, int layer, int kv_head, double* ratio) {
    return api::guarded([&] {
        const auto& p = profile_of(profile);
        require(ratio != nullptr, TCA_ERROR_INVALID_ARGUMENT, "ratio is null");
        require(layer >= 0 && layer < p.shape.layers && kv_head >= 0 && kv_head < p.shape.kv_heads,
                TCA_ERROR_INVALID_ARGUMENT, "layer or kv_head out of range");
        *ratio = p.head(layer, kv_head).keep_ratio;
    });
}

TCA_API tca_status tca_profile_params(const tca_profile* profile, tca_params* params) {
    return api::guarded([&] {
        const auto& p = profile_of(profile).params;
        api::known_bytes(params, "params");
        tca_params out{};
        out.block = p.block, out.window = p.window, out.tau = p.tau, out.alpha = p.alpha;
        api::write_struct(params, out, "params");
    });
}

TCA_API tca_status tca_profile_head_info(const tca_profile* profile, int layer, int kv_head, tca_profile_head* info) {
    return api::guarded([&] {
        const auto& p = profile_of(profile);
        api::known_bytes(info, "info");
        require(layer >= 0 && layer < p.shape.layers && kv_head >= 0 && kv_head < p.shape.kv_heads,
                TCA_ERROR_INVALID_ARGUMENT, "layer or kv_head out of range");
        const auto& h = p.head(layer, kv_head);
        tca_profile_head out{};
        out.candidate = h.candidate;
        out.mean_keep = method::mean_keep(p.keep_counts, h.p);
        out.covered_mass = h.covered_mass;
        out.kept_tokens = h.kept_tokens;
        out.global_tokens = h.global_tokens;
        out.keep_ratio = h.keep_ratio;
        api::write_struct(info, out, "info");
    });
}

TCA_API tca_status tca_profile_fixed(const tca_params* params, int layers, int q_heads, int kv_heads, int head_dim,
                                     double keep_ratio, tca_profile** out) {
    return api::guarded([&] {
        require(out != nullptr, TCA_ERROR_INVALID_ARGUMENT, "out is null");
        *out = nullptr;
        auto prof = std::make_unique<tca_profile>();
        prof->p = method::fixed_ratio_profile(params_from(params), method::ModelShape{layers, q_heads, kv_heads, head_dim},
                                              keep_ratio);
        *out = prof.release();
    });
}

TCA_API tca_status tca_profile_slice(const tca_profile* profile, int kv_head_begin, int kv_heads, tca_profile** out) {
    return api::guarded([&] {
        require(out != nullptr, TCA_ERROR_INVALID_ARGUMENT, "out is null");
        *out = nullptr;
        auto prof = std::make_unique<tca_profile>();
        prof->p = method::slice_kv_heads(profile_of(profile), kv_head_begin, kv_heads);
        *out = prof.release();
    });
}

TCA_API tca_status tca_calibrate(tca_context* ctx, const tca_params* params, int layers, const tca_tensor* const* q,
                                 const tca_tensor* const* k, tca_profile** out) {
    return api::guarded([&] {
        check_ctx(ctx);
        require(out != nullptr, TCA_ERROR_INVALID_ARGUMENT, "out is null");
        *out = nullptr;
        require(layers >= 1 && q != nullptr && k != nullptr, TCA_ERROR_INVALID_ARGUMENT,
                "calibration needs at least one layer of q and k");
        const method::TcaParams p = params_from(params);
        std::vector<method::HostTensor> qs, ks;
        for (int l = 0; l < layers; ++l) {
            qs.push_back(to_host(ctx, q[l], "q"));
            ks.push_back(to_host(ctx, k[l], "k"));
        }
        auto prof = std::make_unique<tca_profile>();
        prof->p = method::calibrate(*ctx->device, p, qs, ks);
        *out = prof.release();
    });
}

TCA_API tca_status tca_cache_create(tca_context* ctx, const tca_profile* profile, int layer, int q_heads, int kv_heads,
                                    int head_dim, int kv_dtype, int max_tokens, tca_cache** out) {
    return tca_cache_create_ex(ctx, profile, layer, q_heads, kv_heads, head_dim, kv_dtype, max_tokens, nullptr, out);
}

TCA_API tca_status tca_cache_options_init(tca_cache_options* options) {
    return api::guarded([&] {
        tca_cache_options d{};
        d.mode = TCA_CACHE_ONE_SHOT;
        api::write_struct(options, d, "options");
    });
}

TCA_API tca_status tca_cache_create_ex(tca_context* ctx, const tca_profile* profile, int layer, int q_heads,
                                       int kv_heads, int head_dim, int kv_dtype, int max_tokens,
                                       const tca_cache_options* options, tca_cache** out) {
    return api::guarded([&] {
        check_ctx(ctx);
        int max_chunk = 0;
        tca_cache_pool* pool = nullptr;
        if (options) {
            const tca_cache_options o = api::read_struct(options, "options");
            pool = o.pool;
            if (pool) {
                require(pool->magic == tca_cache_pool::kMagic, TCA_ERROR_INVALID_ARGUMENT, "options->pool: invalid pool handle");
                require(pool->ctx == ctx, TCA_ERROR_INVALID_ARGUMENT, "options->pool belongs to another context");
            }
            require(o.mode == TCA_CACHE_ONE_SHOT || o.mode == TCA_CACHE_CHUNKED, TCA_ERROR_INVALID_ARGUMENT,
                    "options->mode " + std::to_string(o.mode) + " unknown (TCA_CACHE_ONE_SHOT = 0, TCA_CACHE_CHUNKED = 1)");
            if (o.mode == TCA_CACHE_CHUNKED) {
                require(o.max_chunk > 0, TCA_ERROR_INVALID_ARGUMENT,
                        "options->max_chunk must be >= 1 for a chunked cache, got " + std::to_string(o.max_chunk));
                max_chunk = o.max_chunk;
            }
        }
        require(out != nullptr, TCA_ERROR_INVALID_ARGUMENT, "out is null");
        *out = nullptr;
        require(q_heads > 0 && kv_heads > 0 && head_dim > 0 && max_tokens > 0, TCA_ERROR_INVALID_ARGUMENT,
                "cache shape and max_tokens must be positive");
        require(q_heads % kv_heads == 0, TCA_ERROR_SHAPE_MISMATCH,
                std::to_string(q_heads) + " query heads are not a multiple of " + std::to_string(kv_heads) + " KV heads");
        const DType kv = api::dtype_from_api(kv_dtype, "kv_dtype");
        auto c = std::make_unique<tca_cache>();
        c->ctx = ctx;
        c->layer = layer, c->max_tokens = max_tokens;
        c->shape = method::AttnShape{q_heads, kv_heads, head_dim};
        c->kv_dtype = kv;
        c->max_chunk = max_chunk;
        if (pool) c->pool = pool->pool;
        if (profile) {
            const auto& p = profile_of(profile);
            method::check_profile_shape(p, q_heads, kv_heads, head_dim);
            require(layer >= 0 && layer < p.shape.layers, TCA_ERROR_INVALID_ARGUMENT,
                    "layer " + std::to_string(layer) + " outside the profile's " + std::to_string(p.shape.layers));
            c->profile = std::make_unique<method::Profile>(p);
            c->shape.plan_kv_heads = p.model_kv_heads;  // a head shard decodes as the whole model does
        }
        c->start();
        *out = c.release();
    });
}

TCA_API tca_status tca_cache_destroy(tca_cache* cache) {
    if (cache == nullptr) return TCA_OK;
    return api::guarded([&] {
        cache_of(cache);
        cache->magic = 0;
        delete cache;
    });
}

TCA_API tca_status tca_cache_reset(tca_cache* cache) {
    return api::guarded([&] { cache_of(cache)->start(); });
}

namespace {
// A pooled cache whose reset could not get its memory back has no session (tca_cache_reset failed).
tca_cache* live_cache(const tca_cache* cache) {
    tca_cache* c = cache_of(cache);
    require(c->session != nullptr, TCA_ERROR_OUT_OF_MEMORY,
            "the cache has no memory: its last reset did not fit its pool (reset it again or destroy it)");
    return c;
}

// Prefill and decode share their checks and their stats: the tensors must belong to the cache's
// context, and the call's stats report the global-store tokens kept (-1 for a dense cache).
void run_cache_call(tca_cache* cache, const tca_tensor* q, const tca_tensor* k, const tca_tensor* v, tca_tensor* o,
                    bool decode) {
    tca_cache* c = live_cache(cache);
    tca_context* ctx = c->ctx;
    if (decode) require(c->session->tokens_seen() > 0, TCA_ERROR_INVALID_ARGUMENT, "decode before prefill");
    const Tensor& tq = check_tensor(ctx, q, "q")->t;
    const Tensor& tk = check_tensor(ctx, k, "k")->t;
    const Tensor& tv = check_tensor(ctx, v, "v")->t;
    const Tensor& to = check_tensor(ctx, o, "o")->t;
    // q against every key the cache holds and this k (tca.h, "input range"), before anything changes.
    c->session->check_range(q->row_norm, k->row_norm, v->row_norm, decode ? "cache decode" : "cache prefill");
    ctx->begin_call();
    if (decode)
        c->session->decode_on_device(tq, tk, tv, to);
    else
        c->session->prefill_on_device(tq, tk, tv, to);
    c->session->admit(k->row_norm, v->row_norm);
    o->wrote_output(c->session->value_norm());
    ctx->end_call(c->session->kept_tokens_reader());
}
}  // namespace

TCA_API tca_status tca_cache_prefill(tca_cache* cache, const tca_tensor* q, const tca_tensor* k, const tca_tensor* v,
                                     tca_tensor* o) {
    return api::guarded([&] { run_cache_call(cache, q, k, v, o, false); });
}

TCA_API tca_status tca_cache_decode(tca_cache* cache, const tca_tensor* q, const tca_tensor* k, const tca_tensor* v,
                                    tca_tensor* o) {
    return api::guarded([&] { run_cache_call(cache, q, k, v, o, true); });
}

TCA_API tca_status tca_cache_size(const tca_cache* cache, uint64_t* bytes, uint64_t* dense_bytes, int* tokens) {
    return api::guarded([&] {
        const auto& acc = live_cache(cache)->session->account();
        size_t held = 0;
        for (size_t h = 0; h < acc.global.size(); ++h) held = checked_add(held, size_t(acc.tca_bytes(int(h))), "cache bytes");
        if (bytes) *bytes = held;
        if (dense_bytes) *dense_bytes = checked_mul(size_t(acc.dense_bytes()), acc.global.size(), "dense cache bytes");
        if (tokens) *tokens = acc.tokens_seen;
    });
}

TCA_API tca_status tca_cache_peak_size(const tca_cache* cache, uint64_t* bytes, uint64_t* dense_bytes) {
    return api::guarded([&] {
        const auto& acc = live_cache(cache)->session->account();
        const size_t heads = acc.global.size();
        size_t now = 0;
        for (size_t h = 0; h < heads; ++h) now = checked_add(now, size_t(acc.tca_bytes(int(h))), "cache bytes");
        const size_t peak = checked_mul(size_t(acc.peak_tokens), size_t(acc.bytes_per_token), "peak cache bytes");
        // Tokens only grow between resets, so a dense cache's peak is what it holds now.
        const size_t dense = checked_mul(size_t(acc.dense_bytes()), heads, "dense cache bytes");
        if (bytes) *bytes = std::max(now, peak);
        if (dense_bytes) *dense_bytes = dense;
    });
}

TCA_API tca_status tca_cache_kept_positions(const tca_cache* cache, int kv_head, int32_t* positions, int capacity,
                                            int* count) {
    return api::guarded([&] {
        tca_cache* c = live_cache(cache);
        require(count != nullptr, TCA_ERROR_INVALID_ARGUMENT, "count is null");
        require(kv_head >= 0 && kv_head < c->shape.kv_heads, TCA_ERROR_INVALID_ARGUMENT,
                "kv_head " + std::to_string(kv_head) + " outside 0.." + std::to_string(c->shape.kv_heads - 1));
        require(capacity >= 0 && (capacity == 0 || positions != nullptr), TCA_ERROR_INVALID_ARGUMENT,
                "positions is null or capacity negative");
        if (!c->profile) {  // dense: nothing is selected
            *count = 0;
            return;
        }
        // Outputs are written only once the read-back (which may fail) is done.
        const method::AttentionTrace tr = c->session->trace();
        static const std::vector<int> none;
        const auto& g = size_t(kv_head) < tr.g_positions.size() ? tr.g_positions[size_t(kv_head)] : none;
        *count = int(g.size());
        std::copy_n(g.begin(), std::min<size_t>(g.size(), size_t(capacity)), positions);
    });
}

namespace {
// Sequence i's rows [i * heads, (i + 1) * heads) of a batch tensor, as a tensor of its own.
Tensor rows_of(const Tensor& t, int i, int heads) {
    Tensor r = t;
    r.heads = heads;
    r.data.offset = checked_add(t.data.offset,
                                checked_product({int64_t(i), heads, t.head_stride, int64_t(dtype_size(t.dtype))}, "batch offset"),
                                "batch offset");
    return r;
}
}  // namespace

TCA_API tca_status tca_cache_decode_batch(tca_cache* const* caches, int n, const tca_tensor* q, const tca_tensor* k,
                                          const tca_tensor* v, tca_tensor* o) {
    return api::guarded([&] {
        require(caches != nullptr && n >= 1, TCA_ERROR_INVALID_ARGUMENT, "batched decode needs n >= 1 caches");
        std::vector<tca_cache*> cs;
        for (int i = 0; i < n; ++i) {
            require(caches[i] != nullptr, TCA_ERROR_INVALID_ARGUMENT, "caches[" + std::to_string(i) + "] is null");
            tca_cache* c = live_cache(caches[i]);
            for (int j = 0; j < i; ++j)
                require(cs[size_t(j)] != c, TCA_ERROR_INVALID_ARGUMENT,
                        "caches[" + std::to_string(i) + "] repeats caches[" + std::to_string(j) + "]");
            if (i > 0) {
                const tca_cache* c0 = cs[0];
                require(c->ctx == c0->ctx, TCA_ERROR_INVALID_ARGUMENT,
                        "caches[" + std::to_string(i) + "] belongs to another context than caches[0]");
                require(c->shape.q_heads == c0->shape.q_heads && c->shape.kv_heads == c0->shape.kv_heads &&
                            c->shape.dim == c0->shape.dim && c->kv_dtype == c0->kv_dtype,
                        TCA_ERROR_SHAPE_MISMATCH,
                        "caches[" + std::to_string(i) + "] has another layer shape or K/V dtype than caches[0]");
            }
            require(c->session->tokens_seen() > 0, TCA_ERROR_INVALID_ARGUMENT,
                    "caches[" + std::to_string(i) + "]: decode before prefill");
            cs.push_back(c);
        }
        tca_context* ctx = cs[0]->ctx;
        const method::AttnShape sh = cs[0]->shape;
        const Tensor& tq = check_tensor(ctx, q, "q")->t;
        const Tensor& tk = check_tensor(ctx, k, "k")->t;
        const Tensor& tv = check_tensor(ctx, v, "v")->t;
        const Tensor& to = check_tensor(ctx, o, "o")->t;
        const int64_t nq = int64_t(n) * sh.q_heads, nk = int64_t(n) * sh.kv_heads;
        auto shape_is = [](const Tensor& t, int64_t heads, int dim) { return t.heads == heads && t.tokens == 1 && t.dim == dim; };
        require(shape_is(tq, nq, sh.dim) && shape_is(to, nq, sh.dim), TCA_ERROR_SHAPE_MISMATCH,
                "batched decode: q and o must be [" + std::to_string(nq) + ", 1, " + std::to_string(sh.dim) +
                    "] (n * q_heads rows of one token)");
        require(shape_is(tk, nk, sh.dim) && shape_is(tv, nk, sh.dim), TCA_ERROR_SHAPE_MISMATCH,
                "batched decode: k and v must be [" + std::to_string(nk) + ", 1, " + std::to_string(sh.dim) +
                    "] (n * kv_heads rows of one token)");
        std::vector<method::AttentionSession*> ss;
        std::vector<Tensor> qs, ks, vs, os;
        for (int i = 0; i < n; ++i) {
            // Each cache's range check uses the batch tensors' bounds (their largest rows).
            cs[size_t(i)]->session->check_range(q->row_norm, k->row_norm, v->row_norm, "batched cache decode");
            ss.push_back(cs[size_t(i)]->session.get());
            qs.push_back(rows_of(tq, i, sh.q_heads)), os.push_back(rows_of(to, i, sh.q_heads));
            ks.push_back(rows_of(tk, i, sh.kv_heads)), vs.push_back(rows_of(tv, i, sh.kv_heads));
        }
        ctx->begin_call();
        method::BatchDecode::run(*ctx->device, ss, qs, ks, vs, os);
        double vmax = 0;
        std::vector<std::function<int64_t()>> kept;
        for (auto* x : ss) {
            x->admit(k->row_norm, v->row_norm);
            vmax = std::max(vmax, x->value_norm());
            kept.push_back(x->kept_tokens_reader());
        }
        o->wrote_output(vmax);
        ctx->end_call([kept] {
            int64_t total = -1;  // -1: every cache dense
            for (const auto& r : kept) {
                const int64_t g = r();
                if (g >= 0) total = (total < 0 ? 0 : total) + g;
            }
            return total;
        });
    });
}

TCA_API tca_status tca_cache_pool_create(tca_context* ctx, uint64_t bytes, tca_cache_pool** out) {
    return api::guarded([&] {
        check_ctx(ctx);
        require(out != nullptr, TCA_ERROR_INVALID_ARGUMENT, "out is null");
        *out = nullptr;
        require(bytes > 0, TCA_ERROR_INVALID_ARGUMENT, "a cache pool needs bytes > 0");
        auto p = std::make_unique<tca_cache_pool>();
        p->ctx = ctx;
        p->pool = std::make_shared<method::CachePool>(*ctx->device, bytes);
        *out = p.release();
    });
}

TCA_API tca_status tca_cache_pool_destroy(tca_cache_pool* pool) {
    if (pool == nullptr) return TCA_OK;
    return api::guarded([&] {
        require(pool->magic == tca_cache_pool::kMagic, TCA_ERROR_INVALID_ARGUMENT, "invalid cache pool handle");
        pool->magic = 0;
        delete pool;  // caches in it keep the memory until they are destroyed
    });
}

TCA_API tca_status tca_cache_pool_usage(const tca_cache_pool* pool, uint64_t* used_bytes, uint64_t* capacity_bytes) {
    return api::guarded([&] {
        require(pool != nullptr && pool->magic == tca_cache_pool::kMagic, TCA_ERROR_INVALID_ARGUMENT,
                "invalid cache pool handle");
        if (used_bytes) *used_bytes = pool->pool->used();
        if (capacity_bytes) *capacity_bytes = pool->pool->capacity();
    });
}

}  // extern "C"
