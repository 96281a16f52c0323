// Kernel family "decode": Device::decode (split-K attention of one query row per head over two key
// segments), its log-sum-exp merge and the eviction probabilities.
// Host: src/backends/{opencl,vulkan}_device.cpp (decode); kernels: cl/decode.cl, shaders/decode.glsl.
//
// Offsets and strides are in elements of the tensor's own type (f32 for q/o/part/probs, the K/V
// type for k1/v1/k2/v2, int32 for n2). The host checks that each fits 32 bits.
//
// Scratch `part` (f32), the same layout on both APIs:
//   [part_ml, part_ml + hq*nsplit*2)       per (query head, split): running max m, sum l
//   [part_o, part_o + hq*nsplit*d)         per (query head, split): unnormalised output
//   [part_merged, part_merged + hq*2)      per query head: merged (M, L), read by decode_probs
// A batched call lays the entries' regions one after another in one scratch buffer.
#ifndef TCA_IFACE_DECODE_H
#define TCA_IFACE_DECODE_H
#include "iface_common.h"

// Batched decode (Device::decode_batch): the table of DecodeParams rows, one per entry (the grid's z).
#define TCA_DECODE_BIND_TABLE 9
#define TCA_DECODE_BINDINGS 10

TCA_PARAMS_BEGIN(DecodeParams)
    TCA_U32 q_off, q_hs, o_off, o_hs;
    TCA_U32 k1_off, k1_hs, k1_ts, v1_off, v1_hs, v1_ts;
    TCA_U32 k2_off, k2_hs, k2_ts, v2_off, v2_hs, v2_ts;
    TCA_U32 n1;         // rows of segment 1 (every KV head)
    TCA_U32 has2;       // segment 2 present
    TCA_U32 n2_off;     // n2[h] = per-KV-head rows of segment 2 ...
    TCA_U32 k2_rows;    // ... clamped to this (segment 2's capacity)
    TCA_U32 split_len;  // rows of the virtual sequence per split; the last split also takes any rest
    TCA_U32 nsplit;
    TCA_U32 part_ml, part_o, part_merged;  // offsets (floats) into part, see above (part_ml: 0 unbatched)
    TCA_U32 probs_off, probs_n;
    TCA_F32 scale;
TCA_PARAMS_END(DecodeParams)

#define TCA_DECODE_BIND_Q 0
#define TCA_DECODE_BIND_K1 1
#define TCA_DECODE_BIND_V1 2
#define TCA_DECODE_BIND_K2 3
#define TCA_DECODE_BIND_V2 4
#define TCA_DECODE_BIND_O 5
#define TCA_DECODE_BIND_N2 6
#define TCA_DECODE_BIND_PART 7
#define TCA_DECODE_BIND_PROBS 8

// Specialization constants (Vulkan) / build defines (OpenCL: DEC_WG, HEAD_DIM, KV_HALF, DEC_SGW,
// DEC_GROUP, DEC_TPR, DEC_TILE). The layout: a work-group owns a contiguous range of one KV head's
// virtual sequence and serves its GROUP query heads; lanes are (row slot, column) with TPR lanes per
// K/V row, each holding the float4 columns c, c + TPR, ... (so consecutive lanes read consecutive
// 16-byte units of a row, and consecutive row slots consecutive rows); WG / TPR rows are read at once.
#define TCA_DECODE_SPEC_WG 0     // work-group size (power of two)
#define TCA_DECODE_SPEC_D 1      // head dimension (multiple of 4)
#define TCA_DECODE_SPEC_F16 2    // K/V stored as f16
#define TCA_DECODE_SPEC_SGW 3    // lanes a partial dot is reduced over by subgroup shuffles (1: none)
#define TCA_DECODE_SPEC_MODE 4   // Vulkan: 0 split, 1 merge, 2 probs
#define TCA_DECODE_SPEC_GROUP 5  // query heads per KV head (1..8)
#define TCA_DECODE_SPEC_TPR 6    // lanes per K/V row (power of two, divides WG and D / 4)
#define TCA_DECODE_SPEC_TILE 7   // rows per softmax tile (multiple of WG / TPR)

#endif
