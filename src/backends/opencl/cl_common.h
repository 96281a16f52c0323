// Private header of the OpenCL backend (src/backends/opencl/): errors, RAII handles, device queries
// and the list of devices. Only files of this folder include it.
#pragma once

#include <CL/cl.h>

#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "device/device.h"

namespace tca::detail::opencl {

// ---- errors (cl_errors.cpp) ------------------------------------------------------------------------

const char* cl_error_name(cl_int e);
bool is_memory_error(cl_int e);
// Memory errors are TCA_ERROR_OUT_OF_MEMORY; anything else `otherwise`.
[[noreturn]] void fail(cl_int e, const std::string& what, tca_status otherwise = TCA_ERROR_BACKEND);
void check(cl_int e, const char* what);
// Queries on handles the caller gave us: a driver's "invalid object" is the caller's bad argument.
void check_handle(cl_int e, const char* what);

// ---- small RAII holders ------------------------------------------------------------------------------

template <class T, cl_int(CL_API_CALL* Release)(T)>
class Handle {
public:
    Handle() = default;
    explicit Handle(T h) : h_(h) {}
    Handle(Handle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, nullptr);
        }
        return *this;
    }
    ~Handle() { reset(); }
    void reset() {
        if (h_) Release(h_);
        h_ = nullptr;
    }
    T get() const { return h_; }

private:
    T h_ = nullptr;
};

using ContextHandle = Handle<cl_context, clReleaseContext>;
using QueueHandle = Handle<cl_command_queue, clReleaseCommandQueue>;
using MemHandle = Handle<cl_mem, clReleaseMemObject>;
using ProgramHandle = Handle<cl_program, clReleaseProgram>;
using KernelHandle = Handle<cl_kernel, clReleaseKernel>;
using EventHandle = Handle<cl_event, clReleaseEvent>;

// ---- device queries ----------------------------------------------------------------------------------

template <class Get, class Obj, class Param>
std::string info_string(Get get, Obj obj, Param param) {
    size_t n = 0;
    if (get(obj, param, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
    std::string s(n, '\0');
    if (get(obj, param, n, s.data(), nullptr) != CL_SUCCESS) return {};
    while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
    return s;
}

template <class T>
T device_value(cl_device_id d, cl_device_info param, T fallback = T{}) {
    T v{};
    return clGetDeviceInfo(d, param, sizeof v, &v, nullptr) == CL_SUCCESS ? v : fallback;
}


// ---- devices (cl_runtime.cpp) ------------------------------------------------------------------------

bool has_extension(const std::string& extensions, const char* name);

struct Entry {
    DeviceInfo info;
    cl_platform_id platform = nullptr;
    cl_device_id device = nullptr;
    std::string platform_version;
};


// What the library knows of one device (its listing name given).
Entry make_entry(cl_platform_id p, cl_device_id d, const std::string& name);
// Every device of every platform, in a stable order ("opencl:N"); enumerated once.
const std::vector<Entry>& entries();

}  // namespace tca::detail::opencl
