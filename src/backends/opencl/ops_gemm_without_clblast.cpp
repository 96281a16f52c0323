// OpenCL backend without CLBlast (TCA_WITH_CLBLAST=OFF): no GEMM. It is the roofline's reference
// line only (the compute peak is the multiply-add probe, ops_fma.cpp), so a build that leaves
// CLBlast out loses that line and nothing else. Compiled instead of ops_gemm_clblast.cpp.
#include "backends/opencl/cl_device.h"

namespace tca::detail::opencl {

bool OpenCLDevice::clblast_built() { return false; }

void OpenCLDevice::gemm(const GemmArgs& a) {
    validate(a);
    throw Error(TCA_ERROR_UNSUPPORTED, "opencl: built without CLBlast (TCA_WITH_CLBLAST=OFF), which runs the GEMM");
}

}  // namespace tca::detail::opencl
