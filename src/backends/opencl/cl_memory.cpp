// OpenCL backend: buffers, the caller's buffers (interop), internal scratch, kernel-argument views.
#include <algorithm>
#include <cstring>

#include "backends/opencl/cl_device.h"
#include "core/checked.h"

namespace tca::detail::opencl {

// ---- memory ----

Buffer OpenCLDevice::alloc(size_t bytes) {
    require(bytes <= info_.max_allocation, TCA_ERROR_OUT_OF_MEMORY,
            "opencl: allocation of " + std::to_string(bytes) + " bytes exceeds " + info_.name +
                "'s maximum allocation of " + std::to_string(info_.max_allocation) + " bytes");
    cl_int err = CL_SUCCESS;
    auto b = std::make_shared<ClBuffer>();
    b->mem = MemHandle(create_buffer(std::max<size_t>(bytes, 1), &err));
    if (err != CL_SUCCESS) fail(err, "clCreateBuffer of " + std::to_string(bytes) + " bytes");
    b->size = bytes;
    b->owner = this;
    return b;
}

void OpenCLDevice::write(const BufView& dst, const void* src, size_t bytes) {
    require(range_fits(dst.offset, bytes, dst.buf->size), TCA_ERROR_SHAPE_MISMATCH, "write past the end of a buffer");
    if (!bytes) return;
    ++counters_.waits;  // a blocking write: the host waits for the queue up to it
    check(clEnqueueWriteBuffer(queue_.get(), mem(dst), CL_TRUE, dst.offset, bytes, src, 0, nullptr, nullptr),
          "clEnqueueWriteBuffer");
}

// A non-blocking write from host staging this device owns: each chunk is reused once the write that
// last read it has completed (asked without blocking), so a steady stream of small updates (the
// prefill's budget vectors) settles on a fixed set of host chunks and never waits.
void OpenCLDevice::update(const BufView& dst, const void* src, size_t bytes) {
    require(range_fits(dst.offset, bytes, dst.buf->size), TCA_ERROR_SHAPE_MISMATCH, "update past the end of a buffer");
    staged_write(mem(dst), dst.offset, src, bytes);
}

cl_mem OpenCLDevice::table(ScratchSlot slot, const void* src, size_t bytes) {
    const cl_mem m = scratch(slot, bytes);
    staged_write(m, 0, src, bytes);
    return m;
}

void OpenCLDevice::staged_write(cl_mem dst, size_t offset, const void* src, size_t bytes) {
    if (!bytes) return;
    StagingChunk* chunk = nullptr;
    for (auto& c : staging_) {
        if (c.busy.get()) {
            cl_int st = CL_QUEUED;
            check(clGetEventInfo(c.busy.get(), CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof st, &st, nullptr),
                  "clGetEventInfo");
            if (st < 0) fail(st, "an earlier staged write");
            if (st != CL_COMPLETE) continue;
            c.busy.reset();
        }
        if (c.bytes.size() >= bytes && (!chunk || c.bytes.size() < chunk->bytes.size())) chunk = &c;
    }
    if (!chunk) {
        staging_.emplace_back();
        chunk = &staging_.back();
        chunk->bytes.resize(std::max<size_t>(bytes, 4096));
    }
    std::memcpy(chunk->bytes.data(), src, bytes);
    cl_event ev = nullptr;
    check(clEnqueueWriteBuffer(queue_.get(), dst, CL_FALSE, offset, bytes, chunk->bytes.data(), 0, nullptr, &ev),
          "clEnqueueWriteBuffer");
    chunk->busy = EventHandle(ev);
}
void OpenCLDevice::read(const BufView& src, void* dst, size_t bytes) {
    require(range_fits(src.offset, bytes, src.buf->size), TCA_ERROR_SHAPE_MISMATCH, "read past the end of a buffer");
    if (!bytes) return;
    ++counters_.readbacks;
    ++counters_.waits;
    check(clEnqueueReadBuffer(queue_.get(), mem(src), CL_TRUE, src.offset, bytes, dst, 0, nullptr, nullptr),
          "clEnqueueReadBuffer");
}
void OpenCLDevice::fill_zero(const BufView& dst, size_t bytes) {
    require(range_fits(dst.offset, bytes, dst.buf->size), TCA_ERROR_SHAPE_MISMATCH, "fill past the end of a buffer");
    const cl_uchar zero = 0;
    if (bytes)
        check(clEnqueueFillBuffer(queue_.get(), mem(dst), &zero, 1, dst.offset, bytes, 0, nullptr, nullptr),
              "clEnqueueFillBuffer");
}

// The caller's cl_mem as one of this device's buffers: same cl_context required; retained here and
// released (never freed) when the last view of it goes.
Buffer OpenCLDevice::wrap(cl_mem m) {
    cl_context owner = nullptr;
    check_handle(clGetMemObjectInfo(m, CL_MEM_CONTEXT, sizeof owner, &owner, nullptr), "clGetMemObjectInfo");
    require(owner == context_.get(), TCA_ERROR_INVALID_ARGUMENT,
            "opencl: the cl_mem belongs to another cl_context than this context's");
    cl_mem_object_type type = 0;
    check_handle(clGetMemObjectInfo(m, CL_MEM_TYPE, sizeof type, &type, nullptr), "clGetMemObjectInfo");
    require(type == CL_MEM_OBJECT_BUFFER, TCA_ERROR_INVALID_ARGUMENT, "opencl: the cl_mem is not a buffer");
    size_t bytes = 0;
    check_handle(clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof bytes, &bytes, nullptr), "clGetMemObjectInfo");
    check(clRetainMemObject(m), "clRetainMemObject");
    auto b = std::make_shared<ClBuffer>();
    b->mem = MemHandle(m);
    b->size = bytes;
    b->owner = this;
    return b;
}

cl_mem OpenCLDevice::mem(const BufView& v) const {
    auto* b = dynamic_cast<ClBuffer*>(v.buf.get());
    require(b && b->owner == this, TCA_ERROR_INVALID_ARGUMENT,
            "opencl: buffer does not belong to " + info_.name);
    return b->mem.get();
}
TensorArg OpenCLDevice::tensor(const Tensor& t) const {
    const auto es = cl_long(dtype_size(t.dtype));
    return {mem(t.data), cl_long(t.data.offset) / es, t.head_stride, t.token_stride};
}
// The tensor addressed in units of `ub` bytes (ub divides its offset and strides).
TensorArg OpenCLDevice::in_units(const Tensor& t, size_t ub) const {
    const auto es = cl_long(dtype_size(t.dtype)), u = cl_long(ub);
    return {mem(t.data), cl_long(t.data.offset) / u, t.head_stride * es / u, t.token_stride * es / u};
}
ViewArg OpenCLDevice::view(const BufView& v) const {
    if (!v) return {nullptr, 0};
    return {mem(v), cl_long(v.offset / 4)};
}


cl_mem OpenCLDevice::scratch(ScratchSlot slot, size_t bytes) {
    auto& s = scratch_[slot];
    if (s.bytes < bytes) {
        // A released buffer lives on until the queued commands using it have finished. The slot is
        // empty until the new one exists, so a failed allocation is retried, never a null buffer used.
        s.mem.reset();
        s.bytes = 0;
        cl_int err = CL_SUCCESS;
        s.mem = MemHandle(create_buffer(bytes, &err));
        if (err != CL_SUCCESS) fail(err, "scratch buffer of " + std::to_string(bytes) + " bytes");
        s.bytes = bytes;
    }
    return s.mem.get();
}

// Every device allocation: clCreateBuffer, or the failure a test injected (device/fault_injection.h).
cl_mem OpenCLDevice::create_buffer(size_t bytes, cl_int* err) {
    if (fault::inject(fault::Kind::alloc)) {
        *err = CL_MEM_OBJECT_ALLOCATION_FAILURE;
        return nullptr;
    }
    ++counters_.allocations;
    return clCreateBuffer(context_.get(), CL_MEM_READ_WRITE, bytes, nullptr, err);
}

}  // namespace tca::detail::opencl
