/* The TCA method through the C ABI, end to end: calibrate a profile on a synthetic sequence, then
 * run a prompt and several decode steps through a TCA cache and a dense cache side by side, printing
 * each head's keep ratio, the cache bytes against dense and the output error against dense.
 *
 * The synthetic model has two KV heads: head 0 attends to a sink (token 0) and to its last few
 * tokens, as many real heads do; head 1 is flatter.  Calibration should keep few tokens of head 0.
 *
 * Build against an installed libtca:  cc main.c $(pkg-config --cflags --libs tca) -lm
 * Run:  ./a.out [device]      (default: $TCA_DEVICE, else the best device found) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tca/tca.h>

#define CHECK(call)                                                                               \
    do {                                                                                          \
        tca_status s_ = (call);                                                                   \
        if (s_ != TCA_OK) {                                                                       \
            fprintf(stderr, "%s failed: %s: %s\n", #call, tca_status_name(s_), tca_last_error()); \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

enum { HQ = 4, HKV = 2, D = 64, L_CAL = 1024, PROMPT = 768, STEPS = 16, T = PROMPT + STEPS };

/* Deterministic standard normals (xorshift + Box-Muller), so every run prints the same numbers. */
static uint64_t rng = 88172645463325252ull;
static float randn(void) {
    double u[2];
    for (int i = 0; i < 2; ++i) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        u[i] = ((rng >> 11) + 0.5) / 9007199254740992.0;
    }
    return (float)(sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]));
}

/* q [HQ, n, D] and k, v [HKV, n, D] of a sequence of n tokens. */
static void synthesize(int n, float* q, float* k, float* v) {
    static const float local[HKV] = {0.9f, 0.25f}; /* how strongly a query looks like its recent keys */
    static const float sink[HKV] = {0.5f, 0.1f};
    for (int h = 0; h < HKV; ++h) {
        float u[D]; /* the sink direction: in key 0 and in every query of the head */
        for (int i = 0; i < D; ++i) u[i] = randn();
        for (int t = 0; t < n; ++t)
            for (int i = 0; i < D; ++i) {
                k[((size_t)h * n + t) * D + i] = randn() + (t == 0 ? u[i] : 0.f);
                v[((size_t)h * n + t) * D + i] = randn();
            }
        for (int g = 0; g < HQ / HKV; ++g) {
            const int hq = h * (HQ / HKV) + g;
            for (int t = 0; t < n; ++t)
                for (int i = 0; i < D; ++i) {
                    float x = sink[h] * u[i] + 0.3f * randn();
                    for (int back = 0; back < 3 && back <= t; ++back)
                        x += local[h] * (1.0f - 0.3f * back) * k[((size_t)h * n + t - back) * D + i];
                    q[((size_t)hq * n + t) * D + i] = x;
                }
        }
    }
}

/* Rows [r0, r0 + rows) of every head of an [heads, n, D] array, as a new device tensor. */
static tca_tensor* rows_of(tca_context* ctx, const float* x, int heads, int n, int r0, int rows) {
    float* tmp = malloc(sizeof(float) * heads * rows * D);
    for (int h = 0; h < heads; ++h) memcpy(tmp + (size_t)h * rows * D, x + ((size_t)h * n + r0) * D, sizeof(float) * rows * D);
    tca_tensor* t = NULL;
    CHECK(tca_tensor_create(ctx, TCA_F32, heads, rows, D, &t));
    CHECK(tca_tensor_upload(t, tmp, sizeof(float) * heads * rows * D));
    free(tmp);
    return t;
}

static void download(const tca_tensor* t, float* out, int rows) {
    CHECK(tca_tensor_download(t, out, sizeof(float) * HQ * rows * D));
}

/* sum |a - b| / sum |b|: the relative L1 error of TCA's output against dense attention's. */
static double rel_l1(const float* a, const float* b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) num += fabs((double)a[i] - b[i]), den += fabs((double)b[i]);
    return den > 0 ? num / den : 0;
}

int main(int argc, char** argv) {
    tca_context* ctx = NULL;
    CHECK(tca_context_create(argc > 1 ? argv[1] : NULL, &ctx));
    tca_device_info info = {sizeof(tca_device_info)};
    CHECK(tca_context_device_info(ctx, &info));
    printf("libtca %s on %s (%s)\n", tca_version_string(), info.name, info.device);

    tca_params params = {sizeof(tca_params)};
    CHECK(tca_params_init(&params));
    params.block = 32, params.window = 64; /* small enough for a short demo sequence */

    /* 1. Calibration: one forward pass over a calibration sequence (one layer here). */
    const int most = L_CAL > T ? L_CAL : T; /* tokens of the longer of the two sequences */
    float* q = malloc(sizeof(float) * HQ * most * D);
    float* k = malloc(sizeof(float) * HKV * most * D);
    float* v = malloc(sizeof(float) * HKV * most * D);
    synthesize(L_CAL, q, k, v);
    tca_tensor* cq = rows_of(ctx, q, HQ, L_CAL, 0, L_CAL);
    tca_tensor* ck = rows_of(ctx, k, HKV, L_CAL, 0, L_CAL);
    tca_profile* profile = NULL;
    CHECK(tca_calibrate(ctx, &params, 1, (const tca_tensor* const*)&cq, (const tca_tensor* const*)&ck, &profile));
    for (int h = 0; h < HKV; ++h) {
        double ratio = 0;
        CHECK(tca_profile_keep_ratio(profile, 0, h, &ratio));
        printf("calibrated: KV head %d keeps %.1f%% of the tokens outside the window\n", h, 100 * ratio);
    }
    tca_tensor_destroy(cq), tca_tensor_destroy(ck);

    /* 2. A new sequence: prompt + decode steps through a TCA cache and a dense cache. */
    synthesize(T, q, k, v);
    tca_cache *sparse = NULL, *dense = NULL;
    CHECK(tca_cache_create(ctx, profile, 0, HQ, HKV, D, TCA_F32, T, &sparse));
    CHECK(tca_cache_create(ctx, NULL, 0, HQ, HKV, D, TCA_F32, T, &dense));
    float* o_sparse = malloc(sizeof(float) * HQ * PROMPT * D);
    float* o_dense = malloc(sizeof(float) * HQ * PROMPT * D);
    double worst_decode = 0;
    for (int step = -1; step < STEPS; ++step) {
        const int r0 = step < 0 ? 0 : PROMPT + step, rows = step < 0 ? PROMPT : 1;
        tca_tensor* tq = rows_of(ctx, q, HQ, T, r0, rows);
        tca_tensor* tk = rows_of(ctx, k, HKV, T, r0, rows);
        tca_tensor* tv = rows_of(ctx, v, HKV, T, r0, rows);
        tca_tensor *os = NULL, *od = NULL;
        CHECK(tca_tensor_create(ctx, TCA_F32, HQ, rows, D, &os));
        CHECK(tca_tensor_create(ctx, TCA_F32, HQ, rows, D, &od));
        if (step < 0) {
            CHECK(tca_cache_prefill(sparse, tq, tk, tv, os));
            tca_call_stats stats = {sizeof(tca_call_stats)};
            CHECK(tca_context_last_stats(ctx, &stats));
            CHECK(tca_cache_prefill(dense, tq, tk, tv, od));
            printf("prefill of %d tokens: %lld global tokens kept over %d KV heads\n", PROMPT,
                   (long long)stats.kept_tokens, HKV);
        } else {
            CHECK(tca_cache_decode(sparse, tq, tk, tv, os));
            CHECK(tca_cache_decode(dense, tq, tk, tv, od));
        }
        download(os, o_sparse, rows);
        download(od, o_dense, rows);
        const double err = rel_l1(o_sparse, o_dense, (size_t)HQ * rows * D);
        if (step < 0) printf("prefill output: relative L1 error against dense %.4f\n", err);
        else if (err > worst_decode) worst_decode = err;
        tca_tensor_destroy(tq), tca_tensor_destroy(tk), tca_tensor_destroy(tv);
        tca_tensor_destroy(os), tca_tensor_destroy(od);
    }
    printf("%d decode steps: worst relative L1 error against dense %.4f\n", STEPS, worst_decode);

    uint64_t bytes = 0, dense_bytes = 0;
    int tokens = 0;
    CHECK(tca_cache_size(sparse, &bytes, &dense_bytes, &tokens));
    printf("cache after %d tokens: %llu bytes, dense %llu bytes (%.1f%% of dense)\n", tokens,
           (unsigned long long)bytes, (unsigned long long)dense_bytes, 100.0 * bytes / dense_bytes);

    tca_cache_destroy(sparse), tca_cache_destroy(dense);
    tca_profile_destroy(profile);
    tca_context_destroy(ctx);
    free(q), free(k), free(v), free(o_sparse), free(o_dense);
    /* The run is a success when the cache shrank and TCA stayed close to dense. */
    return bytes < dense_bytes && worst_decode < 0.5 ? 0 : 1;
}
