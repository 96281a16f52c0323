// OpenCL backend, roofline reference line gemm: CLBlast's tuned GEMM. Built only with CLBlast
// (TCA_WITH_CLBLAST; cmake/tca_backends.cmake puts every path naming clblast in that bucket);
// otherwise ops_gemm_without_clblast.cpp defines the same members.
#include <clblast.h>

#include "backends/opencl/cl_device.h"
#include "core/checked.h"

namespace tca::detail::opencl {

bool OpenCLDevice::clblast_built() { return true; }

// CLBlast's tuned GEMM. It may enqueue several kernels (padding, transposes), so the op is
// timed between two markers rather than by one kernel's event.
void OpenCLDevice::gemm(const GemmArgs& a) {
    validate(a);
    require(gemm_supported(a.dtype), TCA_ERROR_UNSUPPORTED,
            "opencl: " + info_.device + " has no cl_khr_fp16, so CLBlast HGEMM cannot run");
    OpScope op(*this, Op::gemm);
    marker();
    cl_command_queue q = queue_.get();
    const size_t es = dtype_size(a.dtype);
    const auto L = clblast::Layout::kRowMajor;
    const auto N = clblast::Transpose::kNo;
    clblast::StatusCode st;
    if (a.dtype == DType::f32)
        st = clblast::Gemm<float>(L, N, N, a.m, a.n, a.k, 1.0f, mem(a.a), a.a.offset / es, a.k, mem(a.b),
                                  a.b.offset / es, a.n, 0.0f, mem(a.c), a.c.offset / es, a.n, &q, nullptr);
    else
        st = clblast::Gemm<cl_half>(L, N, N, a.m, a.n, a.k, cl_half(0x3c00), mem(a.a), a.a.offset / es, a.k,
                                    mem(a.b), a.b.offset / es, a.n, cl_half(0), mem(a.c), a.c.offset / es, a.n,
                                    &q, nullptr);
    if (st != clblast::StatusCode::kSuccess) {
        const int code = int(st);
        if (code <= 0 && code >= -70) fail(cl_int(code), "CLBlast GEMM");  // an OpenCL error code
        throw Error(TCA_ERROR_BACKEND, "opencl: CLBlast GEMM failed with CLBlast status " + std::to_string(code));
    }
    marker();
}

}  // namespace tca::detail::opencl
