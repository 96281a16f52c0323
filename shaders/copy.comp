#version 450
// Bandwidth probe of the roofline (Device::stream_copy): one 16-byte unit per invocation. The grid
// is 2-D (x up to `gx` workgroups) so large copies stay within the workgroup-count limit.
// (More units per invocation was tried on lavapipe: no faster, so the simplest form stays.)
layout(local_size_x_id = 0) in;

layout(push_constant) uniform PC {
    uint src_off, dst_off, n;  // in 16-byte units
    uint gx;                   // workgroups along x
} pc;

layout(binding = 0, std430) readonly buffer Src { uvec4 src[]; };
layout(binding = 1, std430) writeonly buffer Dst { uvec4 dst[]; };

void main() {
    const uint i = (gl_WorkGroupID.y * pc.gx + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i < pc.n) dst[pc.dst_off + i] = src[pc.src_off + i];
}
