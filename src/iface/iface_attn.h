// Kernel family "attn": the flash-attention kernel of prefill (Device::prefill) and of both colsum
// passes (Device::colsum), modes chosen by a specialization constant (shaders/attn.glsl).
// Host: src/backends/vulkan/ops_prefill.cpp, ops_colsum.cpp.
#ifndef TCA_IFACE_ATTN_H
#define TCA_IFACE_ATTN_H
#include "iface_common.h"

TCA_PARAMS_BEGIN(AttnParams)
    TCA_U32 q_off; TCA_U32 k_off; TCA_U32 v_off; TCA_U32 o_off;  // element offsets
    TCA_U32 q_hs; TCA_U32 q_ts; TCA_U32 k_hs; TCA_U32 k_ts;      // head / token strides in elements
    TCA_U32 v_hs; TCA_U32 v_ts; TCA_U32 o_hs; TCA_U32 o_ts;
    TCA_U32 lq; TCA_U32 lk; TCA_U32 q_pos0; TCA_U32 group;
    TCA_I32 window;
    TCA_U32 idx_off; TCA_U32 cnt_off; TCA_U32 kept_stride;
    TCA_U32 stats_off; TCA_U32 c_off; TCA_U32 c_stride;
    TCA_F32 scale;
TCA_PARAMS_END(AttnParams)

#define TCA_ATTN_BIND_Q 0
#define TCA_ATTN_BIND_K 1
#define TCA_ATTN_BIND_V 2
#define TCA_ATTN_BIND_O 3
#define TCA_ATTN_BIND_KEPT_IDX 4
#define TCA_ATTN_BIND_KEPT_COUNT 5
#define TCA_ATTN_BIND_STATS 6      // colsum: each query row's softmax (max, sum)
#define TCA_ATTN_BIND_COLSUM 7     // colsum: c
#define TCA_ATTN_BINDINGS 8

#define TCA_ATTN_SPEC_WG 0      // work-group size = BR * TPR
#define TCA_ATTN_SPEC_BR 1      // rows per work-group
#define TCA_ATTN_SPEC_BC 2      // columns per staged tile (<= 32: one mask word)
#define TCA_ATTN_SPEC_D 3       // head dim, a multiple of 4
#define TCA_ATTN_SPEC_TPR 4     // threads per row: 1, 2 or 4
#define TCA_ATTN_SPEC_KV_F16 5
#define TCA_ATTN_SPEC_USE_SG 6
#define TCA_ATTN_SPEC_MODE 7
#define TCA_ATTN_SPEC_SPARSE 8
#define TCA_ATTN_SPECS 9

#define TCA_ATTN_MODE_PREFILL 0
#define TCA_ATTN_MODE_COLSUM_STATS 1
#define TCA_ATTN_MODE_COLSUM_COLS 2

#endif
