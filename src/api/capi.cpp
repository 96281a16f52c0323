// The C ABI: converts handles and catches every exception at the boundary, turning it into a
// status code plus a per-thread message.
#include <cstring>
#include <new>
#include <string>

#include "api/capi_guard.h"
#include "api/dtypes.h"
#include "api/handles.h"
#include "api/struct_size.h"
#include "core/checked.h"
#include "device/interop.h"
#include "device/registry.h"

using namespace tca::detail;

namespace {

using api::fail;
using api::guarded;

void copy_str(char* dst, size_t n, const std::string& s) {
    std::strncpy(dst, s.c_str(), n - 1);
    dst[n - 1] = '\0';
}

void fill_info(const DeviceInfo& d, tca_device_info* info) {
    api::known_bytes(info, "info");  // before any work: a bad struct_size fails the same way everywhere
    tca_device_info out{};
    copy_str(out.name, sizeof out.name, d.name);
    copy_str(out.api, sizeof out.api,
             d.api == Api::reference ? "reference" : d.api == Api::opencl ? "opencl" : "vulkan");
    copy_str(out.vendor, sizeof out.vendor, d.vendor);
    copy_str(out.device, sizeof out.device, d.device);
    copy_str(out.driver, sizeof out.driver, d.driver);
    out.type = d.type;
    out.global_memory = d.global_memory;
    out.max_allocation = d.max_allocation;
    out.fp16_storage = d.fp16_storage;
    out.fp16_arithmetic = d.fp16_arithmetic;
    out.subgroup_size = d.subgroup_size;
    out.subgroup_ops = d.subgroup_ops;
    api::write_struct(info, out, "info");
}

// Host data is exchanged as one contiguous block, so a strided (wrapped) tensor cannot take it.
bool contiguous(const Tensor& t) {
    return (t.tokens == 1 || t.token_stride == t.dim) && (t.heads == 1 || t.head_stride == int64_t(t.tokens) * t.dim);
}

}  // namespace

void tca_context::begin_call() {
    if (device->profiling()) device->take_timings();
}

void tca_context::end_call(int64_t kept_tokens) {
    end_call([kept_tokens] { return kept_tokens; });
}

void tca_context::end_call(std::function<int64_t()> kept_tokens) {
    last_stats = tca_call_stats{};
    last_stats.struct_size = sizeof(tca_call_stats);
    last_stats.kept_tokens = -1;
    kept_reader = std::move(kept_tokens);
    if (external)
        device->flush();
    else
        device->submit();
    if (!device->profiling()) return;
    for (const auto& t : device->take_timings()) {
        double* slot = nullptr;
        switch (stage_of(t.op)) {
            case Stage::score: slot = &last_stats.score_ms; break;
            case Stage::metric: slot = &last_stats.metric_ms; break;
            case Stage::sort: slot = &last_stats.sort_ms; break;
            case Stage::select: slot = &last_stats.select_ms; break;
            case Stage::attend: slot = &last_stats.attend_ms; break;
            case Stage::other: slot = &last_stats.other_ms; break;
        }
        *slot += t.ms;
        last_stats.total_ms += t.ms;
    }
}

namespace tca::detail {

tca_context* check_ctx(tca_context* ctx) {
    require(ctx != nullptr && ctx->magic == tca_context::kMagic, TCA_ERROR_INVALID_ARGUMENT, "invalid context handle");
    return ctx;
}

const tca_tensor* check_tensor(const tca_context* ctx, const tca_tensor* t, const char* what) {
    require(t != nullptr && t->magic == tca_tensor::kMagic, TCA_ERROR_INVALID_ARGUMENT,
            std::string(what) + ": invalid tensor handle");
    require(t->ctx == ctx, TCA_ERROR_INVALID_ARGUMENT, std::string(what) + ": tensor belongs to another context");
    return t;
}

}  // namespace tca::detail

extern "C" {

TCA_API int tca_version(void) { return TCA_VERSION; }
TCA_API const char* tca_version_string(void) { return TCA_VERSION_STRING; }
TCA_API const char* tca_last_error(void) { return api::last_error.c_str(); }

TCA_API const char* tca_status_name(int s) {
    switch (s) {
        case TCA_OK: return "TCA_OK";
        case TCA_ERROR_INVALID_ARGUMENT: return "TCA_ERROR_INVALID_ARGUMENT";
        case TCA_ERROR_SHAPE_MISMATCH: return "TCA_ERROR_SHAPE_MISMATCH";
        case TCA_ERROR_NONFINITE_INPUT: return "TCA_ERROR_NONFINITE_INPUT";
        case TCA_ERROR_OUT_OF_MEMORY: return "TCA_ERROR_OUT_OF_MEMORY";
        case TCA_ERROR_DEVICE_NOT_FOUND: return "TCA_ERROR_DEVICE_NOT_FOUND";
        case TCA_ERROR_KERNEL_BUILD: return "TCA_ERROR_KERNEL_BUILD";
        case TCA_ERROR_DEVICE_LOST: return "TCA_ERROR_DEVICE_LOST";
        case TCA_ERROR_BACKEND: return "TCA_ERROR_BACKEND";
        case TCA_ERROR_IO: return "TCA_ERROR_IO";
        case TCA_ERROR_UNSUPPORTED: return "TCA_ERROR_UNSUPPORTED";
        case TCA_ERROR_INTERNAL: return "TCA_ERROR_INTERNAL";
        case TCA_ERROR_OUT_OF_RANGE: return "TCA_ERROR_OUT_OF_RANGE";
    }
    return "TCA_ERROR_UNKNOWN";
}

TCA_API tca_status tca_device_count(int* count) {
    return guarded([&] {
        require(count != nullptr, TCA_ERROR_INVALID_ARGUMENT, "count is null");
        *count = static_cast<int>(list_devices().size());
    });
}

TCA_API tca_status tca_device_get_info(int index, tca_device_info* info) {
    return guarded([&] {
        const auto& all = list_devices();
        require(index >= 0 && index < static_cast<int>(all.size()), TCA_ERROR_INVALID_ARGUMENT,
                "device index " + std::to_string(index) + " out of range");
        fill_info(all[index], info);
    });
}

TCA_API tca_status tca_default_device_name(char* buffer, size_t size) {
    return guarded([&] {
        require(buffer != nullptr && size > 0, TCA_ERROR_INVALID_ARGUMENT, "buffer is null or empty");
        const std::string n = default_device_name();
        require(n.size() < size, TCA_ERROR_INVALID_ARGUMENT, "buffer too small for the device name");
        copy_str(buffer, size, n);
    });
}

TCA_API tca_status tca_build_has(const char* component, int* built) {
    return guarded([&] {
        require(component != nullptr, TCA_ERROR_INVALID_ARGUMENT, "component is null");
        require(built != nullptr, TCA_ERROR_INVALID_ARGUMENT, "built is null");
        *built = component_built(component) ? 1 : 0;
    });
}

TCA_API tca_status tca_context_create(const char* device_name, tca_context** out) {
    return guarded([&] {
        require(out != nullptr, TCA_ERROR_INVALID_ARGUMENT, "out is null");
        *out = nullptr;
        auto ctx = std::make_unique<tca_context>();
        ctx->device = open_device(device_name ? device_name : "");
        *out = ctx.release();
    });
}

TCA_API tca_status tca_context_destroy(tca_context* ctx) {
    if (ctx == nullptr) return TCA_OK;
    return guarded([&] {
        check_ctx(ctx);
        // Freed either way; a recording left open is the caller's mistake, reported after the fact.
        const bool was_recording = vulkan_recording_open(ctx->device->backend());
        ctx->magic = 0;
        delete ctx;
        require(!was_recording, TCA_ERROR_INVALID_ARGUMENT,
                "context destroyed with a recording into your command buffer still open: the context is freed, "
                "and that command buffer now references freed objects (do not submit it)");
    });
}

TCA_API tca_status tca_context_device_info(const tca_context* ctx, tca_device_info* info) {
    return guarded([&] { fill_info(check_ctx(const_cast<tca_context*>(ctx))->device->info(), info); });
}

TCA_API tca_status tca_context_set_profiling(tca_context* ctx, int on) {
    return guarded([&] { check_ctx(ctx)->device->set_profiling(on != 0); });
}

TCA_API tca_status tca_context_last_stats(const tca_context* ctx, tca_call_stats* stats) {
    return guarded([&] {
        tca_context* c = check_ctx(const_cast<tca_context*>(ctx));
        api::known_bytes(stats, "stats");
        if (c->kept_reader) {  // the last call's kept count, read once (the only wait of the stats without profiling)
            c->last_stats.kept_tokens = c->kept_reader();
            c->kept_reader = nullptr;
        }
        api::write_struct(stats, c->last_stats, "stats");
    });
}

TCA_API tca_status tca_context_counters(const tca_context* ctx, tca_counters* counters) {
    return guarded([&] {
        const tca_context* c = check_ctx(const_cast<tca_context*>(ctx));
        api::known_bytes(counters, "counters");
        const DeviceCounters d = c->device->counters();
        tca_counters out{};
        out.submits = d.submits, out.waits = d.waits, out.readbacks = d.readbacks, out.allocations = d.allocations;
        api::write_struct(counters, out, "counters");
    });
}

TCA_API tca_status tca_context_finish(tca_context* ctx) {
    return guarded([&] { check_ctx(ctx)->device->finish(); });
}

TCA_API tca_status tca_tensor_create(tca_context* ctx, int dtype, int heads, int tokens, int dim, tca_tensor** out) {
    return guarded([&] {
        check_ctx(ctx);
        require(out != nullptr, TCA_ERROR_INVALID_ARGUMENT, "out is null");
        *out = nullptr;
        const DType dt = api::dtype_from_api(dtype);
        const std::string shape =
            "[" + std::to_string(heads) + ", " + std::to_string(tokens) + ", " + std::to_string(dim) + "]";
        require(heads > 0 && tokens > 0 && dim > 0, TCA_ERROR_INVALID_ARGUMENT,
                "tensor shape " + shape + " is empty or negative");
        // Checked: (2^30, 2^30, 16) f32 is 2^66 bytes, which wraps to a 0-byte buffer in 64 bits.
        const std::string what = "tensor " + shape + " " + dtype_name(dt) + " bytes";
        (void)checked_product({heads, tokens, dim, int64_t(dtype_size(dt))}, what.c_str());
        const size_t head_bytes = checked_product({tokens, dim, int64_t(dtype_size(dt))}, what.c_str());
        // Allocated by heads: past the device's largest buffer the tensor is split between heads
        // (device/split_device.h). The GQA group it will meet is unknown here (align 0).
        auto t = std::make_unique<tca_tensor>();
        t->ctx = ctx;
        t->t = Tensor::contiguous(BufView{ctx->device->alloc_heads(size_t(heads), head_bytes, 0), 0}, dt, heads, tokens,
                                  dim);
        // Defined contents, so the range checks know a bound from the start (tca.h, "input range").
        ctx->device->fill_zero(t->t.data, t->t.data.buf->size);
        t->row_norm = 0, t->tracked = true;
        *out = t.release();
    });
}

TCA_API tca_status tca_tensor_destroy(tca_tensor* t) {
    if (t == nullptr) return TCA_OK;
    return guarded([&] {
        require(t->magic == tca_tensor::kMagic, TCA_ERROR_INVALID_ARGUMENT, "invalid tensor handle");
        t->magic = 0;
        delete t;
    });
}

TCA_API tca_status tca_tensor_shape(const tca_tensor* t, tca_dtype* dtype, int* heads, int* tokens, int* dim) {
    return guarded([&] {
        require(t != nullptr && t->magic == tca_tensor::kMagic, TCA_ERROR_INVALID_ARGUMENT, "invalid tensor handle");
        if (dtype) *dtype = api::dtype_to_api(t->t.dtype);
        if (heads) *heads = t->t.heads;
        if (tokens) *tokens = t->t.tokens;
        if (dim) *dim = t->t.dim;
    });
}

TCA_API tca_status tca_tensor_upload(tca_tensor* t, const void* host, size_t bytes) {
    return guarded([&] {
        require(t != nullptr && t->magic == tca_tensor::kMagic, TCA_ERROR_INVALID_ARGUMENT, "invalid tensor handle");
        require(host != nullptr, TCA_ERROR_INVALID_ARGUMENT, "host pointer is null");
        require(contiguous(t->t), TCA_ERROR_UNSUPPORTED, "upload: the tensor is strided; only contiguous tensors upload");
        require(bytes == t->t.span_bytes(), TCA_ERROR_SHAPE_MISMATCH,
                "upload of " + std::to_string(bytes) + " bytes into a tensor of " + std::to_string(t->t.span_bytes()));
        const double norm = check_finite_rows(t->t.dtype, host, bytes, t->t.dim, "upload");
        t->ctx->device->write(t->t.data, host, bytes);
        if (t->tracked) t->row_norm = norm;
    });
}

TCA_API tca_status tca_tensor_download(const tca_tensor* t, void* host, size_t bytes) {
    return guarded([&] {
        require(t != nullptr && t->magic == tca_tensor::kMagic, TCA_ERROR_INVALID_ARGUMENT, "invalid tensor handle");
        require(host != nullptr, TCA_ERROR_INVALID_ARGUMENT, "host pointer is null");
        require(contiguous(t->t), TCA_ERROR_UNSUPPORTED, "download: the tensor is strided; only contiguous tensors download");
        require(bytes == t->t.span_bytes(), TCA_ERROR_SHAPE_MISMATCH,
                "download of " + std::to_string(bytes) + " bytes from a tensor of " + std::to_string(t->t.span_bytes()));
        t->ctx->device->read(t->t.data, host, bytes);
    });
}

TCA_API tca_status tca_dense_prefill_chunk(tca_context* ctx, const tca_tensor* q, const tca_tensor* k,
                                           const tca_tensor* v, tca_tensor* o, int q_pos0, float scale) {
    return guarded([&] {
        check_ctx(ctx);
        PrefillArgs a;
        a.q = check_tensor(ctx, q, "q")->t;
        a.k = check_tensor(ctx, k, "k")->t;
        a.v = check_tensor(ctx, v, "v")->t;
        a.o = check_tensor(ctx, o, "o")->t;
        a.q_pos0 = q_pos0;
        a.scale = scale;
        check_attention_range("prefill", scale, a.q.dim, q->row_norm, k->row_norm, v->row_norm);
        ctx->begin_call();
        ctx->device->prefill(a);
        o->wrote_output(v->row_norm);
        ctx->end_call(-1);
    });
}

TCA_API tca_status tca_dense_prefill(tca_context* ctx, const tca_tensor* q, const tca_tensor* k, const tca_tensor* v,
                                     tca_tensor* o, float scale) {
    if (q && k && q->magic == tca_tensor::kMagic && k->magic == tca_tensor::kMagic && q->t.tokens != k->t.tokens)
        return fail(TCA_ERROR_SHAPE_MISMATCH, "prefill: q has " + std::to_string(q->t.tokens) + " tokens but k has " +
                                                  std::to_string(k->t.tokens));
    return tca_dense_prefill_chunk(ctx, q, k, v, o, 0, scale);
}

TCA_API tca_status tca_dense_decode(tca_context* ctx, const tca_tensor* q, const tca_tensor* k, const tca_tensor* v,
                                    int n_keys, tca_tensor* o, float scale) {
    return guarded([&] {
        check_ctx(ctx);
        DecodeArgs a;
        a.q = check_tensor(ctx, q, "q")->t;
        a.k1 = check_tensor(ctx, k, "k")->t;
        a.v1 = check_tensor(ctx, v, "v")->t;
        a.o = check_tensor(ctx, o, "o")->t;
        require(n_keys >= 1, TCA_ERROR_SHAPE_MISMATCH, "decode: n_keys must be >= 1");
        a.n1 = n_keys;
        a.scale = scale;
        check_attention_range("decode", scale, a.q.dim, q->row_norm, k->row_norm, v->row_norm);
        ctx->begin_call();
        ctx->device->decode(a);
        o->wrote_output(v->row_norm);
        ctx->end_call(-1);
    });
}

}  // extern "C"
