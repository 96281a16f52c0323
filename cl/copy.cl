// Bandwidth probe of the roofline (Device::stream_copy): one 16-byte unit per work-item, the
// pattern every OpenCL driver handles best (GPUs coalesce it; CPU drivers vectorise across items).
__kernel void copy_u4(__global const uint4* src, long src_off, __global uint4* dst, long dst_off, long n) {
    const long i = (long)get_global_id(0);
    if (i < n) dst[dst_off + i] = src[src_off + i];
}
