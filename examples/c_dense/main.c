/* A C program using libtca through its C ABI only: list devices, open the default one, run dense
 * causal prefill and one decode step, and check the decode row against the prefill's last row.
 * Build against an installed libtca:  cc main.c $(pkg-config --cflags --libs tca) -lm */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <tca/tca.h>

#define CHECK(call)                                                                           \
    do {                                                                                      \
        tca_status s_ = (call);                                                               \
        if (s_ != TCA_OK) {                                                                   \
            fprintf(stderr, "%s failed: %s: %s\n", #call, tca_status_name(s_), tca_last_error()); \
            return 1;                                                                         \
        }                                                                                     \
    } while (0)

int main(void) {
    enum { HQ = 4, HKV = 2, L = 300, D = 64 };
    printf("libtca %s (headers %s)\n", tca_version_string(), TCA_VERSION_STRING);
    if (tca_version() / 10000 != TCA_VERSION_MAJOR) return 1;

    int n = 0;
    CHECK(tca_device_count(&n));
    for (int i = 0; i < n; ++i) {
        tca_device_info info = {sizeof(tca_device_info)};
        CHECK(tca_device_get_info(i, &info));
        printf("  %-10s %s\n", info.name, info.device);
    }

    tca_context* ctx = NULL;
    CHECK(tca_context_create(NULL, &ctx)); /* default device (or $TCA_DEVICE) */
    tca_device_info info = {sizeof(tca_device_info)};
    CHECK(tca_context_device_info(ctx, &info));
    printf("running on %s\n", info.name);

    float* q = malloc(sizeof(float) * HQ * L * D);
    float* kv = malloc(sizeof(float) * HKV * L * D);
    float* o = malloc(sizeof(float) * HQ * L * D);
    float* q_last = malloc(sizeof(float) * HQ * D);
    float o_last[HQ * D];
    srand(1);
    for (int i = 0; i < HQ * L * D; ++i) q[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < HKV * L * D; ++i) kv[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int h = 0; h < HQ; ++h)
        for (int i = 0; i < D; ++i) q_last[h * D + i] = q[(h * L + L - 1) * D + i];

    tca_tensor *tq, *tk, *to, *tq1, *to1;
    CHECK(tca_tensor_create(ctx, TCA_F32, HQ, L, D, &tq));
    CHECK(tca_tensor_create(ctx, TCA_F32, HKV, L, D, &tk));
    CHECK(tca_tensor_create(ctx, TCA_F32, HQ, L, D, &to));
    CHECK(tca_tensor_create(ctx, TCA_F32, HQ, 1, D, &tq1));
    CHECK(tca_tensor_create(ctx, TCA_F32, HQ, 1, D, &to1));
    CHECK(tca_tensor_upload(tq, q, sizeof(float) * HQ * L * D));
    CHECK(tca_tensor_upload(tk, kv, sizeof(float) * HKV * L * D)); /* K = V: fine for a demo */
    CHECK(tca_tensor_upload(tq1, q_last, sizeof(float) * HQ * D));

    CHECK(tca_dense_prefill(ctx, tq, tk, tk, to, 0.0f));
    CHECK(tca_dense_decode(ctx, tq1, tk, tk, L, to1, 0.0f));
    CHECK(tca_tensor_download(to, o, sizeof(float) * HQ * L * D));
    CHECK(tca_tensor_download(to1, o_last, sizeof(o_last)));

    double worst = 0;
    for (int h = 0; h < HQ; ++h)
        for (int i = 0; i < D; ++i) worst = fmax(worst, fabs(o_last[h * D + i] - o[(h * L + L - 1) * D + i]));
    printf("decode vs prefill last row: max abs difference %.2e\n", worst);

    /* Bad input is an error with a message, not a crash. */
    if (tca_dense_decode(ctx, tq1, tk, tk, L + 1, to1, 0.0f) == TCA_OK) return 1;
    printf("expected error: %s\n", tca_last_error());

    tca_tensor_destroy(tq), tca_tensor_destroy(tk), tca_tensor_destroy(to);
    tca_tensor_destroy(tq1), tca_tensor_destroy(to1);
    tca_context_destroy(ctx);
    free(q), free(kv), free(o), free(q_last);
    return worst < 1e-4 ? 0 : 1;
}
