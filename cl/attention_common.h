// Shared by the attention-family kernels (prefill, decode, score, colsum).
// The host inlines this file in place of the #include line, so programs build without a file
// system; an offline compiler finds it with -I cl. Every parameter has a default so each .cl
// compiles standalone.
#ifndef TCA_ATTENTION_COMMON_H
#define TCA_ATTENTION_COMMON_H

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef KV_HALF
#define KV_HALF 0
#endif
// GQA groups go up to 8: per-group scratch in local/private memory is sized for that.
#define MAX_GROUP 8

#define D4 (HEAD_DIM / 4)
// Finite so that a fully masked row still has a finite max and never yields NaN. Real scores stay
// within +-TCA_SCORE_LIMIT (1e20, tca.h), ten orders of magnitude above it.
#define MASK_VALUE (-1.0e30f)

// exp(x - m) for a logit x recomputed by a later pass against the max m an earlier pass found.
// The passes use the same dot product, but a compiler may still contract it into FMAs differently
// per kernel; a recomputed x above m by a few ulps would then give exp(ulp(1e20)) = inf. Clamping
// at 0 keeps every probability <= 1 / l whatever the rounding.
inline float exp_below(float x, float m) { return exp(fmin(x - m, 0.0f)); }

// K/V are stored as f32 (KV_HALF 0), f16 (1) or bf16 (2); vload_half is core OpenCL 1.2, so f16
// storage needs no extension, bf16 is its f32's upper half (a shift), and every sum runs in float.
#if KV_HALF == 2
typedef ushort kv_t;
#define LOAD_KV4(p, e) as_float4(convert_uint4(vload4(0, (p) + (e))) << 16)
#elif KV_HALF
typedef half kv_t;
#define LOAD_KV4(p, e) vload_half4(0, (p) + (e))
#else
typedef float kv_t;
#define LOAD_KV4(p, e) vload4(0, (p) + (e))
#endif

// A tensor argument is a base pointer plus element offset, head stride and token stride.
// Offsets are passed as numbers rather than sub-buffers, which would need device alignment.
#define TENSOR(T, n) __global T* n, long n##_off, long n##_hs, long n##_ts
#define ROW(n, h, j) ((n##_off) + (long)(h) * (n##_hs) + (long)(j) * (n##_ts))

// Four interleaved partial sums: vectorises, and the order is fixed, so results are
// reproducible run to run. Every kernel computes a q.k logit through this one function so that
// a logit recomputed by a later pass equals the one the earlier pass used.
inline float dot_row(const float4* a, const float4* b) {
    float4 acc = (float4)(0.0f);
    for (int c = 0; c < D4; ++c) acc += a[c] * b[c];
    return (acc.x + acc.y) + (acc.z + acc.w);
}

inline float dot_local_row(__local const float4* a, const float4* b) {
    float4 acc = (float4)(0.0f);
    for (int c = 0; c < D4; ++c) acc += a[c] * b[c];
    return (acc.x + acc.y) + (acc.z + acc.w);
}

// Logits of one q row against four consecutive local rows at once: four independent
// accumulation chains (the single-row loop is one long dependency chain), and each q element
// is loaded once per four keys. Per row the operations and their order are those of dot_row,
// so the results are bitwise the same.
inline float4 dot_row_local4(const float4* a, __local const float4* b) {
    float4 s0 = (float4)(0.0f), s1 = (float4)(0.0f), s2 = (float4)(0.0f), s3 = (float4)(0.0f);
    for (int c = 0; c < D4; ++c) {
        const float4 x = a[c];
        s0 += x * b[c];
        s1 += x * b[D4 + c];
        s2 += x * b[2 * D4 + c];
        s3 += x * b[3 * D4 + c];
    }
    return (float4)((s0.x + s0.y) + (s0.z + s0.w), (s1.x + s1.y) + (s1.z + s1.w), (s2.x + s2.y) + (s2.z + s2.w),
                    (s3.x + s3.y) + (s3.z + s3.w));
}

// The same with the four rows in local memory and the single row private (colsum's layout).
inline float4 dot_local4_row(__local const float4* a, const float4* b) {
    float4 s0 = (float4)(0.0f), s1 = (float4)(0.0f), s2 = (float4)(0.0f), s3 = (float4)(0.0f);
    for (int c = 0; c < D4; ++c) {
        const float4 y = b[c];
        s0 += a[c] * y;
        s1 += a[D4 + c] * y;
        s2 += a[2 * D4 + c] * y;
        s3 += a[3 * D4 + c] * y;
    }
    return (float4)((s0.x + s0.y) + (s0.z + s0.w), (s1.x + s1.y) + (s1.z + s1.w), (s2.x + s2.y) + (s2.z + s2.w),
                    (s3.x + s3.y) + (s3.z + s3.w));
}

// Cooperative copy of `rows` K/V rows (positions in pos[], -1 = absent -> zeros) into a local
// tile of float4, converting f16 to f32 once per element rather than once per use.
inline void load_tile(__local float4* dst, __local const int* pos, int rows, __global const kv_t* src,
                      long off, long hs, long ts, int h, int lid, int nthreads) {
    for (int e = lid; e < rows * D4; e += nthreads) {
        const int r = e / D4, c = e - r * D4;
        const int p = pos[r];
        dst[e] = p >= 0 ? LOAD_KV4(src, off + (long)h * hs + (long)p * ts + 4 * c) : (float4)(0.0f);
    }
}

#endif
