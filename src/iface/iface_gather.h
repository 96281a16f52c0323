// Kernel family "gather": row gather for KV compaction and eviction (Device::gather,
// shaders/gather.comp). Host: src/backends/vulkan/ops_gather.cpp.
#ifndef TCA_IFACE_GATHER_H
#define TCA_IFACE_GATHER_H
#include "iface_common.h"

// Batched gather (Device::gather_batch): the table of GatherParams rows, one per entry (the grid's z).
#define TCA_GATHER_BIND_TABLE 9

TCA_PARAMS_BEGIN(GatherParams)
    TCA_U32 sk_off; TCA_U32 sk_hs; TCA_U32 sk_ts; TCA_U32 sv_off; TCA_U32 sv_hs; TCA_U32 sv_ts;
    TCA_U32 dk_off; TCA_U32 dk_hs; TCA_U32 dk_ts; TCA_U32 dv_off; TCA_U32 dv_hs; TCA_U32 dv_ts;
    TCA_U32 src_row0; TCA_U32 idx_off; TCA_U32 idx_stride; TCA_U32 cnt_off; TCA_U32 uniform_count;
    TCA_U32 off_off; TCA_U32 len_off; TCA_U32 pos_off; TCA_U32 pos_stride;
    TCA_I32 pos_base;
    TCA_U32 flags;  // TCA_GATHER_HAS_*
    TCA_U32 dst_tokens; TCA_U32 src_tokens; TCA_U32 dim; TCA_U32 heads;
TCA_PARAMS_END(GatherParams)

#define TCA_GATHER_HAS_IDX 1u
#define TCA_GATHER_HAS_COUNT 2u
#define TCA_GATHER_HAS_DST_OFF 4u
#define TCA_GATHER_HAS_POS_OUT 8u

#define TCA_GATHER_BIND_SRC_K 0
#define TCA_GATHER_BIND_SRC_V 1
#define TCA_GATHER_BIND_DST_K 2
#define TCA_GATHER_BIND_DST_V 3
#define TCA_GATHER_BIND_IDX 4
#define TCA_GATHER_BIND_COUNT 5
#define TCA_GATHER_BIND_DST_OFF 6
#define TCA_GATHER_BIND_DST_LEN 7
#define TCA_GATHER_BIND_POS_OUT 8
#define TCA_GATHER_BINDINGS 9  // the batched variant adds TCA_GATHER_BIND_TABLE

#define TCA_GATHER_SPEC_WG 0
#define TCA_GATHER_SPEC_IS_F16 1
#define TCA_GATHER_SPEC_ALIGNED 2
#define TCA_GATHER_SPEC_MODE 3
#define TCA_GATHER_SPECS 4

#define TCA_GATHER_MODE_ROWS 0
#define TCA_GATHER_MODE_LENGTHS 1

// Destination rows per work-group in TCA_GATHER_MODE_ROWS.
#define TCA_GATHER_ROWS 16

#endif
