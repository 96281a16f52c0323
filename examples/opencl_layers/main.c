/* libtca inside an inference runtime's OpenCL loop: this program owns the cl_context, device and
 * one in-order queue, and a stack of 32 layers with Llama-3.1-8B's attention shape (32 query heads,
 * 8 KV heads, head dim 128, f32).  Per layer its own OpenCL kernel makes Q, K and V (a hash of
 * layer, position, head and column plus half of the previous layer's attention output, so every
 * layer depends on the one before), and a chunked TCA cache (tca_cache_create_ex) attends them.
 * Q, K, V and O are regions of ONE cl_mem of ours, wrapped in place with tca_tensor_wrap_opencl.
 *
 * The prompt goes in chunks (as runtimes feed ubatches), then a few decode steps, twice:
 *  - events:   our kernel's event goes to the library (tca_context_opencl_wait_for) and the
 *              library's last event (tca_context_opencl_last_event) into our next kernel's wait
 *              list, so a whole step of 32 layers is enqueued with no host wait; one clFinish per
 *              chunk / decode step.
 *  - blocking: clFinish after every kernel of ours and every library call.
 * It prints the host time spent inside the library calls, the library's counters per decode step
 * (tca_context_counters: a hot path should show no waits, read-backs or allocations) and checks
 * that both ways give the last layer's decode output bit for bit and the same cache sizes.
 *
 * Build against an installed libtca:  cc main.c $(pkg-config --cflags --libs tca OpenCL) -lm
 * Run:  ./a.out [prompt P] [chunk C] [steps N]      (defaults 256 64 4) */
#define _POSIX_C_SOURCE 199309L /* clock_gettime under -std=c99 */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tca/tca.h>

#define TCA(call)                                                                                 \
    do {                                                                                          \
        tca_status s_ = (call);                                                                   \
        if (s_ != TCA_OK) {                                                                       \
            fprintf(stderr, "%s failed: %s: %s\n", #call, tca_status_name(s_), tca_last_error()); \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)
#define CL(call)                                                  \
    do {                                                          \
        cl_int e_ = (call);                                       \
        if (e_ != CL_SUCCESS) {                                   \
            fprintf(stderr, "%s failed: cl_int %d\n", #call, e_); \
            exit(1);                                              \
        }                                                         \
    } while (0)

enum { LAYERS = 32, HQ = 32, HKV = 8, D = 128, ROWS = HQ + 2 * HKV };

/* Our "layer": row y of the output is query head y (y < HQ), KV head y - HQ of K, or of V.  Each KV
 * head takes the previous output of the first query head of its group, as a stand-in for a
 * projection.  The hash is integer arithmetic, so both modes compute the same bits. */
static const char* kernel_source =
    "uint mix(uint x) { x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; return x ^ (x >> 16); }\n"
    "__kernel void make_qkv(__global float* buf, uint q_off, uint k_off, uint v_off, uint o_off,\n"
    "                       int cap, int layer, int pos0, int use_prev) {\n"
    "    const int i = get_global_id(0), t = get_global_id(1), y = get_global_id(2);\n"
    "    uint dst; int src;\n"
    "    if (y < HQ) { dst = q_off + (uint)(y * cap) * D; src = y; }\n"
    "    else if (y < HQ + HKV) { dst = k_off + (uint)((y - HQ) * cap) * D; src = (y - HQ) * (HQ / HKV); }\n"
    "    else { dst = v_off + (uint)((y - HQ - HKV) * cap) * D; src = (y - HQ - HKV) * (HQ / HKV); }\n"
    "    const uint h = mix(mix(mix(mix((uint)layer) ^ (uint)(pos0 + t)) ^ (uint)y) ^ (uint)i);\n"
    "    float x = (float)(h >> 8) * (1.0f / 8388608.0f) - 1.0f;\n" /* [-1, 1) */
    "    if (use_prev) x += 0.5f * buf[o_off + (uint)(src * cap + t) * D + i];\n"
    "    buf[dst + (uint)t * D + i] = x;\n"
    "}\n";

static cl_context clctx;
static cl_device_id dev;
static cl_command_queue queue;
static cl_kernel kernel;
static cl_mem buf;
static tca_context* tctx;
static int cap;                             /* tokens per head in each region: the longest chunk */
static cl_uint q_off, k_off, v_off, o_off; /* region offsets in floats */

/* One set of wrapped tensors per distinct token count: a wrap fixes the shape. */
typedef struct {
    int n;
    tca_tensor *q, *k, *v, *o;
} Wraps;
static Wraps wraps[3];
static int n_wraps;

static tca_tensor* wrap(cl_uint off, int heads, int n) {
    tca_tensor_desc desc;
    memset(&desc, 0, sizeof desc);
    desc.struct_size = sizeof desc;
    desc.dtype = TCA_F32;
    desc.heads = heads, desc.tokens = n, desc.dim = D;
    desc.head_stride = (int64_t)cap * D, desc.token_stride = D;
    tca_tensor* t = NULL;
    TCA(tca_tensor_wrap_opencl(tctx, buf, (size_t)off * sizeof(float), &desc, &t));
    return t;
}

static Wraps* wraps_for(int n) {
    for (int i = 0; i < n_wraps; ++i)
        if (wraps[i].n == n) return &wraps[i];
    Wraps* w = &wraps[n_wraps++];
    w->n = n;
    w->q = wrap(q_off, HQ, n), w->k = wrap(k_off, HKV, n), w->v = wrap(v_off, HKV, n), w->o = wrap(o_off, HQ, n);
    return w;
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

/* Our kernel for `layer` on n tokens at positions pos0..; after `after` when given (events mode). */
static void produce(int layer, int n, int pos0, cl_event after, cl_event* done) {
    const int use_prev = layer > 0; /* layer 0 has no previous output: O still holds the last layer's */
    CL(clSetKernelArg(kernel, 0, sizeof buf, &buf));
    CL(clSetKernelArg(kernel, 1, sizeof q_off, &q_off));
    CL(clSetKernelArg(kernel, 2, sizeof k_off, &k_off));
    CL(clSetKernelArg(kernel, 3, sizeof v_off, &v_off));
    CL(clSetKernelArg(kernel, 4, sizeof o_off, &o_off));
    CL(clSetKernelArg(kernel, 5, sizeof cap, &cap));
    CL(clSetKernelArg(kernel, 6, sizeof layer, &layer));
    CL(clSetKernelArg(kernel, 7, sizeof pos0, &pos0));
    CL(clSetKernelArg(kernel, 8, sizeof use_prev, &use_prev));
    const size_t global[3] = {D, (size_t)n, ROWS};
    CL(clEnqueueNDRangeKernel(queue, kernel, 3, NULL, global, NULL, after ? 1 : 0, after ? &after : NULL, done));
}

typedef struct {
    double prefill_us, decode_us; /* host time inside tca_cache_prefill / tca_cache_decode */
    long prefill_calls, decode_calls;
    long our_waits;               /* our clFinish calls during decode steps */
    tca_counters lib;             /* the library's counter deltas over all decode steps */
    uint64_t prefill_waits;       /* ... and its blocking waits over all prefill chunk calls */
    uint64_t bytes[LAYERS];       /* what each layer's cache holds at the end */
    uint64_t dense_bytes;         /* what dense caches of the same tokens would hold, all layers */
    int tokens[LAYERS];
    float out[HQ * D];            /* the last layer's output of the last decode step */
} Run;

static void counters(tca_counters* c) {
    memset(c, 0, sizeof *c);
    c->struct_size = sizeof *c;
    TCA(tca_context_counters(tctx, c));
}

/* One layer: our kernel, then the cache's call on its outputs. `lib` carries the library's last
 * event from one layer to the next in events mode. */
static void layer_step(tca_cache* cache, int layer, int n, int pos0, int decode, int events, cl_event* lib,
                       Run* r, long* waits) {
    Wraps* w = wraps_for(n);
    if (events) {
        cl_event ours = NULL;
        produce(layer, n, pos0, *lib, &ours);
        if (*lib) CL(clReleaseEvent(*lib));
        *lib = NULL;
        TCA(tca_context_opencl_wait_for(tctx, 1, &ours));
        CL(clReleaseEvent(ours)); /* the library's barrier holds what it needs */
    } else {
        produce(layer, n, pos0, NULL, NULL);
        CL(clFinish(queue));
        ++*waits;
    }
    const double t0 = now_us();
    if (decode)
        TCA(tca_cache_decode(cache, w->q, w->k, w->v, w->o));
    else
        TCA(tca_cache_prefill(cache, w->q, w->k, w->v, w->o));
    const double dt = now_us() - t0;
    if (decode)
        r->decode_us += dt, ++r->decode_calls;
    else
        r->prefill_us += dt, ++r->prefill_calls;
    if (events) {
        TCA(tca_context_opencl_last_event(tctx, lib));
    } else {
        CL(clFinish(queue));
        ++*waits;
    }
}

/* The prompt in chunks, then N decode steps, through the first `layers` layers of fresh caches. */
static void run(int events, const tca_profile* profile, int P, int C, int N, int layers, Run* r) {
    memset(r, 0, sizeof *r);
    tca_cache_options opts;
    memset(&opts, 0, sizeof opts);
    opts.struct_size = sizeof opts;
    TCA(tca_cache_options_init(&opts));
    opts.mode = TCA_CACHE_CHUNKED, opts.max_chunk = C;
    tca_cache* caches[LAYERS];
    for (int l = 0; l < layers; ++l)
        TCA(tca_cache_create_ex(tctx, profile, l, HQ, HKV, D, TCA_F32, P + N, &opts, &caches[l]));

    long unused = 0;
    tca_counters before, after;
    counters(&before);
    for (int pos = 0; pos < P; pos += C) {
        const int n = P - pos < C ? P - pos : C;
        cl_event lib = NULL;
        for (int l = 0; l < layers; ++l) layer_step(caches[l], l, n, pos, 0, events, &lib, r, &unused);
        if (events) CL(clFinish(queue)); /* the runtime's one sync per chunk (it would sample here) */
        if (lib) CL(clReleaseEvent(lib));
    }
    counters(&after);
    r->prefill_waits = after.waits - before.waits;
    counters(&before);
    for (int s = 0; s < N; ++s) {
        cl_event lib = NULL;
        for (int l = 0; l < layers; ++l) layer_step(caches[l], l, 1, P + s, 1, events, &lib, r, &r->our_waits);
        if (events) {
            CL(clFinish(queue)); /* the runtime's one sync per step: it would sample the token here */
            ++r->our_waits;
        }
        if (lib) CL(clReleaseEvent(lib));
    }
    counters(&after);
    r->lib.submits = after.submits - before.submits, r->lib.waits = after.waits - before.waits;
    r->lib.readbacks = after.readbacks - before.readbacks, r->lib.allocations = after.allocations - before.allocations;

    /* Our own read of the last layer's decode output: row 0 of each query head. */
    for (int h = 0; h < HQ; ++h)
        CL(clEnqueueReadBuffer(queue, buf, CL_FALSE, ((size_t)o_off + (size_t)h * cap * D) * sizeof(float),
                               D * sizeof(float), r->out + h * D, 0, NULL, NULL));
    CL(clFinish(queue));
    for (int l = 0; l < layers; ++l) {
        uint64_t dense = 0;
        TCA(tca_cache_size(caches[l], &r->bytes[l], &dense, &r->tokens[l]));
        r->dense_bytes += dense;
        TCA(tca_cache_destroy(caches[l]));
    }
}

/* The prefill line shows the library's blocking waits too: on an in-order queue a blocking wait inside
 * a call drains everything enqueued before it, so in events mode it is where the host time goes. */
static void report(const char* name, const Run* r, int N) {
    printf("%s host %.1f us per prefill-chunk call (library %.3g waits each), %.1f us per decode call; "
           "per decode step: %.3g host wait%s of ours, library %.3g submits, %.3g waits, %.3g read-backs, "
           "%.3g allocations\n",
           name, r->prefill_us / r->prefill_calls, (double)r->prefill_waits / r->prefill_calls,
           r->decode_us / r->decode_calls, (double)r->our_waits / N,
           r->our_waits == N ? "" : "s", (double)r->lib.submits / N, (double)r->lib.waits / N,
           (double)r->lib.readbacks / N, (double)r->lib.allocations / N);
}

int main(int argc, char** argv) {
    const int P = argc > 1 ? atoi(argv[1]) : 256, C = argc > 2 ? atoi(argv[2]) : 64, N = argc > 3 ? atoi(argv[3]) : 4;
    const double keep = 0.25;
    if (P < 1 || C < 1 || N < 1) {
        fprintf(stderr, "usage: %s [prompt P] [chunk C] [steps N]  (each >= 1)\n", argv[0]);
        return 1;
    }
    cap = C < P ? C : P;
    if ((uint64_t)(2 * HQ + 2 * HKV) * cap * D > UINT32_MAX) { /* our kernel indexes with 32 bits */
        fprintf(stderr, "chunk %d is too long for this example\n", cap);
        return 1;
    }

    /* ---- the runtime's own OpenCL objects: the first GPU, else the first device of any kind ---- */
    cl_platform_id platforms[16];
    cl_uint np = 0;
    CL(clGetPlatformIDs(16, platforms, &np));
    if (np > 16) np = 16;
    for (int any = 0; any < 2 && !dev; ++any)
        for (cl_uint p = 0; p < np && !dev; ++p) {
            cl_uint nd = 0;
            if (clGetDeviceIDs(platforms[p], any ? CL_DEVICE_TYPE_ALL : CL_DEVICE_TYPE_GPU, 1, &dev, &nd) != CL_SUCCESS)
                dev = NULL;
        }
    if (!dev) {
        fprintf(stderr, "no OpenCL device\n");
        return 1;
    }
    char dev_name[256] = "";
    CL(clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof dev_name - 1, dev_name, NULL));
    cl_int err = CL_SUCCESS;
    clctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    CL(err);
    queue = clCreateCommandQueue(clctx, dev, 0, &err); /* in-order: what the library requires */
    CL(err);
    cl_program program = clCreateProgramWithSource(clctx, 1, &kernel_source, NULL, &err);
    CL(err);
    char options[64];
    snprintf(options, sizeof options, "-DHQ=%d -DHKV=%d -DD=%d", HQ, HKV, D);
    if (clBuildProgram(program, 1, &dev, options, NULL, NULL) != CL_SUCCESS) {
        char log[4096] = "";
        clGetProgramBuildInfo(program, dev, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, NULL);
        fprintf(stderr, "our kernel failed to build:\n%s\n", log);
        return 1;
    }
    kernel = clCreateKernel(program, "make_qkv", &err);
    CL(err);

    /* One buffer, four regions [heads][cap][D]: Q, K, V, O. */
    const size_t region = (size_t)cap * D;
    q_off = 0, k_off = (cl_uint)(HQ * region), v_off = (cl_uint)((HQ + HKV) * region);
    o_off = (cl_uint)((HQ + 2 * HKV) * region);
    buf = clCreateBuffer(clctx, CL_MEM_READ_WRITE, (2 * HQ + 2 * HKV) * region * sizeof(float), NULL, &err);
    CL(err);

    TCA(tca_context_create_opencl(clctx, dev, queue, &tctx));
    tca_params params;
    memset(&params, 0, sizeof params);
    params.struct_size = sizeof params;
    TCA(tca_params_init(&params));
    params.window = 64, params.block = 16; /* small enough that a short CI prompt is mostly outside the window */
    tca_profile* profile = NULL;
    TCA(tca_profile_fixed(&params, LAYERS, HQ, HKV, D, keep, &profile));

    printf("opencl_layers: %s, %d layers, %d query / %d KV heads, d %d; prompt %d in chunks of %d, %d decode steps, "
           "TCA keep %g\n",
           dev_name, LAYERS, HQ, HKV, D, P, C, N, keep);
    static Run ev, bl; /* static: two output copies are too big for some default stacks */
    /* Untimed warm-up on one layer, so that neither mode pays the library's one-time costs (kernel
     * builds, scratch growth) and the figures compare the steady state a runtime sees. */
    run(0, profile, P, C, 1, 1, &ev);
    run(1, profile, P, C, N, LAYERS, &ev);
    report("events:  ", &ev, N);
    run(0, profile, P, C, N, LAYERS, &bl);
    report("blocking:", &bl, N);

    int ok = memcmp(ev.out, bl.out, sizeof ev.out) == 0;
    if (!ok) fprintf(stderr, "mismatch: the last layer's decode output differs between the modes\n");
    for (int l = 0; l < LAYERS; ++l)
        if (ev.bytes[l] != bl.bytes[l] || ev.tokens[l] != bl.tokens[l]) {
            fprintf(stderr, "mismatch: layer %d holds %llu bytes / %d tokens with events, %llu / %d blocking\n", l,
                    (unsigned long long)ev.bytes[l], ev.tokens[l], (unsigned long long)bl.bytes[l], bl.tokens[l]);
            ok = 0;
        }
    uint64_t total = 0;
    for (int l = 0; l < LAYERS; ++l) total += ev.bytes[l];
    if (ok)
        printf("events == blocking: last layer's output bit-identical, cache sizes equal (%.1f MiB, %.1f%% of dense)\n",
               total / 1048576.0, 100.0 * total / ev.dense_bytes);

    for (int i = 0; i < n_wraps; ++i) {
        TCA(tca_tensor_destroy(wraps[i].q));
        TCA(tca_tensor_destroy(wraps[i].k));
        TCA(tca_tensor_destroy(wraps[i].v));
        TCA(tca_tensor_destroy(wraps[i].o));
    }
    TCA(tca_profile_destroy(profile));
    TCA(tca_context_destroy(tctx)); /* before our queue and buffer: it finishes the queue */
    clReleaseMemObject(buf);
    clReleaseKernel(kernel);
    clReleaseProgram(program);
    clReleaseCommandQueue(queue);
    clReleaseContext(clctx);
    return ok ? 0 : 1;
}
