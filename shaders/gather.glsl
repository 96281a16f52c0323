// Row gather for KV compaction and eviction (a bit-exact copy; f16 rows are never converted).
//   MODE 0  per (16 destination rows, head): dst[h][off + r] = src[h][src_row0 + idx[h][r]] for K and
//           V, plus pos_out. Rows outside either tensor are skipped (the reference rejects them).
//   MODE 1  per head: dst_len[h] = dst_off[h] + count. A separate pass after MODE 0 because dst_len
//           may be the buffer dst_off, which every copy reads.
// Data is addressed as 32-bit words. f32: one word per element. f16 with every row starting on an
// even element (ALIGNED): two elements per word. Otherwise halves are merged into destination words
// with atomicAnd/atomicOr, since two rows may share a word; the result does not depend on order.
// Parameters, bindings, specialization constants and modes: src/iface/iface_gather.h. gather.comp:
// the single op; gather_batch.comp: the batched variant (workgroup z = the entry; Device::gather_batch).
#include "common.glsl"
#include "iface_gather.h"

layout(local_size_x_id = TCA_GATHER_SPEC_WG) in;
layout(constant_id = TCA_GATHER_SPEC_IS_F16) const uint IS_F16 = 0;
layout(constant_id = TCA_GATHER_SPEC_ALIGNED) const uint ALIGNED = 1;
layout(constant_id = TCA_GATHER_SPEC_MODE) const uint MODE = 0;
const uint WG = gl_WorkGroupSize.x;
const uint ROWS = TCA_GATHER_ROWS;

layout(binding = TCA_GATHER_BIND_SRC_K, std430) readonly buffer SK { uint sk[]; };
layout(binding = TCA_GATHER_BIND_SRC_V, std430) readonly buffer SV { uint sv[]; };
layout(binding = TCA_GATHER_BIND_DST_K, std430) buffer DK { uint dk[]; };
layout(binding = TCA_GATHER_BIND_DST_V, std430) buffer DV { uint dv[]; };
layout(binding = TCA_GATHER_BIND_IDX, std430) readonly buffer Idx { int idx[]; };
layout(binding = TCA_GATHER_BIND_COUNT, std430) readonly buffer Cnt { int cnt[]; };
layout(binding = TCA_GATHER_BIND_DST_OFF, std430) readonly buffer Off { int dst_off[]; };
layout(binding = TCA_GATHER_BIND_DST_LEN, std430) writeonly buffer Len { int dst_len[]; };
layout(binding = TCA_GATHER_BIND_POS_OUT, std430) writeonly buffer Pos { int pos_out[]; };

int count_of(uint h) { return (pc.flags & TCA_GATHER_HAS_COUNT) != 0u ? cnt[pc.cnt_off + h] : int(pc.uniform_count); }
int offset_of(uint h) { return (pc.flags & TCA_GATHER_HAS_DST_OFF) != 0u ? dst_off[pc.off_off + h] : 0; }

// Copies one row (elements se.., de..) from SRC to DST; written once per K and V.
#define COPY_ROW(SRC, DST, se, de)                                                       \
    if (IS_F16 == 0) {                                                                   \
        for (uint e = t; e < pc.dim; e += WG) DST[de + e] = SRC[se + e];                 \
    } else if (ALIGNED != 0) {                                                           \
        for (uint w = t; w < pc.dim / 2; w += WG) DST[de / 2 + w] = SRC[se / 2 + w];     \
    } else {                                                                             \
        for (uint e = t; e < pc.dim; e += WG) {                                          \
            const uint s_ = se + e, d_ = de + e;                                         \
            const uint bits = (SRC[s_ >> 1] >> ((s_ & 1u) * 16u)) & 0xffffu;            \
            const uint sh = (d_ & 1u) * 16u;                                             \
            atomicAnd(DST[d_ >> 1], ~(0xffffu << sh));                                   \
            atomicOr(DST[d_ >> 1], bits << sh);                                          \
        }                                                                                \
    }

void main() {
    const uint t = gl_LocalInvocationIndex;
    if (MODE == TCA_GATHER_MODE_LENGTHS) {
        const uint h = gl_WorkGroupID.x * WG + t;
        if (h < pc.heads) {
            const int off = offset_of(h);  // read before the write below: dst_len may alias dst_off
            dst_len[pc.len_off + h] = off + count_of(h);
        }
        return;
    }
    const uint h = gl_WorkGroupID.y;
    const int n = count_of(h), off = offset_of(h);
    for (uint rr = 0; rr < ROWS; ++rr) {
        const int r = int(gl_WorkGroupID.x * ROWS + rr);
        if (r >= n) break;
        const int rel = (pc.flags & TCA_GATHER_HAS_IDX) != 0u ? idx[pc.idx_off + h * pc.idx_stride + uint(r)] : r;
        const int row = int(pc.src_row0) + rel;
        const int dr = off + r;
        if (row < 0 || row >= int(pc.src_tokens) || dr < 0 || dr >= int(pc.dst_tokens)) continue;
        const uint sk0 = pc.sk_off + h * pc.sk_hs + uint(row) * pc.sk_ts;
        const uint sv0 = pc.sv_off + h * pc.sv_hs + uint(row) * pc.sv_ts;
        const uint dk0 = pc.dk_off + h * pc.dk_hs + uint(dr) * pc.dk_ts;
        const uint dv0 = pc.dv_off + h * pc.dv_hs + uint(dr) * pc.dv_ts;
        COPY_ROW(sk, dk, sk0, dk0)
        COPY_ROW(sv, dv, sv0, dv0)
        if ((pc.flags & TCA_GATHER_HAS_POS_OUT) != 0u && t == 0) pos_out[pc.pos_off + h * pc.pos_stride + uint(dr)] = pc.pos_base + row;
    }
}
