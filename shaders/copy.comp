#version 450
// Bandwidth probe of the roofline (Device::stream_copy): one 16-byte unit per invocation. The grid
// is 2-D (x up to `gx` workgroups) so large copies stay within the workgroup-count limit.
// (More units per invocation was tried on lavapipe: no faster, so the simplest form stays.)
// Parameters, bindings and the work-group size id: src/iface/iface_copy.h.
#include "iface_copy.h"

layout(local_size_x_id = TCA_COPY_SPEC_WG) in;

layout(binding = TCA_COPY_BIND_SRC, std430) readonly buffer Src { uvec4 src[]; };
layout(binding = TCA_COPY_BIND_DST, std430) writeonly buffer Dst { uvec4 dst[]; };

void main() {
    const uint i = (gl_WorkGroupID.y * pc.gx + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i < pc.n) dst[pc.dst_off + i] = src[pc.src_off + i];
}
