#version 450
// Bandwidth probe of the roofline (Device::stream_copy): 16-byte units, grid-stride loop, so the
// dispatch stays within the workgroup-count limit for any size.
layout(local_size_x_id = 0) in;

layout(push_constant) uniform PC {
    uint src_off, dst_off, n;  // in 16-byte units
    uint groups;               // workgroups dispatched (the stride is groups * WG)
} pc;

layout(binding = 0, std430) readonly buffer Src { uvec4 src[]; };
layout(binding = 1, std430) writeonly buffer Dst { uvec4 dst[]; };

void main() {
    const uint stride = pc.groups * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) dst[pc.dst_off + i] = src[pc.src_off + i];
}
