// Kernel family "copy": the bandwidth probe of the roofline (Device::stream_copy).
// Host: src/backends/{opencl,vulkan}/ops_copy.cpp (stream_copy); kernels: cl/copy.cl, shaders/copy.comp.
#ifndef TCA_IFACE_COPY_H
#define TCA_IFACE_COPY_H
#include "iface_common.h"

TCA_PARAMS_BEGIN(CopyParams)
    TCA_U32 src_off;  // in 16-byte units
    TCA_U32 dst_off;  // in 16-byte units
    TCA_U32 n;        // 16-byte units to copy
    TCA_U32 gx;       // work-groups along x of the 2-D grid (Vulkan's group-count limit)
TCA_PARAMS_END(CopyParams)

#define TCA_COPY_BIND_SRC 0
#define TCA_COPY_BIND_DST 1
#define TCA_COPY_SPEC_WG 0  // work-group size (specialization constant id)

#endif
