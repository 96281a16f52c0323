// Bandwidth probe of the roofline (Device::stream_copy): each work-item copies 16-byte units in a
// grid-stride loop, so a modest grid covers any size and every access is a full vector.
__kernel void copy_u4(__global const uint4* src, long src_off, __global uint4* dst, long dst_off, long n) {
    const long stride = (long)get_global_size(0);
    for (long i = (long)get_global_id(0); i < n; i += stride) dst[dst_off + i] = src[src_off + i];
}
