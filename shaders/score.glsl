// Importance scores: s[h][j] = mean over the group's query heads of softmax_j(scale * q_hq[q_row] . k[h][j]).
//   MODE 0  per (chunk of KPT*WG keys, KV head): for each query head of the group, the chunk's
//           softmax (max, sum) -> stats[hq][chunk].
//   MODE 1  per query head: merge of its chunks -> (M, L) after the per-chunk stats.
//   MODE 2  per (chunk, KV head): recompute each logit exactly as MODE 0 and write the group mean of
//           exp(x - M) / L. s is the only L-sized buffer (it holds the running sum over the group).
// Parameters, bindings, specialization constants and modes: src/iface/iface_score.h.
#include "common.glsl"
#include "iface_score.h"

layout(local_size_x_id = TCA_SCORE_SPEC_WG) in;
layout(constant_id = TCA_SCORE_SPEC_D) const uint D = 128;
layout(constant_id = TCA_SCORE_SPEC_KV_F16) const uint KV_F16 = 0;
layout(constant_id = TCA_SCORE_SPEC_USE_SG) const uint USE_SG = 0;
layout(constant_id = TCA_SCORE_SPEC_MODE) const uint MODE = 0;

const uint WG = gl_WorkGroupSize.x;
const uint D4 = D / 4;
const uint KPT = TCA_SCORE_KEYS_PER_THREAD;  // a chunk is KPT * WG keys

layout(binding = TCA_SCORE_BIND_Q, std430) readonly buffer QBuf { float q_x[]; };
KV_BUFFER(TCA_SCORE_BIND_K, k)
layout(binding = TCA_SCORE_BIND_STATS, std430) buffer StatBuf { float stats[]; };  // [hq][chunk][m, l], then [hq][M, L]
layout(binding = TCA_SCORE_BIND_S, std430) buffer SBuf { float s_x[]; };  // also the running group sum

#include "reduce.glsl"

shared vec4 qs[D4];

void load_q(uint hq) {
    for (uint c4 = gl_LocalInvocationIndex; c4 < D4; c4 += WG) {
        const uint e = pc.q_off + hq * pc.q_hs + pc.q_row * pc.q_ts + c4 * 4;
        // Scaled as loaded, as on every backend: no unscaled q . k is formed (tca.h, "input range").
        qs[c4] = vec4(q_x[e], q_x[e + 1], q_x[e + 2], q_x[e + 3]) * pc.scale;
    }
}

float key_score(uint hk, uint j) {
    const uint base = pc.k_off + hk * pc.k_hs + j * pc.k_ts;
    float d = 0.0;
    for (uint c4 = 0; c4 < D4; ++c4) d += dot(qs[c4], k_load4(base + c4 * 4));
    return d;
}

void main() {
    const uint t = gl_LocalInvocationIndex;
    const uint merged = pc.hq * pc.nchunk * 2;
    if (MODE == 1) {
        if (t != 0) return;
        const uint hq = gl_WorkGroupID.x;
        float M = kMask, L = 0.0;
        for (uint c = 0; c < pc.nchunk; ++c) M = max(M, stats[(hq * pc.nchunk + c) * 2]);
        for (uint c = 0; c < pc.nchunk; ++c)
            L += stats[(hq * pc.nchunk + c) * 2 + 1] * exp(stats[(hq * pc.nchunk + c) * 2] - M);
        stats[merged + hq * 2] = M, stats[merged + hq * 2 + 1] = L;
        return;
    }
    const uint chunk = gl_WorkGroupID.x, hk = gl_WorkGroupID.y;
    const uint j0 = chunk * KPT * WG;
    // Keys j0 + k * WG + t, k < KPT, for each query head of the group in turn. No per-key register
    // arrays: MODE 0 keeps an online (max, sum) per thread; MODE 2 accumulates the group sum in s
    // itself (each element only ever touched by one thread, heads in a fixed order).
    for (uint g = 0; g < pc.group; ++g) {
        const uint hq = hk * pc.group + g;
        barrier();
        load_q(hq);
        barrier();
        if (MODE == 0) {
            float m = kMask, l = 0.0;
            for (uint k = 0; k < KPT; ++k) {
                const uint j = j0 + k * WG + t;
                if (j >= pc.n_keys) break;
                const float x = key_score(hk, j);
                const float mn = max(m, x);
                l = l * exp(m - mn) + exp(x - mn);
                m = mn;
            }
            const float M = wg_max(m);
            const float L = wg_sum(l > 0.0 ? l * exp(m - M) : 0.0);
            if (t == 0) stats[(hq * pc.nchunk + chunk) * 2] = M, stats[(hq * pc.nchunk + chunk) * 2 + 1] = L;
        } else {
            const float M = stats[merged + hq * 2], L = stats[merged + hq * 2 + 1];
            for (uint k = 0; k < KPT; ++k) {
                const uint j = j0 + k * WG + t;
                if (j >= pc.n_keys) break;
                const uint e = pc.s_off + hk * pc.s_stride + j;
                const float pr = exp_below(key_score(hk, j), M) / L;
                const float sum = g == 0 ? pr : s_x[e] + pr;
                s_x[e] = g + 1 == pc.group ? sum / float(pc.group) : sum;
            }
        }
    }
}
