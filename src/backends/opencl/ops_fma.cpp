// OpenCL backend, roofline probe fma: the multiply-add peak kernel (cl/fma.cl, src/iface/iface_fma.h).
#include <algorithm>

#include "backends/opencl/cl_device.h"
#include "core/checked.h"
#include "iface/iface_fma.h"

namespace tca::detail::opencl {

void OpenCLDevice::fma_probe(const FmaArgs& a) {
    validate(a);
    require(fma_supported(a.dtype), TCA_ERROR_UNSUPPORTED, "opencl: " + info_.device + " has no cl_khr_fp16 for the f16 probe");
    OpScope op(*this, Op::fma);
    const bool f16 = a.dtype == DType::f16;
    FmaParams p{};
    p.out_off = checked_narrow<uint32_t>(a.out.offset / 4, "fma probe output offset");
    p.items = a.items, p.iters = a.iters, p.gx = 0;  // a 1-D range on OpenCL
    p.a = a.a, p.b = a.b;
    const size_t wg = std::min<size_t>(max_wg_, 256);
    launch(kernel("fma.cl", f16 ? "-DTCA_FMA_F16" : "", f16 ? "fma_f16" : "fma_f32"), Range(a.items), Range(wg), mem(a.out),
           params(p));
}

}  // namespace tca::detail::opencl
