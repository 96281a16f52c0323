// The C ABI of zero-copy interop: contexts on the caller's OpenCL / Vulkan objects and tensors on
// the caller's buffers. The rules (ownership, synchronisation) are documented in tca.h; the backends
// implement the devices (src/device/interop.h).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "api/capi_guard.h"
#include "api/dtypes.h"
#include "api/handles.h"
#include "api/struct_size.h"
#include "core/checked.h"
#include "device/interop.h"
#include "device/split_device.h"

using namespace tca::detail;

namespace {

// The context's device splits what the method allocates past the buffer limit, like any other
// context's; the caller's own buffers are single buffers and wrap as they are.
tca_context* new_context(std::unique_ptr<Device> dev, const BackendOptions& options) {
    auto ctx = std::make_unique<tca_context>();
    ctx->device = make_split_device(std::move(dev), options.max_buffer_bytes);
    ctx->external = true;
    return ctx.release();
}

// The tensor a descriptor describes, inside `buf` at byte `offset`; everything is checked against the
// buffer, since the caller's buffer may be any size.
Tensor described(const tca_tensor_desc* desc, Buffer buf, uint64_t offset) {
    const tca_tensor_desc dv = api::read_struct(desc, "desc");
    const tca_tensor_desc* d = &dv;
    const DType dt = api::dtype_from_api(d->dtype);
    require(d->heads > 0 && d->tokens > 0 && d->dim > 0, TCA_ERROR_INVALID_ARGUMENT,
            "tensor shape [" + std::to_string(d->heads) + ", " + std::to_string(d->tokens) + ", " +
                std::to_string(d->dim) + "] is empty or negative");
    Tensor t = d->head_stride == 0 && d->token_stride == 0
                   ? Tensor::contiguous(BufView{}, dt, d->heads, d->tokens, d->dim)
                   : Tensor{BufView{}, dt, d->heads, d->tokens, d->dim, d->head_stride, d->token_stride};
    require(t.head_stride >= 0 && t.token_stride >= 0, TCA_ERROR_INVALID_ARGUMENT, "negative stride");
    // Rows must not overlap: taken from the smaller stride up, each axis must step past everything the
    // smaller ones span (holds for [heads, tokens, dim] and [tokens, heads, dim] layouts alike). The
    // span is summed with overflow checks, so absurd strides are an error rather than a wrap-around.
    std::vector<std::pair<int64_t, int>> axes;  // (stride, count) of the axes that do step
    if (t.tokens > 1) axes.push_back({t.token_stride, t.tokens});
    if (t.heads > 1) axes.push_back({t.head_stride, t.heads});
    std::sort(axes.begin(), axes.end());
    int64_t extent = t.dim, step = 0;
    for (const auto& [stride, n] : axes) {
        require(stride >= extent, TCA_ERROR_INVALID_ARGUMENT,
                "strides (head " + std::to_string(d->head_stride) + ", token " + std::to_string(d->token_stride) +
                    ") make rows of " + std::to_string(d->dim) + " elements overlap");
        require(!__builtin_mul_overflow(stride, int64_t(n - 1), &step) && !__builtin_add_overflow(extent, step, &extent) &&
                    extent <= (int64_t(1) << 56),
                TCA_ERROR_SHAPE_MISMATCH, "the tensor spans more memory than any buffer holds");
    }
    require(offset % dtype_size(dt) == 0, TCA_ERROR_INVALID_ARGUMENT,
            "offset " + std::to_string(offset) + " is not a multiple of the element size");
    require(offset <= buf->size && t.span_bytes() <= buf->size - offset, TCA_ERROR_SHAPE_MISMATCH,
            "the tensor (" + std::to_string(t.span_bytes()) + " bytes from offset " + std::to_string(offset) +
                ") runs past the end of the " + std::to_string(buf->size) + "-byte buffer");
    t.data = BufView{std::move(buf), size_t(offset)};
    return t;
}

tca_tensor* new_tensor(tca_context* ctx, Tensor t) {
    auto out = std::make_unique<tca_tensor>();
    out->ctx = ctx;
    out->t = std::move(t);
    return out.release();
}

}  // namespace

extern "C" {

TCA_API tca_status tca_context_create_opencl(struct _cl_context* context, struct _cl_device_id* device,
                                             struct _cl_command_queue* queue, tca_context** out) {
    return api::guarded([&] {
        require(out != nullptr, TCA_ERROR_INVALID_ARGUMENT, "out is null");
        *out = nullptr;
        const BackendOptions options = BackendOptions::from_environment();
        *out = new_context(make_opencl_device_external(context, device, queue, options), options);
    });
}

TCA_API tca_status tca_context_create_vulkan(const tca_vulkan_handles* handles, tca_context** out) {
    return api::guarded([&] {
        require(out != nullptr, TCA_ERROR_INVALID_ARGUMENT, "out is null");
        *out = nullptr;
        const tca_vulkan_handles hv = api::read_struct(handles, "handles");
        const tca_vulkan_handles* h = &hv;
        require((h->enabled_features & ~TCA_VULKAN_FEATURE_STORAGE_BUFFER_16BIT) == 0, TCA_ERROR_INVALID_ARGUMENT,
                "unknown bits in enabled_features");
        VulkanExternal ext;
        ext.instance = h->instance, ext.physical_device = h->physical_device, ext.device = h->device;
        ext.queue = h->queue, ext.queue_family = h->queue_family, ext.api_version = h->api_version;
        ext.storage_buffer_16bit = h->enabled_features & TCA_VULKAN_FEATURE_STORAGE_BUFFER_16BIT;
        ext.shader_float16 = h->enabled_features & TCA_VULKAN_FEATURE_SHADER_FLOAT16;
        const BackendOptions options = BackendOptions::from_environment();
        *out = new_context(make_vulkan_device_external(ext, options), options);
    });
}

TCA_API tca_status tca_tensor_wrap_opencl(tca_context* ctx, struct _cl_mem* buffer, size_t offset,
                                          const tca_tensor_desc* desc, tca_tensor** out) {
    return api::guarded([&] {
        check_ctx(ctx);
        require(out != nullptr, TCA_ERROR_INVALID_ARGUMENT, "out is null");
        *out = nullptr;
        require(desc != nullptr, TCA_ERROR_INVALID_ARGUMENT, "desc is null");
        *out = new_tensor(ctx, described(desc, opencl_wrap_buffer(ctx->device->backend(), buffer), offset));
    });
}

TCA_API tca_status tca_context_opencl_wait_for(tca_context* ctx, uint32_t n, struct _cl_event* const* events) {
    return api::guarded([&] {
        check_ctx(ctx);
        opencl_wait_for(ctx->device->backend(), n, reinterpret_cast<void* const*>(events));
    });
}

TCA_API tca_status tca_context_opencl_last_event(tca_context* ctx, struct _cl_event** event) {
    return api::guarded([&] {
        check_ctx(ctx);
        require(event != nullptr, TCA_ERROR_INVALID_ARGUMENT, "event is null");
        *event = static_cast<struct _cl_event*>(opencl_last_event(ctx->device->backend()));
    });
}

TCA_API tca_status tca_tensor_wrap_vulkan(tca_context* ctx, uint64_t buffer, uint64_t buffer_size, uint64_t offset,
                                          const tca_tensor_desc* desc, tca_tensor** out) {
    return api::guarded([&] {
        check_ctx(ctx);
        require(out != nullptr, TCA_ERROR_INVALID_ARGUMENT, "out is null");
        *out = nullptr;
        require(desc != nullptr, TCA_ERROR_INVALID_ARGUMENT, "desc is null");
        *out = new_tensor(ctx, described(desc, vulkan_wrap_buffer(ctx->device->backend(), buffer, buffer_size), offset));
    });
}

TCA_API tca_status tca_context_vulkan_begin_recording(tca_context* ctx, struct VkCommandBuffer_T* command_buffer) {
    return api::guarded([&] {
        check_ctx(ctx);
        vulkan_begin_recording(ctx->device->backend(), command_buffer);
    });
}

TCA_API tca_status tca_context_vulkan_end_recording(tca_context* ctx, uint64_t* ticket) {
    return api::guarded([&] {
        check_ctx(ctx);
        require(ticket != nullptr, TCA_ERROR_INVALID_ARGUMENT, "ticket is null");
        *ticket = vulkan_end_recording(ctx->device->backend());
    });
}

TCA_API tca_status tca_context_vulkan_release(tca_context* ctx, uint64_t ticket) {
    return api::guarded([&] {
        check_ctx(ctx);
        vulkan_release_recording(ctx->device->backend(), ticket);
    });
}

}  // extern "C"
