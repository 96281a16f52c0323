// OpenCL backend, roofline probe copy: the bandwidth kernel (cl/copy.cl, src/iface/iface_copy.h).
#include <algorithm>

#include "backends/opencl/cl_device.h"
#include "core/checked.h"
#include "iface/iface_copy.h"

namespace tca::detail::opencl {

void OpenCLDevice::stream_copy(const CopyArgs& a) {
    validate(a);
    OpScope op(*this, Op::copy);
    const size_t units = a.bytes / 16, wg = std::min<size_t>(max_wg_, 256);
    CopyParams p{};
    p.src_off = checked_narrow<uint32_t>(a.src.offset / 16, "copy source offset");
    p.dst_off = checked_narrow<uint32_t>(a.dst.offset / 16, "copy destination offset");
    p.n = checked_narrow<uint32_t>(units, "copy size");
    p.gx = 0;  // a 1-D range on OpenCL
    launch(kernel("copy.cl", "", "copy_u4"), Range(units), Range(wg), mem(a.src), mem(a.dst), params(p));
}

}  // namespace tca::detail::opencl
