// Decode attention: one query row per head against segment 1 (rows [0, n1)) followed by segment 2
// (rows [0, n2[h]), per KV head) as one virtual key sequence, split-K.
//   MODE 0  one workgroup per (split, query head): its chunk of the virtual sequence with an online
//           softmax; writes the partial (m, l, unnormalised o).
//   MODE 1  one workgroup per query head: log-sum-exp merge of the splits into o; also stores the
//           merged (M, L) after the partials for MODE 2.
//   MODE 2  eviction scores: for segment-1 rows r < probs_n, the mean over the group's query heads
//           of exp(s - M) / L, recomputing s exactly as MODE 0 did.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128;
layout(constant_id = 2) const uint KV_F16 = 0;
layout(constant_id = 3) const uint USE_SG = 0;
layout(constant_id = 4) const uint MODE = 0;

const uint WG = gl_WorkGroupSize.x;  // >= D / 4
const uint D4 = D / 4;

layout(push_constant) uniform PC {
    uint q_off, o_off, k1_off, v1_off, k2_off, v2_off;
    uint q_hs, o_hs, k1_hs, k1_ts, v1_hs, v1_ts, k2_hs, k2_ts, v2_hs, v2_ts;
    uint n1, has2, n2_off, chunk, nsplit, group, probs_off, probs_n, hq;
    float scale;
    uint t2;  // rows of segment 2: n2[h] is clamped to it
} pc;

layout(binding = 0, std430) readonly buffer QBuf { float q_x[]; };
KV_BUFFER(1, k1)
KV_BUFFER(2, v1)
KV_BUFFER(3, k2)
KV_BUFFER(4, v2)
layout(binding = 5, std430) writeonly buffer OBuf { float o_x[]; };
layout(binding = 6, std430) readonly buffer N2Buf { int n2[]; };
layout(binding = 7, std430) buffer PartBuf { float part[]; };  // [hq][split][m, l, o[D]], then [hq][M, L]
layout(binding = 8, std430) writeonly buffer ProbBuf { float probs[]; };

#include "reduce.glsl"

shared vec4 qs[D4];
shared float ps[WG];

void load_q(uint hq) {
    for (uint c4 = gl_LocalInvocationIndex; c4 < D4; c4 += WG) {
        const uint e = pc.q_off + hq * pc.q_hs + c4 * 4;
        qs[c4] = vec4(q_x[e], q_x[e + 1], q_x[e + 2], q_x[e + 3]) * pc.scale;
    }
}

// (scale * q) . k for virtual key u of KV head hk: q is scaled as loaded, as on every backend, so no
// unscaled q . k is formed (tca.h, "input range", bounds |scale| ||q|| ||k||).
float key_score(uint hk, uint u) {
    float d = 0.0;
    if (u < pc.n1) {
        const uint base = pc.k1_off + hk * pc.k1_hs + u * pc.k1_ts;
        for (uint c4 = 0; c4 < D4; ++c4) d += dot(qs[c4], k1_load4(base + c4 * 4));
    } else {
        const uint base = pc.k2_off + hk * pc.k2_hs + (u - pc.n1) * pc.k2_ts;
        for (uint c4 = 0; c4 < D4; ++c4) d += dot(qs[c4], k2_load4(base + c4 * 4));
    }
    return d;
}

vec4 value(uint hk, uint u, uint c4) {
    return u < pc.n1 ? v1_load4(pc.v1_off + hk * pc.v1_hs + u * pc.v1_ts + c4 * 4)
                     : v2_load4(pc.v2_off + hk * pc.v2_hs + (u - pc.n1) * pc.v2_ts + c4 * 4);
}

void main() {
    const uint t = gl_LocalInvocationIndex;
    const uint stride = D + 2;
    const uint stats_base = pc.hq * pc.nsplit * stride;

    if (MODE == 0) {
        const uint hq = gl_WorkGroupID.y, hk = hq / pc.group, split = gl_WorkGroupID.x;
        const uint n = pc.n1 + (pc.has2 != 0 ? min(uint(max(n2[pc.n2_off + hk], 0)), pc.t2) : 0u);
        const uint start = split * pc.chunk, end = min(start + pc.chunk, n);
        load_q(hq);
        barrier();
        float m = kMask, l = 0.0;
        vec4 acc = vec4(0.0);
        for (uint u0 = start; u0 < end; u0 += WG) {
            const uint u = u0 + t;
            const bool ok = u < end;
            const float s = ok ? key_score(hk, u) : kMask;
            const float mn = max(m, wg_max(s));
            const float p = ok ? exp(s - mn) : 0.0;
            ps[t] = p;
            const float alpha = exp(m - mn);
            l = l * alpha + wg_sum(p);  // its barriers also publish ps
            m = mn;
            if (t < D4) {
                acc *= alpha;
                const uint cnt = min(WG, end - u0);
                for (uint c = 0; c < cnt; ++c) acc += ps[c] * value(hk, u0 + c, t);
            }
            barrier();
        }
        const uint base = (hq * pc.nsplit + split) * stride;
        if (t == 0) part[base] = m, part[base + 1] = l;
        if (t < D4) {
            part[base + 2 + t * 4] = acc.x, part[base + 3 + t * 4] = acc.y;
            part[base + 4 + t * 4] = acc.z, part[base + 5 + t * 4] = acc.w;
        }
    } else if (MODE == 1) {
        const uint hq = gl_WorkGroupID.y;
        float M = kMask;
        for (uint s = 0; s < pc.nsplit; ++s) M = max(M, part[(hq * pc.nsplit + s) * stride]);
        float L = 0.0;
        vec4 acc = vec4(0.0);
        for (uint s = 0; s < pc.nsplit; ++s) {
            const uint base = (hq * pc.nsplit + s) * stride;
            const float w = exp(part[base] - M);
            L += part[base + 1] * w;
            if (t < D4)
                acc += w * vec4(part[base + 2 + t * 4], part[base + 3 + t * 4], part[base + 4 + t * 4], part[base + 5 + t * 4]);
        }
        if (t < D4) {
            const vec4 o = L > 0.0 ? acc / L : vec4(0.0);
            const uint e = pc.o_off + hq * pc.o_hs + t * 4;
            o_x[e] = o.x, o_x[e + 1] = o.y, o_x[e + 2] = o.z, o_x[e + 3] = o.w;
        }
        if (t == 0) part[stats_base + hq * 2] = M, part[stats_base + hq * 2 + 1] = L;
    } else {
        const uint hk = gl_WorkGroupID.y, r = gl_WorkGroupID.x * WG + t;
        const bool ok = r < pc.probs_n;
        float sum = 0.0;
        for (uint g = 0; g < pc.group; ++g) {
            const uint hq = hk * pc.group + g;
            barrier();
            load_q(hq);
            barrier();
            if (ok) sum += exp_below(key_score(hk, r), part[stats_base + hq * 2]) / part[stats_base + hq * 2 + 1];
        }
        if (ok) probs[pc.probs_off + hk * pc.probs_n + r] = sum / float(pc.group);
    }
}
