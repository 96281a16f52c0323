// Kernel family "select": block metric, block ranking and per-block token selection
// (Device::metric, rank, select; shaders/select.comp). Host: src/backends/vulkan/ops_select.cpp.
#ifndef TCA_IFACE_SELECT_H
#define TCA_IFACE_SELECT_H
#include "iface_common.h"

TCA_PARAMS_BEGIN(SelectParams)
    TCA_U32 a_off; TCA_U32 a_stride; TCA_U32 heads; TCA_U32 n;
    TCA_U32 block; TCA_U32 nb; TCA_U32 order_off; TCA_U32 budget_off;
    TCA_U32 out_off; TCA_U32 out_stride; TCA_U32 cnt_off;
    TCA_U32 scr_a; TCA_U32 scr_b; TCA_U32 scr_c;  // scratch: kept per block, block offsets, keep flags
    TCA_F32 alpha;
TCA_PARAMS_END(SelectParams)

#define TCA_SELECT_BIND_IN 0       // s (metric, select) or h (rank)
#define TCA_SELECT_BIND_ORDER 1
#define TCA_SELECT_BIND_BUDGET 2
#define TCA_SELECT_BIND_OUT 3      // order (rank) or idx (select)
#define TCA_SELECT_BIND_COUNT 4
#define TCA_SELECT_BIND_SCRATCH 5
#define TCA_SELECT_BIND_METRIC 6   // h (metric)
#define TCA_SELECT_BINDINGS 7

#define TCA_SELECT_SPEC_WG 0
#define TCA_SELECT_SPEC_USE_SG 1
#define TCA_SELECT_SPEC_MODE 2
#define TCA_SELECT_SPECS 3

#define TCA_SELECT_MODE_METRIC 0
#define TCA_SELECT_MODE_RANK 1
#define TCA_SELECT_MODE_KEEP_COUNTS 2
#define TCA_SELECT_MODE_OFFSETS 3
#define TCA_SELECT_MODE_TOKENS 4

#endif
