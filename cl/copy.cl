// Bandwidth probe of the roofline (Device::stream_copy): one 16-byte unit per work-item, the
// pattern every OpenCL driver handles best (GPUs coalesce it; CPU drivers vectorise across items).
#include "iface_copy.h"

__kernel void copy_u4(__global const uint4* src, __global uint4* dst, const CopyParams p) {
    const uint i = (uint)get_global_id(0);
    if (i < p.n) dst[p.dst_off + i] = src[p.src_off + i];
}
