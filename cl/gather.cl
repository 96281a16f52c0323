// Row gather for KV compaction and eviction. Rows are moved as raw units of UNIT_T (the host
// picks the widest of ulong / uint / ushort that divides every offset, stride and row size),
// so one kernel serves f32 and f16 and any layout.
// Rows the contract forbids (source row or destination slot out of range) are skipped rather
// than written out of bounds.
#ifndef UNIT_T
#define UNIT_T ushort
#endif
#ifndef TENSOR
#define TENSOR(T, n) __global T* n, long n##_off, long n##_hs, long n##_ts
#define ROW(n, h, j) ((n##_off) + (long)(h) * (n##_hs) + (long)(j) * (n##_ts))
#endif

// Optional arrays arrive as NULL pointers (OpenCL 1.2 passes a NULL cl_mem as NULL).
__kernel void gather_rows(TENSOR(const UNIT_T, sk), TENSOR(const UNIT_T, sv), TENSOR(UNIT_T, dk),
                          TENSOR(UNIT_T, dv),
                          int units, int src_rows, int dst_rows, int src_row0, __global const int* idx, long idx_off,
                          int idx_stride, __global const int* count, long count_off, int uniform_count,
                          __global const int* dst_off, long dst_off_off, __global int* pos_out, long pos_off,
                          int pos_stride, int pos_base) {
    const int u = get_global_id(0), r = get_global_id(1), h = get_global_id(2);
    if (u >= units) return;
    const int n = count ? count[count_off + h] : uniform_count;
    if (r >= n) return;
    const int off = dst_off ? dst_off[dst_off_off + h] : 0;
    if (off < 0 || off + r >= dst_rows) return;
    const int row = src_row0 + (idx ? idx[idx_off + (long)h * idx_stride + r] : r);
    if (row < 0 || row >= src_rows) return;
    dk[ROW(dk, h, off + r) + u] = sk[ROW(sk, h, row) + u];
    dv[ROW(dv, h, off + r) + u] = sv[ROW(sv, h, row) + u];
    if (u == 0 && pos_out && off + r < pos_stride) pos_out[pos_off + (long)h * pos_stride + off + r] = pos_base + row;
}

// Launched after gather_rows, so every offset has been read before a length that may share
// its buffer is written.
__kernel void gather_len(__global const int* count, long count_off, int uniform_count, __global const int* dst_off,
                         long dst_off_off, __global int* dst_len, long dst_len_off) {
    const int h = get_global_id(0);
    const int n = count ? count[count_off + h] : uniform_count;
    const int off = dst_off ? dst_off[dst_off_off + h] : 0;
    dst_len[dst_len_off + h] = off + n;
}

// ---- batched (Device::gather_batch) ----
// One launch for many entries sharing buffers: the grid's z is entry * heads + head, and the
// entry's parameters (iface_gather.h; K/V offsets and strides in UNIT_T units here) come from a
// table. Row for row the same copies and checks as gather_rows / gather_len.
#include "iface_gather.h"

__kernel void gather_rows_batch(__global const UNIT_T* sk, __global const UNIT_T* sv, __global UNIT_T* dk,
                                __global UNIT_T* dv, __global const int* idx, __global const int* count,
                                __global const int* dst_off, __global int* pos_out, __global const GatherParams* tab,
                                int heads) {
    const int u = get_global_id(0), r = get_global_id(1), z = get_global_id(2);
    const GatherParams p = tab[z / heads];
    const int h = z % heads;
    if (u >= (int)p.dim) return;
    const int n = (p.flags & TCA_GATHER_HAS_COUNT) ? count[p.cnt_off + h] : (int)p.uniform_count;
    if (r >= n) return;
    const int off = (p.flags & TCA_GATHER_HAS_DST_OFF) ? dst_off[p.off_off + h] : 0;
    if (off < 0 || off + r >= (int)p.dst_tokens) return;
    const int row = (int)p.src_row0 + ((p.flags & TCA_GATHER_HAS_IDX) ? idx[p.idx_off + (long)h * p.idx_stride + r] : r);
    if (row < 0 || row >= (int)p.src_tokens) return;
    const long d = off + r;
    dk[p.dk_off + (long)h * p.dk_hs + d * p.dk_ts + u] = sk[p.sk_off + (long)h * p.sk_hs + (long)row * p.sk_ts + u];
    dv[p.dv_off + (long)h * p.dv_hs + d * p.dv_ts + u] = sv[p.sv_off + (long)h * p.sv_hs + (long)row * p.sv_ts + u];
    if (u == 0 && (p.flags & TCA_GATHER_HAS_POS_OUT) && off + r < (int)p.pos_stride)
        pos_out[p.pos_off + (long)h * p.pos_stride + off + r] = p.pos_base + row;
}

// After gather_rows_batch, as gather_len after gather_rows. Grid: (heads, entries).
__kernel void gather_len_batch(__global const int* count, __global const int* dst_off, __global int* dst_len,
                               __global const GatherParams* tab) {
    const int h = get_global_id(0);
    const GatherParams p = tab[get_global_id(1)];
    if (h >= (int)p.heads) return;
    const int n = (p.flags & TCA_GATHER_HAS_COUNT) ? count[p.cnt_off + h] : (int)p.uniform_count;
    const int off = (p.flags & TCA_GATHER_HAS_DST_OFF) ? dst_off[p.off_off + h] : 0;
    dst_len[p.len_off + h] = off + n;
}
