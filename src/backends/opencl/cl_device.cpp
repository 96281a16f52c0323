// The OpenCL backend: construction, launches and their events, timings, test hooks and the entry
// points the registry and the interop API call. The class is declared in cl_device.h.
#include <algorithm>

#include "backends/opencl/cl_device.h"
#include "device/interop.h"

namespace tca::detail::opencl {

OpenCLDevice::OpenCLDevice(const Entry& e, const BackendOptions& options)
    : info_(e.info), device_(e.device), platform_version_(e.platform_version), cache_dir_(options.cache_dir),
      tuning_overrides_(options.tuning) {
    cl_int err = CL_SUCCESS;
    const cl_context_properties props[] = {CL_CONTEXT_PLATFORM, reinterpret_cast<cl_context_properties>(e.platform),
                                           0};
    context_ = ContextHandle(clCreateContext(props, 1, &device_, nullptr, nullptr, &err));
    check(err, "clCreateContext");
    queue_ = QueueHandle(clCreateCommandQueue(context_.get(), device_, CL_QUEUE_PROFILING_ENABLE, &err));
    check(err, "clCreateCommandQueue");
    setup();
}

OpenCLDevice::OpenCLDevice(const Entry& e, cl_context context, cl_command_queue queue, const BackendOptions& options)
    : info_(e.info), device_(e.device), platform_version_(e.platform_version), cache_dir_(options.cache_dir),
      tuning_overrides_(options.tuning) {
    check(clRetainContext(context), "clRetainContext");
    context_ = ContextHandle(context);
    check(clRetainCommandQueue(queue), "clRetainCommandQueue");
    queue_ = QueueHandle(queue);
    queue_profiling_ = device_value_of_queue(queue, CL_QUEUE_PROPERTIES) & CL_QUEUE_PROFILING_ENABLE;
    setup();
}

void OpenCLDevice::setup() {
    local_mem_ = device_value<cl_ulong>(device_, CL_DEVICE_LOCAL_MEM_SIZE, 16 * 1024);
    compute_units_ = std::max<cl_uint>(1, device_value<cl_uint>(device_, CL_DEVICE_MAX_COMPUTE_UNITS));
    max_wg_ = device_value<size_t>(device_, CL_DEVICE_MAX_WORK_GROUP_SIZE, 64);
    tuning_ = choose_tuning(info_, local_mem_, max_wg_, tuning_overrides_);
}

OpenCLDevice::~OpenCLDevice() {
    if (queue_.get()) clFinish(queue_.get());
    for (auto& p : pending_) release_pending(p);
}

// Timings need events with timestamps, which only a queue made with profiling has.
void OpenCLDevice::set_profiling(bool on) {
    require(!on || queue_profiling_, TCA_ERROR_UNSUPPORTED,
            "opencl: stage timings need a command queue created with CL_QUEUE_PROFILING_ENABLE");
    profiling_ = on;
}

std::vector<OpTiming> OpenCLDevice::take_timings() {
    finish();
    std::vector<OpTiming> out;
    for (auto& p : pending_) {
        cl_ulong t0 = 0, t1 = 0;
        check(clGetEventProfilingInfo(p.first, CL_PROFILING_COMMAND_START, sizeof t0, &t0, nullptr),
              "clGetEventProfilingInfo");
        check(clGetEventProfilingInfo(p.last, CL_PROFILING_COMMAND_END, sizeof t1, &t1, nullptr),
              "clGetEventProfilingInfo");
        out.push_back({p.op, t1 > t0 ? double(t1 - t0) * 1e-6 : 0.0});
        release_pending(p);
    }
    pending_.clear();
    return out;
}

void OpenCLDevice::flush() {
    cl_event ev = nullptr;
    check(clEnqueueMarkerWithWaitList(queue_.get(), 0, nullptr, &ev), "clEnqueueMarkerWithWaitList");
    last_event_ = EventHandle(ev);
    ++counters_.submits;
    check(clFlush(queue_.get()), "clFlush");
}

void OpenCLDevice::wait_for(const std::vector<cl_event>& events) {
    check(clEnqueueBarrierWithWaitList(queue_.get(), cl_uint(events.size()), events.data(), nullptr),
          "clEnqueueBarrierWithWaitList (the wait list)");
}

cl_event OpenCLDevice::last_event() {
    cl_event ev = last_event_.get();
    if (ev) check(clRetainEvent(ev), "clRetainEvent");
    return ev;
}

// A marker command: with profiling on, its event brackets work enqueued by others (CLBlast).
void OpenCLDevice::marker() {
    cl_event ev = nullptr;
    check(clEnqueueMarkerWithWaitList(queue_.get(), 0, nullptr, profiling_ && current_ ? &ev : nullptr),
          "clEnqueueMarkerWithWaitList");
    if (ev) record_event(ev);
}

void OpenCLDevice::record_event(cl_event ev) {
    if (!current_->first) {
        current_->first = current_->last = ev;
    } else {
        if (current_->last != current_->first) clReleaseEvent(current_->last);
        current_->last = ev;
    }
}

void OpenCLDevice::enqueue(cl_kernel k, Range global, Range local) {
    const bool any_local = local.n[0] == 0;
    for (cl_uint d = 0; d < global.dims; ++d) {
        if (global.n[d] == 0) return;  // nothing to do
        if (!any_local) global.n[d] = ceil_div(global.n[d], local.n[d]) * local.n[d];
    }
    cl_event ev = nullptr;
    const cl_int err = clEnqueueNDRangeKernel(queue_.get(), k, global.dims, nullptr, global.n,
                                              any_local ? nullptr : local.n, 0, nullptr,
                                              profiling_ && current_ ? &ev : nullptr);
    if (err != CL_SUCCESS) {
        char name[128] = "?";
        clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name - 1, name, nullptr);
        fail(err, std::string("launching kernel ") + name);
    }
    if (ev) record_event(ev);
}

void OpenCLDevice::release_pending(PendingTiming& p) {
    if (p.last && p.last != p.first) clReleaseEvent(p.last);
    if (p.first) clReleaseEvent(p.first);
    p.first = p.last = nullptr;
}

cl_command_queue_properties OpenCLDevice::device_value_of_queue(cl_command_queue q, cl_command_queue_info param) {
    cl_command_queue_properties v = 0;
    check(clGetCommandQueueInfo(q, param, sizeof v, &v, nullptr), "clGetCommandQueueInfo");
    return v;
}

void OpenCLDevice::release_scratch() {
    finish();  // enqueued kernels may use them
    for (auto& s : scratch_) s.mem.reset(), s.bytes = 0;
}

}  // namespace tca::detail::opencl

namespace tca::detail {

using opencl::OpenCLDevice;
using opencl::entries;

namespace {

OpenCLDevice& as_opencl(Device& dev) {
    auto* d = dynamic_cast<OpenCLDevice*>(&dev.backend());
    require(d != nullptr, TCA_ERROR_INVALID_ARGUMENT, dev.info().name + " is not an OpenCL device");
    return *d;
}

}  // namespace

std::vector<DeviceInfo> opencl_devices() {
    std::vector<DeviceInfo> out;
    try {
        for (const auto& e : entries()) out.push_back(e.info);
    } catch (...) {
        out.clear();
    }
    return out;
}

std::unique_ptr<Device> make_opencl_device(int index, const BackendOptions& options) {
    const auto& all = entries();
    require(index >= 0 && size_t(index) < all.size(), TCA_ERROR_DEVICE_NOT_FOUND,
            "no OpenCL device opencl:" + std::to_string(index) + " (" + std::to_string(all.size()) + " found)");
    return std::make_unique<OpenCLDevice>(all[size_t(index)], options);
}

std::unique_ptr<Device> make_opencl_device_external(void* context_ptr, void* device_ptr, void* queue_ptr,
                                                    const BackendOptions& options) {
    auto context = static_cast<cl_context>(context_ptr);
    auto device = static_cast<cl_device_id>(device_ptr);
    auto queue = static_cast<cl_command_queue>(queue_ptr);
    require(context && device && queue, TCA_ERROR_INVALID_ARGUMENT, "opencl: null cl_context, cl_device_id or cl_command_queue");
    // The three must fit together: the queue on this context and device, the device in the context.
    cl_context queue_context = nullptr;
    cl_device_id queue_device = nullptr;
    opencl::check_handle(clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof queue_context, &queue_context, nullptr),
          "clGetCommandQueueInfo(CL_QUEUE_CONTEXT)");
    opencl::check_handle(clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof queue_device, &queue_device, nullptr),
          "clGetCommandQueueInfo(CL_QUEUE_DEVICE)");
    require(queue_context == context, TCA_ERROR_INVALID_ARGUMENT, "opencl: the command queue belongs to another cl_context");
    require(queue_device == device, TCA_ERROR_INVALID_ARGUMENT, "opencl: the command queue belongs to another device");
    cl_command_queue_properties props = 0;
    opencl::check_handle(clGetCommandQueueInfo(queue, CL_QUEUE_PROPERTIES, sizeof props, &props, nullptr), "clGetCommandQueueInfo");
    require(!(props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE), TCA_ERROR_UNSUPPORTED,
            "opencl: the command queue is out-of-order; libtca needs an in-order queue");
    cl_platform_id platform = nullptr;
    opencl::check_handle(clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof platform, &platform, nullptr), "clGetDeviceInfo(CL_DEVICE_PLATFORM)");
    // Named like the listing when it is one of the listed devices, so tuning and caching match.
    std::string name = "opencl:external";
    for (const auto& e : entries())
        if (e.device == device) name = e.info.name;
    return std::make_unique<OpenCLDevice>(opencl::make_entry(platform, device, name), context, queue, options);
}

Buffer opencl_wrap_buffer(Device& dev, void* mem) {
    auto* d = dynamic_cast<OpenCLDevice*>(&dev);
    require(d != nullptr, TCA_ERROR_INVALID_ARGUMENT, dev.info().name + " is not an OpenCL context: cannot wrap a cl_mem");
    require(mem != nullptr, TCA_ERROR_INVALID_ARGUMENT, "opencl: null cl_mem");
    return d->wrap(static_cast<cl_mem>(mem));
}

void opencl_wait_for(Device& dev, uint32_t n, void* const* events) {
    auto* d = dynamic_cast<OpenCLDevice*>(&dev);
    require(d != nullptr, TCA_ERROR_INVALID_ARGUMENT, dev.info().name + " is not an OpenCL context: it takes no cl_event");
    require(n > 0 && events != nullptr, TCA_ERROR_INVALID_ARGUMENT, "opencl: an empty wait list (n must be > 0, events non-null)");
    std::vector<cl_event> list(n);
    for (uint32_t i = 0; i < n; ++i) {
        require(events[i] != nullptr, TCA_ERROR_INVALID_ARGUMENT, "opencl: null cl_event in the wait list");
        list[i] = static_cast<cl_event>(events[i]);
    }
    d->wait_for(list);
}

void* opencl_last_event(Device& dev) {
    auto* d = dynamic_cast<OpenCLDevice*>(&dev);
    require(d != nullptr, TCA_ERROR_INVALID_ARGUMENT, dev.info().name + " is not an OpenCL context: it has no cl_event");
    return d->last_event();
}

namespace opencl_testing {

ProgramCacheStats cache_stats(Device& dev) { return as_opencl(dev).cache_stats(); }
void build_source(Device& dev, const std::string& source, const std::string& options) {
    as_opencl(dev).build_for_test(source, options);
}
void release_scratch(Device& dev) { as_opencl(dev).release_scratch(); }
DecodeTuning set_decode_tuning(Device& dev, const DecodeTuning& t) { return as_opencl(dev).set_decode_tuning(t); }

}  // namespace opencl_testing

}  // namespace tca::detail
