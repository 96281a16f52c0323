// OpenCL backend: error names and statuses.
#include "backends/opencl/cl_common.h"

namespace tca::detail::opencl {

const char* cl_error_name(cl_int e) {
    switch (e) {
#define TCA_CL_ERR(x) \
    case x: return #x;
        TCA_CL_ERR(CL_DEVICE_NOT_FOUND)
        TCA_CL_ERR(CL_DEVICE_NOT_AVAILABLE)
        TCA_CL_ERR(CL_COMPILER_NOT_AVAILABLE)
        TCA_CL_ERR(CL_MEM_OBJECT_ALLOCATION_FAILURE)
        TCA_CL_ERR(CL_OUT_OF_RESOURCES)
        TCA_CL_ERR(CL_OUT_OF_HOST_MEMORY)
        TCA_CL_ERR(CL_PROFILING_INFO_NOT_AVAILABLE)
        TCA_CL_ERR(CL_BUILD_PROGRAM_FAILURE)
        TCA_CL_ERR(CL_INVALID_VALUE)
        TCA_CL_ERR(CL_INVALID_DEVICE)
        TCA_CL_ERR(CL_INVALID_CONTEXT)
        TCA_CL_ERR(CL_INVALID_COMMAND_QUEUE)
        TCA_CL_ERR(CL_INVALID_MEM_OBJECT)
        TCA_CL_ERR(CL_INVALID_BINARY)
        TCA_CL_ERR(CL_INVALID_BUILD_OPTIONS)
        TCA_CL_ERR(CL_INVALID_PROGRAM)
        TCA_CL_ERR(CL_INVALID_PROGRAM_EXECUTABLE)
        TCA_CL_ERR(CL_INVALID_KERNEL_NAME)
        TCA_CL_ERR(CL_INVALID_KERNEL)
        TCA_CL_ERR(CL_INVALID_ARG_INDEX)
        TCA_CL_ERR(CL_INVALID_ARG_VALUE)
        TCA_CL_ERR(CL_INVALID_ARG_SIZE)
        TCA_CL_ERR(CL_INVALID_KERNEL_ARGS)
        TCA_CL_ERR(CL_INVALID_WORK_DIMENSION)
        TCA_CL_ERR(CL_INVALID_WORK_GROUP_SIZE)
        TCA_CL_ERR(CL_INVALID_WORK_ITEM_SIZE)
        TCA_CL_ERR(CL_INVALID_GLOBAL_OFFSET)
        TCA_CL_ERR(CL_INVALID_EVENT)
        TCA_CL_ERR(CL_INVALID_BUFFER_SIZE)
        TCA_CL_ERR(CL_INVALID_GLOBAL_WORK_SIZE)
#undef TCA_CL_ERR
        default: return "unknown OpenCL error";
    }
}

bool is_memory_error(cl_int e) {
    return e == CL_OUT_OF_RESOURCES || e == CL_MEM_OBJECT_ALLOCATION_FAILURE || e == CL_OUT_OF_HOST_MEMORY;
}

void fail(cl_int e, const std::string& what, tca_status otherwise) {
    throw Error(is_memory_error(e) ? TCA_ERROR_OUT_OF_MEMORY : otherwise,
                "opencl: " + what + " failed: " + cl_error_name(e) + " (" + std::to_string(e) + ")");
}

void check(cl_int e, const char* what) {
    if (e != CL_SUCCESS) fail(e, what);
}

// Queries on handles the caller gave us: a driver's "invalid object" is the caller's bad argument.
void check_handle(cl_int e, const char* what) {
    if (e != CL_SUCCESS) fail(e, what, TCA_ERROR_INVALID_ARGUMENT);
}

}  // namespace tca::detail::opencl
