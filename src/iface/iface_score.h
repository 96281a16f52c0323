// Kernel family "score": the importance scores (Device::score, shaders/score.glsl).
// Host: src/backends/vulkan/ops_score.cpp.
#ifndef TCA_IFACE_SCORE_H
#define TCA_IFACE_SCORE_H
#include "iface_common.h"

TCA_PARAMS_BEGIN(ScoreParams)
    TCA_U32 q_off; TCA_U32 q_hs; TCA_U32 q_ts; TCA_U32 q_row;
    TCA_U32 k_off; TCA_U32 k_hs; TCA_U32 k_ts; TCA_U32 n_keys;
    TCA_U32 group; TCA_U32 nchunk; TCA_U32 s_off; TCA_U32 s_stride;
    TCA_U32 hq;
    TCA_F32 scale;
TCA_PARAMS_END(ScoreParams)

#define TCA_SCORE_BIND_Q 0
#define TCA_SCORE_BIND_K 1
#define TCA_SCORE_BIND_STATS 2  // [hq][chunk][m, l], then [hq][M, L]
#define TCA_SCORE_BIND_S 3      // s, also the running group sum
#define TCA_SCORE_BINDINGS 4

#define TCA_SCORE_SPEC_WG 0
#define TCA_SCORE_SPEC_D 1
#define TCA_SCORE_SPEC_KV_F16 2
#define TCA_SCORE_SPEC_USE_SG 3
#define TCA_SCORE_SPEC_MODE 4
#define TCA_SCORE_SPECS 5

#define TCA_SCORE_MODE_CHUNK_STATS 0
#define TCA_SCORE_MODE_MERGE 1
#define TCA_SCORE_MODE_NORMALISE 2

// Keys per invocation: a chunk is TCA_SCORE_KEYS_PER_THREAD * work-group size keys.
#define TCA_SCORE_KEYS_PER_THREAD 4

#endif
