/*
 * libtca — portable TCA-Attention (training-free context-adaptive sparse attention) on
 * OpenCL, Vulkan and a CPU reference.  This is the stable C ABI.
 *
 * Conventions
 *  - Every function returns a tca_status; TCA_OK is 0.  On failure, tca_last_error() returns a
 *    message for the calling thread's most recent failure (valid until the next call on that thread).
 *  - A call that fails (an allocation or a kernel build included) leaves the context, its caches,
 *    every input tensor and every host buffer as they were; only an output tensor (o) of the failed
 *    call may hold partial results.  Retrying the call does what the first attempt would have done.
 *  - Handles are opaque.  A handle belongs to the context it was created from; passing it to
 *    another context is rejected with TCA_ERROR_INVALID_ARGUMENT.
 *  - Tensor layout is [heads, tokens, head_dim]: element (h, t, i) lives at
 *        h * head_stride + t * token_stride + i     (in elements, head_dim contiguous).
 *    Q and O are float32; K and V may be float32 or float16 (accumulation is always float32 or wider).
 *  - Functions are not thread-safe on the same context; distinct contexts may be used concurrently.
 *  - struct_size: every struct passed by pointer starts with `size_t struct_size`, which the caller
 *    sets to sizeof(the struct) as its headers declare it.  Structs grow only by fields added at the
 *    end, so a program built against older (smaller) or newer (bigger) headers keeps working: the
 *    library accepts any struct_size at least the size of the struct's first released version and
 *    reads or writes only the first min(struct_size, its own sizeof) bytes; fields the caller's
 *    version lacks take their defaults on input and are not written on output.  The first
 *    version's size is the offset just past its last first-version field (sizeof without trailing
 *    padding): the end of the field marked "end of the first version", or of the last field of a
 *    struct without the mark.  A struct_size of 0 or below that size is rejected with
 *    TCA_ERROR_INVALID_ARGUMENT.
 *  - Enum-valued inputs (a tca_dtype, a tca_status) are taken as `int`, so any value a caller
 *    passes is defined behaviour; values outside the enum are rejected (TCA_ERROR_INVALID_ARGUMENT)
 *    or, for tca_status_name, named "TCA_ERROR_UNKNOWN".  Passing the enum constants is unchanged.
 */
#ifndef TCA_TCA_H
#define TCA_TCA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define TCA_API __declspec(dllexport)
#else
#  define TCA_API __attribute__((visibility("default")))
#endif

#define TCA_VERSION_MAJOR 0
#define TCA_VERSION_MINOR 1
#define TCA_VERSION_PATCH 0
#define TCA_VERSION_STRING "0.1.0"
#define TCA_VERSION ((TCA_VERSION_MAJOR * 10000) + (TCA_VERSION_MINOR * 100) + TCA_VERSION_PATCH)

typedef enum tca_status {
    TCA_OK = 0,
    TCA_ERROR_INVALID_ARGUMENT = 1, /* null handle, bad shape, unsupported parameter */
    TCA_ERROR_SHAPE_MISMATCH = 2,   /* tensors whose shapes do not fit together */
    TCA_ERROR_NONFINITE_INPUT = 3,  /* NaN or Inf found in an input */
    TCA_ERROR_OUT_OF_MEMORY = 4,    /* allocation beyond the device's limits or failed */
    TCA_ERROR_DEVICE_NOT_FOUND = 5, /* no device of that name */
    TCA_ERROR_KERNEL_BUILD = 6,     /* a kernel or shader failed to build */
    TCA_ERROR_DEVICE_LOST = 7,      /* the device stopped working */
    TCA_ERROR_BACKEND = 8,          /* any other failure reported by the OpenCL / Vulkan driver */
    TCA_ERROR_IO = 9,               /* a file could not be read or written, or is malformed */
    TCA_ERROR_UNSUPPORTED = 10,     /* valid request this device or build cannot serve */
    TCA_ERROR_INTERNAL = 11,        /* a bug in libtca */
    TCA_ERROR_OUT_OF_RANGE = 12     /* finite inputs too large for float32 attention (see "input range") */
} tca_status;

/* TCA_BF16 (added later): the upper 16 bits of the f32, rounded to nearest even (spec "K/V
 * storage formats"); for K/V tensors and caches, like TCA_F16.  Queries and outputs are f32. */
typedef enum tca_dtype { TCA_F32 = 0, TCA_F16 = 1, TCA_BF16 = 2 } tca_dtype;

typedef enum tca_device_type {
    TCA_DEVICE_DISCRETE_GPU = 0,
    TCA_DEVICE_INTEGRATED_GPU = 1,
    TCA_DEVICE_CPU_DRIVER = 2, /* a GPU API implemented on the CPU: PoCL, lavapipe */
    TCA_DEVICE_REFERENCE = 3,  /* libtca's own CPU reference backend */
    TCA_DEVICE_OTHER = 4
} tca_device_type;

/* Library version at run time (compare with TCA_VERSION for the headers you compiled against). */
TCA_API int tca_version(void);
TCA_API const char* tca_version_string(void);

/* Message of the calling thread's last failure ("" if none). */
TCA_API const char* tca_last_error(void);
/* Short name of a status code (a tca_status value), e.g. "TCA_ERROR_SHAPE_MISMATCH";
 * "TCA_ERROR_UNKNOWN" for any other value. */
TCA_API const char* tca_status_name(int status);

/* ---- devices ---------------------------------------------------------------------------- */

typedef struct tca_device_info {
    size_t struct_size;    /* set to sizeof(tca_device_info) by the caller */
    char name[32];         /* "cpu", "opencl:0", "vulkan:1", ... */
    char api[16];          /* "reference", "opencl", "vulkan" */
    char vendor[128];
    char device[256];
    char driver[128];
    tca_device_type type;
    uint64_t global_memory;   /* bytes */
    uint64_t max_allocation;  /* bytes */
    int fp16_storage;         /* 1 if K/V may be stored as float16 */
    int fp16_arithmetic;
    uint32_t subgroup_size;   /* 0 if unknown; end of the first version (0.1.0) */
    int subgroup_ops;         /* added later: 1 if the kernels use subgroup operations on this device */
} tca_device_info;

/* Number of devices found (the reference backend is always one of them). */
TCA_API tca_status tca_device_count(int* count);
/* Information about device `index` (0 <= index < count). */
TCA_API tca_status tca_device_get_info(int index, tca_device_info* info);
/* Name of the device the default choice picks (TCA_DEVICE environment variable, else the best
 * device: discrete GPU, integrated GPU, CPU driver, reference).  `buffer` gets a NUL-terminated name. */
TCA_API tca_status tca_default_device_name(char* buffer, size_t buffer_size);
/* Whether this library was built with a component: "reference" (always), "opencl", "vulkan" or
 * "clblast" (the OpenCL backend's GEMM).  Each GPU backend is optional at configure time; the
 * functions of one left out still exist and fail with TCA_ERROR_UNSUPPORTED, and it lists no
 * devices.  *built gets 1 or 0; an unknown name is TCA_ERROR_INVALID_ARGUMENT. */
TCA_API tca_status tca_build_has(const char* component, int* built);

/* ---- context ------------------------------------------------------------------------------ */

typedef struct tca_context tca_context;

/* Creates a context on a device by name ("cpu", "opencl:0", "vulkan:0"), or the default device
 * when `device_name` is NULL or "". */
TCA_API tca_status tca_context_create(const char* device_name, tca_context** out);
TCA_API tca_status tca_context_destroy(tca_context* ctx);
TCA_API tca_status tca_context_device_info(const tca_context* ctx, tca_device_info* info);

/* ---- tensors (device memory) -------------------------------------------------------------- */

typedef struct tca_tensor tca_tensor;

/* A dense [heads, tokens, dim] tensor in device memory, contiguous (token_stride = dim,
 * head_stride = tokens * dim).  dtype: a tca_dtype value.  One larger than the device's largest
 * buffer (max_allocation) is stored across several buffers of whole heads, transparently;
 * TCA_ERROR_OUT_OF_MEMORY when a single head exceeds max_allocation, or the size overflows 64 bits. */
TCA_API tca_status tca_tensor_create(tca_context* ctx, int dtype, int heads, int tokens, int dim,
                                     tca_tensor** out);
TCA_API tca_status tca_tensor_destroy(tca_tensor* t);
TCA_API tca_status tca_tensor_shape(const tca_tensor* t, tca_dtype* dtype, int* heads, int* tokens, int* dim);
/* Copies host data in/out.  Host data is in the tensor's dtype (float or uint16 fp16 bits),
 * contiguous, exactly heads*tokens*dim elements; `bytes` must equal that size. */
TCA_API tca_status tca_tensor_upload(tca_tensor* t, const void* host, size_t bytes);
TCA_API tca_status tca_tensor_download(const tca_tensor* t, void* host, size_t bytes);

/* ---- input range ---------------------------------------------------------------------------
 *
 * Attention runs in float32 on the GPU backends.  So that finite inputs always give finite outputs,
 * every attention call (tca_dense_prefill, _prefill_chunk, _decode, tca_cache_prefill, _decode,
 * tca_calibrate) first bounds what its kernels will compute, by Cauchy-Schwarz, and fails with
 * TCA_ERROR_OUT_OF_RANGE, writing nothing and changing no state, unless
 *     |scale| * Q * K <= TCA_SCORE_LIMIT,   |scale| * Q <= TCA_SCORE_LIMIT,   V <= TCA_VALUE_LIMIT
 * where Q, K, V are the largest L2 norms of a row (one head and token: head_dim elements) of q, of
 * every key the call can attend to (for a cache: every k it took since create or reset), and of the
 * values; scale is the one in use (1/sqrt(head_dim) when 0 or for caches and calibration).  Within
 * these limits every score, score difference and softmax term stays finite and far from the
 * kernels' mask value, and every sum below FLT_MAX; ordinary activations are many orders of
 * magnitude inside them.  A NaN or infinite scale is TCA_ERROR_INVALID_ARGUMENT.
 *
 * The bounds come from what the library sees: tca_tensor_upload records the largest row norm of
 * the data (as it checks it for NaN/Inf), tca_tensor_create zero-fills (norm 0), and an attention
 * call's output o gets the bound V (a softmax average of rows is no longer than the longest).
 * Wrapped tensors (tca_tensor_wrap_opencl / _vulkan, "zero-copy interop") are your memory, which
 * the library does not read on the way: a product involving one is not checked (tca_calibrate,
 * which copies its inputs to the host, still checks everything).  For wrapped tensors the limits
 * are your side of the contract: within them outputs are finite on every device; beyond them
 * they are unspecified (may be NaN or Inf). */
#define TCA_SCORE_LIMIT 1e20
#define TCA_VALUE_LIMIT 1e20

/* ---- dense attention ---------------------------------------------------------------------- */

/* Causal attention of every query against the keys at or before its position.
 * q: [Hq, L, d] f32; k, v: [Hkv, L, d] (f32 or f16, same dtype); o: [Hq, L, d] f32.
 * Hq must be a multiple of Hkv; d must be 64 or 128 (or any multiple of 4 up to 256);
 * scale 0 means 1/sqrt(d). */
TCA_API tca_status tca_dense_prefill(tca_context* ctx, const tca_tensor* q, const tca_tensor* k,
                                     const tca_tensor* v, tca_tensor* o, float scale);

/* Chunked prefill: q holds Lq query rows at positions q_pos0 .. q_pos0+Lq-1 of a sequence whose
 * keys are k/v [Hkv, Lk, d] (Lk >= q_pos0 + Lq); each row attends causally to keys <= its position.
 * o: [Hq, Lq, d] f32.  tca_dense_prefill is this with q_pos0 = 0 and Lq = Lk. */
TCA_API tca_status tca_dense_prefill_chunk(tca_context* ctx, const tca_tensor* q, const tca_tensor* k,
                                           const tca_tensor* v, tca_tensor* o, int q_pos0, float scale);

/* One query row per head against the first `n_keys` tokens of k/v.
 * q: [Hq, 1, d] f32; k, v: [Hkv, >= n_keys, d]; o: [Hq, 1, d] f32. */
TCA_API tca_status tca_dense_decode(tca_context* ctx, const tca_tensor* q, const tca_tensor* k,
                                    const tca_tensor* v, int n_keys, tca_tensor* o, float scale);

/* ---- TCA: parameters, profiles, calibration ------------------------------------------------- */

/* The method's parameters (spec defaults: block 128, window 4096, tau 0.9, alpha 0.5). */
typedef struct tca_params {
    size_t struct_size; /* set to sizeof(tca_params) by the caller */
    int block;          /* b: tokens per block, a power of two */
    int window;         /* w: local window, always attended, never compressed */
    double tau;         /* retained-mass target of calibration, in (0, 1] */
    double alpha;       /* redundancy weight of the block metric, in [0, 1] */
} tca_params;

/* Fills `params` with the defaults (params->struct_size must be set). */
TCA_API tca_status tca_params_init(tca_params* params);

/* A calibration profile: the keep-budget distribution p* per (layer, KV head), with the
 * parameters and model shape it was made for (versioned JSON on disk; schema in README). */
typedef struct tca_profile tca_profile;

TCA_API tca_status tca_profile_load(const char* path, tca_profile** out);
/* Written atomically: a failure leaves no partial file. */
TCA_API tca_status tca_profile_save(const tca_profile* profile, const char* path);
TCA_API tca_status tca_profile_destroy(tca_profile* profile);
TCA_API tca_status tca_profile_shape(const tca_profile* profile, int* layers, int* q_heads, int* kv_heads,
                                     int* head_dim);
/* Fraction of the global (outside-window) tokens this head kept on the calibration sequence. */
TCA_API tca_status tca_profile_keep_ratio(const tca_profile* profile, int layer, int kv_head, double* ratio);

/* The parameters (block, window, tau, alpha) the profile was made with. */
TCA_API tca_status tca_profile_params(const tca_profile* profile, tca_params* params);

/* What calibration chose for one (layer, KV head) and measured on the calibration sequence. */
typedef struct tca_profile_head {
    size_t struct_size;  /* set to sizeof(tca_profile_head) by the caller */
    int candidate;       /* index of the chosen keep-budget distribution in the profile's candidates */
    double mean_keep;    /* its expected kept tokens per block (sum over k of k p_k), of `block` */
    double covered_mass; /* attention mass it retained there (0 for a fixed-ratio profile: unmeasured) */
    int kept_tokens;     /* global tokens (outside the final window) it kept there */
    int global_tokens;   /* tokens outside the final window there */
    double keep_ratio;   /* kept_tokens / global_tokens (the expected ratio for a fixed profile) */
} tca_profile_head;
TCA_API tca_status tca_profile_head_info(const tca_profile* profile, int layer, int kv_head, tca_profile_head* info);

/* A profile with a fixed budget instead of calibration: every (layer, KV head) uses the log-Gaussian
 * budget distribution (the calibration grid's sigma) whose expected keep ratio is `keep_ratio` in
 * (0, 1]; ratios below 1/block give the sparsest reachable one (every block keeps >= 1 token).
 * NULL params: defaults. */
TCA_API tca_status tca_profile_fixed(const tca_params* params, int layers, int q_heads, int kv_heads, int head_dim,
                                     double keep_ratio, tca_profile** out);

/* Heads sharded across devices (tensor parallelism): the profile of KV heads [kv_head_begin,
 * kv_head_begin + kv_heads) of every layer, with their query heads (g = q_heads / kv_heads per KV
 * head, KV head h serving query heads h*g .. h*g + g - 1), renumbered from 0 and otherwise the same
 * (parameters, candidates, each head's p*).  A runtime that runs each head shard on its own device
 * makes that shard's caches from its slice and hands them that shard's Q/K/V: selection, budgets
 * and outputs are exactly the unsharded cache's for those heads, bit for bit on the same device
 * (every decision is per (layer, KV head), and decode plans its split-K partitions for the whole
 * model's KV heads, which the slice remembers; saved, it is the profile's "shard" object, and a
 * slice of a slice counts from the whole model).  A range outside the profile's KV heads, or empty, is TCA_ERROR_INVALID_ARGUMENT. */
TCA_API tca_status tca_profile_slice(const tca_profile* profile, int kv_head_begin, int kv_heads, tca_profile** out);

/* Offline calibration (one forward pass per layer): q[l] [Hq, L, d] and k[l] [Hkv, L, d] are layer
 * l's calibration tensors on ctx's device; L must exceed params->window.  NULL params: defaults. */
TCA_API tca_status tca_calibrate(tca_context* ctx, const tca_params* params, int layers,
                                 const tca_tensor* const* q, const tca_tensor* const* k, tca_profile** out);

/* ---- TCA: a per-sequence KV cache of one layer -------------------------------------------- */

/* The cache holds the kept global tokens (G), the pending block and the ring of the last w tokens
 * (spec "KV cache").  With profile NULL it is a dense cache (nothing dropped) over the same calls,
 * so a runtime switches methods without changing code.  max_tokens bounds prompt + decode steps. */
typedef struct tca_cache tca_cache;

/* kv_dtype: a tca_dtype value. */
TCA_API tca_status tca_cache_create(tca_context* ctx, const tca_profile* profile, int layer, int q_heads,
                                    int kv_heads, int head_dim, int kv_dtype, int max_tokens,
                                    tca_cache** out);
TCA_API tca_status tca_cache_destroy(tca_cache* cache);
/* Forgets every token; the cache can take a new prompt. */
TCA_API tca_status tca_cache_reset(tca_cache* cache);
/* The prompt: q [Hq, P, d], k/v [Hkv, P, d] (kv_dtype), o [Hq, P, d]; first call after create/reset.
 * With a profile and P > window: selection, sparse prefill and compaction on the device. */
TCA_API tca_status tca_cache_prefill(tca_cache* cache, const tca_tensor* q, const tca_tensor* k,
                                     const tca_tensor* v, tca_tensor* o);
/* One new token: q [Hq, 1, d], k/v [Hkv, 1, d], o [Hq, 1, d]. */
TCA_API tca_status tca_cache_decode(tca_cache* cache, const tca_tensor* q, const tca_tensor* k,
                                    const tca_tensor* v, tca_tensor* o);
/* Bytes the cache holds now (summed over KV heads) and what a dense cache would hold. */
TCA_API tca_status tca_cache_size(const tca_cache* cache, uint64_t* bytes, uint64_t* dense_bytes, int* tokens);

/* ---- chunked prompts (spec "Chunked prompt (streaming prefill)") --------------------------- *
 *
 * A cache made with options->mode = TCA_CACHE_CHUNKED takes the prompt in chunks, as runtimes
 * feed it in ubatches: tca_cache_prefill once per chunk (1..max_chunk tokens, positions
 * continuing from the last chunk), then tca_cache_decode.  Query i of a chunk attends the global
 * store G plus every uncompressed token up to i; after each chunk the full blocks of b tokens
 * that have left the window are compressed by the chunk's last query (the prefill selection rule
 * over those blocks).  A dense cache (profile NULL) in this mode attends causally to everything.
 * Held K/V never exceed |G| + (b - 1) + w + (chunk length) tokens per KV head.
 * Refused (TCA_ERROR_INVALID_ARGUMENT, nothing changes): a chunk longer than max_chunk, one past
 * max_tokens, a chunk after the first decode step; decode before any chunk.  A one-shot cache
 * (tca_cache_create, or mode TCA_CACHE_ONE_SHOT) refuses a second prefill as before. */
typedef enum tca_cache_mode { TCA_CACHE_ONE_SHOT = 0, TCA_CACHE_CHUNKED = 1 } tca_cache_mode;

typedef struct tca_cache_options {
    size_t struct_size; /* set to sizeof(tca_cache_options) by the caller */
    int mode;           /* a tca_cache_mode */
    int max_chunk;      /* chunked: the longest chunk a prefill call may take (>= 1); ignored otherwise */
    /* Added with the cache pools below (a caller whose struct_size ends before it gets NULL):
     * the pool the cache's device memory comes from, NULL for memory of its own. */
    struct tca_cache_pool* pool;
} tca_cache_options;

/* Sets *options to the defaults (one-shot, max_chunk 0, pool NULL); the caller sets struct_size first. */
TCA_API tca_status tca_cache_options_init(tca_cache_options* options);
/* tca_cache_create with options (NULL: one-shot, exactly tca_cache_create).  Bad options
 * (struct_size, unknown mode, chunked with max_chunk <= 0) are TCA_ERROR_INVALID_ARGUMENT. */
TCA_API tca_status tca_cache_create_ex(tca_context* ctx, const tca_profile* profile, int layer, int q_heads,
                                       int kv_heads, int head_dim, int kv_dtype, int max_tokens,
                                       const tca_cache_options* options, tca_cache** out);
/* The most bytes (summed over KV heads) the cache has held since create or reset: for a chunked
 * cache, the largest of G + the uncompressed tokens + a chunk while that chunk was attended, and
 * of what it holds now; dense_bytes the same for a dense cache of the same tokens. */
TCA_API tca_status tca_cache_peak_size(const tca_cache* cache, uint64_t* bytes, uint64_t* dense_bytes);

/* ---- many sequences at once (spec "Many sequences at once") -------------------------------- *
 *
 * A serving runtime decodes many sequences per step.  tca_cache_decode_batch runs one decode step
 * of n caches (each with its own length, position and mode, TCA or dense) and returns exactly what
 * n separate tca_cache_decode calls in array order return, bit for bit on the same device: outputs,
 * cache contents and sizes.  Sequence i's rows are rows i*Hq .. i*Hq+Hq-1 of q and o
 * ([n * Hq, 1, d] f32) and rows i*Hkv .. i*Hkv+Hkv-1 of k and v ([n * Hkv, 1, d] of the caches'
 * kv_dtype).  Every cache must belong to the context of the tensors and share one layer shape
 * (Hq, Hkv, d, kv_dtype); caches may mix profiles, layers, dense and TCA, one-shot and chunked.
 * The input range (above) is checked per cache against the whole batch tensor's largest row.
 *
 * One dispatch per kernel runs for all n sequences when the caches' memory comes from one cache
 * pool (tca_cache_pool_create; options->pool at tca_cache_create_ex) and, for the TCA caches that
 * compress a block this step, their block size matches; caches with memory of their own give the
 * same results through per-cache dispatches.
 * Refused (nothing changes in any cache): n < 1, a NULL or repeated cache, a cache of another
 * context or shape, one not yet prefilled or full, tensors of the wrong shape. */
TCA_API tca_status tca_cache_decode_batch(tca_cache* const* caches, int n, const tca_tensor* q,
                                          const tca_tensor* k, const tca_tensor* v, tca_tensor* o);

/* A cache pool: one device buffer of `bytes` from which caches made with options->pool take
 * their memory (the FlashInfer / vLLM shape: the KV memory is reserved once).  A cache's memory
 * returns to the pool when the cache is destroyed; tca_cache_reset keeps it.  bytes must fit the
 * device's max_allocation (TCA_ERROR_OUT_OF_MEMORY otherwise, and when a cache no longer fits the
 * pool).  Destroying the pool while caches still use it releases the handle; the memory goes
 * when the last of them is destroyed. */
typedef struct tca_cache_pool tca_cache_pool;
TCA_API tca_status tca_cache_pool_create(tca_context* ctx, uint64_t bytes, tca_cache_pool** out);
TCA_API tca_status tca_cache_pool_destroy(tca_cache_pool* pool);
/* Bytes handed to caches now, and the pool's size. */
TCA_API tca_status tca_cache_pool_usage(const tca_cache_pool* pool, uint64_t* used_bytes, uint64_t* capacity_bytes);

/* ---- per-call statistics ---------------------------------------------------------------- */

/* Device time of the most recent attention call on a context, split the way the TCA paper
 * splits it.  Filled only while profiling is on (tca_context_set_profiling); times come from
 * device timestamps (host clock on the reference backend). */
typedef struct tca_call_stats {
    size_t struct_size;   /* set to sizeof(tca_call_stats) by the caller */
    double total_ms;      /* sum of the parts below */
    double score_ms;      /* importance from the last query */
    double metric_ms;     /* redundancy metric per block */
    double sort_ms;       /* block ranking */
    double select_ms;     /* per-block top-t and kept-list construction */
    double attend_ms;     /* attention itself (dense or sparse) */
    double other_ms;      /* KV compaction, eviction, copies */
    int64_t kept_tokens;  /* TCA: kept global tokens summed over KV heads (-1 for dense calls) */
} tca_call_stats;

TCA_API tca_status tca_context_set_profiling(tca_context* ctx, int on);
TCA_API tca_status tca_context_last_stats(const tca_context* ctx, tca_call_stats* stats);

/* Blocks until all work submitted to the context is done. */
TCA_API tca_status tca_context_finish(tca_context* ctx);

/* ---- execution model and host-side costs ---------------------------------------------------
 *
 * On a context made by tca_context_create, attention calls (tca_dense_*, tca_cache_prefill,
 * tca_cache_decode) enqueue their work and return: the device runs it while the host goes on.
 * What waits for it: tca_tensor_download, tca_cache_size, tca_cache_kept_positions,
 * tca_context_last_stats (for the kept-token count, and for the timings while profiling is on),
 * tca_calibrate and tca_context_finish.  tca_tensor_upload copies the caller's memory before it
 * returns; it waits only when queued work still uses the tensor (Vulkan), or always (OpenCL's
 * blocking write), and never makes a later call wait.  Results are the same as the blocking
 * behaviour of earlier versions, bit for bit; a caller who wants it calls tca_context_finish
 * after each call.
 *
 * Once a cache exists (and one warm-up call of the same prompt length has grown the backends'
 * internal scratch), tca_cache_prefill and tca_cache_decode make no device-to-host transfer, no
 * blocking wait and no device allocation: the workspace is sized at creation from max_tokens,
 * and the kept counts and positions stay on the device until one of the calls above asks.
 *
 * Interop contexts (tca_context_create_opencl / _vulkan) keep their rule: each call ends by
 * handing its work to your queue (clFlush; on Vulkan a submit that the call waits for). */

/* What a context's device has done to the host since the context was made (monotonic counts):
 * the cost a hot path must not hide.  Fields past the caller's struct_size are not written. */
typedef struct tca_counters {
    size_t struct_size;    /* set to sizeof(tca_counters) by the caller */
    uint64_t submits;      /* work handed to the queue: vkQueueSubmit, clFlush */
    uint64_t waits;        /* blocking host syncs: fence waits, clFinish, blocking transfers */
    uint64_t readbacks;    /* device-to-host transfers */
    uint64_t allocations;  /* device buffer allocations, staging buffers included */
} tca_counters;

TCA_API tca_status tca_context_counters(const tca_context* ctx, tca_counters* counters);

/* ---- zero-copy interop: your OpenCL or Vulkan objects ----------------------------------------
 *
 * A runtime that already holds Q/K/V on its GPU creates a context on its own cl_context / VkDevice
 * and wraps its own buffers as tensors; every call above then reads and writes them in place.
 *
 * Why these declarations need no OpenCL or Vulkan header: the handle types are declared here as the
 * incomplete struct types that CL/cl.h and vulkan.h themselves use (cl_context is
 * `struct _cl_context*`, VkDevice is `struct VkDevice_T*`), so your handles pass without casts and
 * tca.h still compiles where neither SDK is installed.  VkBuffer is passed as uint64_t because its
 * typedef differs between 32- and 64-bit targets (`(uint64_t)buffer` works on both), the way the
 * Vulkan API itself passes non-dispatchable handles generically (VkDebugUtilsObjectNameInfoEXT).
 *
 * Ownership: the library never destroys or frees what it did not create.  OpenCL objects are
 * retained (clRetain*) while a context or tensor uses them and released when it is destroyed.  Vulkan
 * handles are not reference-counted: your instance, device, queue and buffers must outlive every
 * context and tensor made from them.  Destroying a wrapped tensor never touches your memory.
 *
 * Synchronisation — OpenCL (queue given to tca_context_create_opencl):
 *  - Your queue must be in-order (an out-of-order queue is rejected with TCA_ERROR_UNSUPPORTED).
 *  - Each call enqueues its kernels on your queue after everything you enqueued before it, and
 *    clFlush()es before returning without waiting.  Commands you enqueue later on the same queue
 *    therefore see the results: no event, no clFinish needed.
 *  - Work on another queue: finish it (clFinish, or an event you wait for) before the call, and call
 *    tca_context_finish() (or clFinish on the queue) before another queue reads the results.
 *  - tca_tensor_upload/download are blocking, as for library-made tensors.
 *  - Stage timings (tca_context_set_profiling) need a queue made with CL_QUEUE_PROFILING_ENABLE;
 *    otherwise turning profiling on returns TCA_ERROR_UNSUPPORTED.
 * Synchronisation — Vulkan (queue given to tca_context_create_vulkan):
 *  - Before: every command buffer the library submits to your queue starts with a memory barrier
 *    from ALL_COMMANDS / MEMORY_WRITE to its own compute and transfer reads and writes.  Pipeline
 *    barriers order against all earlier submissions to the same queue, so whatever you submitted
 *    earlier on that queue (uploads, the layer that produced K/V) is complete and visible: you
 *    need no semaphore.  Host writes to your mapped memory made before the call are visible too
 *    (vkQueueSubmit's guarantee; flush them first if the memory is not HOST_COHERENT).
 *  - During: the library submits to your queue and waits on its own fence, so each call returns
 *    with its GPU work complete.  vkQueueSubmit needs external synchronisation: no other thread may
 *    submit to that queue while a call on this context runs.
 *  - After: the library's last command is a barrier from its compute/transfer writes to ALL_COMMANDS
 *    / MEMORY_READ | MEMORY_WRITE (and to HOST reads), so later submissions to the same queue, and
 *    host reads of mapped memory after the call returns, see the results without barriers of yours.
 *  - Another queue: the work is complete when the call returns; your consumer still needs its own
 *    memory barrier (srcAccess SHADER_WRITE) as Vulkan requires across queues.
 *  - Queue family: the queue must belong to `queue_family` and that family must support compute.
 *    Buffers created with VK_SHARING_MODE_EXCLUSIVE must be owned by that family (no ownership
 *    transfer is performed); use the same family for the layers around attention, or CONCURRENT.
 *  - Buffers: created on `device` with VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, bound to memory, at most
 *    the device's maxStorageBufferRange in size (tca_device_info.max_allocation); add TRANSFER_SRC
 *    and TRANSFER_DST if you use tca_tensor_download/upload on the wrapped tensor.
 *  - Features: the library uses only the optional device features you say you enabled
 *    (enabled_features); otherwise it assumes none and takes its fallback paths (f16 K/V read as
 *    32-bit words).  Subgroup operations need no feature bit and are used when the device reports
 *    them.  Extensions: none required.
 *  - The instance must have been created with apiVersion >= 1.1 (given in api_version) and the
 *    physical device must support Vulkan 1.1.  Validation layers you enable stay silent: the
 *    library's own tests run these paths under VK_LAYER_KHRONOS_validation.
 *
 * Threading: as for any context, calls on one interop context must not run concurrently.
 * Handles that are non-null but not valid objects of the API (freed, garbage) are undefined
 * behaviour, as in OpenCL and Vulkan; null handles, mismatched objects (a queue of another
 * cl_context, a cl_mem of another context, a queue family without compute) are rejected.
 */

struct _cl_context;
struct _cl_device_id;
struct _cl_command_queue;
struct _cl_mem;
struct VkInstance_T;
struct VkPhysicalDevice_T;
struct VkDevice_T;
struct VkQueue_T;

/* Shape and layout of a wrapped buffer's tensor: element (h, t, i) at byte
 *     offset + (h * head_stride + t * token_stride + i) * sizeof(dtype).
 * Strides are in elements; 0 for both means contiguous (token_stride = dim, head_stride =
 * tokens * dim).  E.g. a [tokens, heads, dim] KV array is head_stride = dim, token_stride =
 * heads * dim.  tca_tensor_upload/download accept contiguous tensors only. */
typedef struct tca_tensor_desc {
    size_t struct_size; /* set to sizeof(tca_tensor_desc) by the caller */
    int dtype;          /* a tca_dtype value */
    int heads, tokens, dim;
    int64_t head_stride, token_stride;
} tca_tensor_desc;

/* A context on your OpenCL context, device and in-order queue (retained until the context is
 * destroyed; destroying it waits for the queue, clFinish).  Kernels are built for `device` as for
 * "opencl:N" contexts. tca_context_device_info names it "opencl:N" when the device is one the
 * library lists, else "opencl:external". */
TCA_API tca_status tca_context_create_opencl(struct _cl_context* context, struct _cl_device_id* device,
                                             struct _cl_command_queue* queue, tca_context** out);

/* Your cl_mem (from the context's cl_context) at byte `offset` as a tensor, without a copy.  The
 * cl_mem is retained by the tensor and released by tca_tensor_destroy. */
TCA_API tca_status tca_tensor_wrap_opencl(tca_context* ctx, struct _cl_mem* buffer, size_t offset,
                                          const tca_tensor_desc* desc, tca_tensor** out);

/* Events, for runtimes that order work across queues with cl_events (CLBlast's shape).  Both work
 * on any OpenCL context (interop or "opencl:N"); on another device they are TCA_ERROR_INVALID_ARGUMENT.
 *  - tca_context_opencl_wait_for: the next call (and everything the context enqueues after it)
 *    starts only once all `n` events have completed: a barrier with them as its wait list goes
 *    into the context's in-order queue now.  The events must belong to the context's cl_context
 *    (user events included); they are not retained past this call (the queue holds what it needs).
 *  - tca_context_opencl_last_event: *event gets the event of the last attention call's last command
 *    (a marker enqueued as the call ends, before its clFlush), retained for you: release it with
 *    clReleaseEvent.  It completes when the call's outputs are written.  NULL before the first call. */
struct _cl_event;
TCA_API tca_status tca_context_opencl_wait_for(tca_context* ctx, uint32_t n, struct _cl_event* const* events);
TCA_API tca_status tca_context_opencl_last_event(tca_context* ctx, struct _cl_event** event);

/* Optional device features your VkDevice was created with (bits of enabled_features). */
#define TCA_VULKAN_FEATURE_STORAGE_BUFFER_16BIT 0x1u /* VkPhysicalDevice16BitStorageFeatures::storageBuffer16BitAccess */
#define TCA_VULKAN_FEATURE_SHADER_FLOAT16 0x2u /* VkPhysicalDeviceShaderFloat16Int8Features::shaderFloat16 (f16 roofline probe) */

typedef struct tca_vulkan_handles {
    size_t struct_size; /* set to sizeof(tca_vulkan_handles) by the caller */
    struct VkInstance_T* instance;
    struct VkPhysicalDevice_T* physical_device; /* one of instance's */
    struct VkDevice_T* device;                  /* created on physical_device */
    struct VkQueue_T* queue;                    /* a queue of `device` in family queue_family */
    uint32_t queue_family;                      /* must support VK_QUEUE_COMPUTE_BIT */
    uint32_t api_version;      /* VkApplicationInfo::apiVersion the instance was created with (>= 1.1) */
    uint32_t enabled_features; /* TCA_VULKAN_FEATURE_* bits enabled at vkCreateDevice; 0 = none */
} tca_vulkan_handles;

/* A context on your Vulkan instance, device and queue (none of them is destroyed by the library;
 * destroying the context destroys only the library's own pipelines, pools and buffers).
 * tca_context_device_info names it "vulkan:external". */
TCA_API tca_status tca_context_create_vulkan(const tca_vulkan_handles* handles, tca_context** out);

/* Your VkBuffer (of the context's VkDevice, `buffer_size` bytes as created) at byte `offset` as a
 * tensor, without a copy. */
TCA_API tca_status tca_tensor_wrap_vulkan(tca_context* ctx, uint64_t buffer, uint64_t buffer_size, uint64_t offset,
                                          const tca_tensor_desc* desc, tca_tensor** out);

/* Recording into your command buffer (Vulkan interop contexts only).  Between begin and end, every
 * call on the context (cache prefill/decode, dense prefill/decode, tensor create/upload, cache
 * create/reset) appends its dispatches, copies and barriers to `command_buffer` and returns: no
 * vkQueueSubmit, no wait (tca_context_counters: submits and waits do not move).  You end the command
 * buffer and submit it yourself, to the context's queue.  Outside a recording every call keeps the
 * blocking behaviour described above, unchanged.
 *
 *  - tca_context_vulkan_begin_recording: `command_buffer` is in the recording state, primary, from
 *    a pool of the context's queue family.  It gets one barrier at once (the library's earlier
 *    compute/transfer writes, of blocking calls and of earlier recordings, before its later
 *    accesses).  Refused: a null command buffer, a recording already open (INVALID_ARGUMENT); a
 *    library-made or non-Vulkan context, profiling on (UNSUPPORTED / INVALID_ARGUMENT).
 *  - tca_context_vulkan_end_recording: closes the recording (records one barrier, device writes to
 *    HOST reads; does not end the command buffer) and gives its *ticket.  The descriptor sets,
 *    scratch and every buffer its commands use (caches, tensors destroyed meanwhile) stay alive
 *    under the ticket.  Refused without an open recording.
 *  - tca_context_vulkan_release: once your submission of that command buffer has completed (your
 *    fence or timeline semaphore), frees what the ticket kept; its descriptor pools are reused.
 *    An unknown or already released ticket is INVALID_ARGUMENT.  Unreleased tickets are freed by
 *    tca_context_destroy (their work must be complete by then, as for any vkDestroy*).
 *  - Limits: none fixed.  Descriptor pools (256 sets each) are added as a recording fills them,
 *    never waited for; a recording holds about one set per dispatch (a decode step ~4-10) until
 *    released.  Scratch and parameter blocks are reused between calls of one recording, ordered
 *    by the library's barriers; parameters go in with vkCmdUpdateBuffer (copied into the command
 *    buffer), so no host-visible staging is overwritten before the device has read it.
 *
 * Barrier contract of a recorded call (whatever you record around it in the same command buffer):
 *  - Before: your writes to buffers a call reads (Q/K/V, wrapped tensors) are made available to
 *    the call's reads: a barrier with dstStageMask COMPUTE_SHADER | TRANSFER and dstAccessMask
 *    SHADER_READ | TRANSFER_READ.  If you overwrite a buffer an earlier recorded call read or
 *    wrote (the next step's Q), your write waits for it: srcStageMask COMPUTE_SHADER | TRANSFER
 *    (with srcAccessMask SHADER_WRITE | TRANSFER_WRITE if it wrote it).
 *  - Between the library's own commands, and between its consecutive calls, it records the
 *    barriers itself, so back-to-back recorded calls on one cache need nothing of yours.
 *  - After: your reads of a call's outputs need a barrier with srcStageMask COMPUTE_SHADER |
 *    TRANSFER and srcAccessMask SHADER_WRITE | TRANSFER_WRITE; the library adds none per call.
 *    If a later recorded call writes a buffer your commands read in between (an output you
 *    consumed, then the next step overwrites), order your reads before it: a barrier with
 *    srcStageMask the stage of your reads and dstStageMask COMPUTE_SHADER | TRANSFER (write after
 *    read needs the execution dependency only).
 *  - The command buffer's bound compute pipeline, descriptor sets and push constants are
 *    undefined after a recorded call: bind yours again.
 *  - Order: submit recorded command buffers in the order of their tickets, to the context's queue,
 *    before you make a blocking call on the same context (which submits at once).
 *
 * While a recording is open, calls that need results on the host fail with INVALID_ARGUMENT and
 * change nothing: tca_tensor_download, tca_context_finish, tca_context_last_stats' kept count,
 * tca_cache_kept_positions and other exact read-backs, tca_calibrate, tca_device_roofline.
 * Until a ticket is released, reads of buffers it uses fail the same way.  A call that fails
 * validation (bad shape) records nothing and leaves its cache as it was.  Destroying the context
 * with a recording open frees it anyway and returns INVALID_ARGUMENT: that command buffer then
 * references freed objects and must not be submitted.  Submitting the command buffer while the
 * recording is still open is invalid Vulkan usage the library cannot see (the validation layer
 * reports it). */
struct VkCommandBuffer_T;
TCA_API tca_status tca_context_vulkan_begin_recording(tca_context* ctx, struct VkCommandBuffer_T* command_buffer);
TCA_API tca_status tca_context_vulkan_end_recording(tca_context* ctx, uint64_t* ticket);
TCA_API tca_status tca_context_vulkan_release(tca_context* ctx, uint64_t ticket);

/* ---- benchmarking support: build revision, device roofline, kept positions ------------------- */

/* The source revision the library was built from (`git describe` at configure time), or
 * "unknown" when it was not built from a git checkout. */
TCA_API const char* tca_build_revision(void);

/* The device's own limits, measured now on the context's device with probe kernels: a copy
 * kernel (bandwidth), a register-resident multiply-add kernel (the compute peak: independent
 * multiply-add chains in registers, no memory traffic, f32 and f16 where the device has f16
 * arithmetic) and a GEMM (a reference line, not a limit: CLBlast SGEMM/HGEMM on OpenCL, libtca's
 * tiled gemm.comp on Vulkan, a host loop on the reference backend).  Each probe runs once to warm
 * up, then `runs` times; the best run is reported.  Takes well under a second on CPU drivers. */
typedef struct tca_roofline {
    size_t struct_size;     /* set to sizeof(tca_roofline) by the caller */
    double copy_gbps;       /* copy kernel: (bytes read + bytes written) / s / 1e9 */
    double f32_gflops;      /* f32 GEMM: 2 M N K / s / 1e9 */
    double f16_gflops;      /* f16 GEMM; 0 when the device has none (e.g. no cl_khr_fp16) */
    uint64_t copy_bytes;    /* bytes copied per run */
    int gemm_size;          /* M = N = K of the GEMM runs */
    int runs;               /* timed runs per probe */
    int host_timed;         /* 1: host clock and host code (the reference backend), not a device peak */
    char copy_engine[64];   /* what ran each probe, e.g. "tca shaders/copy.comp", "CLBlast SGEMM" */
    char f32_engine[64];
    char f16_engine[64];    /* "" when f16_gflops was not measured; end of the first version (0.1.0) */
    /* added later: the multiply-add peak (2 FLOPs per multiply-add) */
    double fma_f32_gflops;  /* f32 multiply-add peak, GFLOP/s */
    double fma_f16_gflops;  /* f16; 0 when the device has no f16 arithmetic (or it is not enabled) */
    char fma_engine[64];    /* e.g. "tca cl/fma.cl" */
} tca_roofline;

TCA_API tca_status tca_device_roofline(tca_context* ctx, tca_roofline* out);

/* Positions (ascending) of the tokens in the cache's global store G of one KV head: after a TCA
 * prefill, exactly the kept global tokens of the selection.  Lets a caller evaluate what each
 * query attended to (e.g. the spec's error bound).  Writes min(count, capacity) entries to
 * `positions` (may be NULL when capacity is 0); *count gets the full number.  A dense cache, or a
 * prompt no longer than the window, has 0. */
TCA_API tca_status tca_cache_kept_positions(const tca_cache* cache, int kv_head, int32_t* positions, int capacity,
                                            int* count);

/* ---- synthetic workloads ------------------------------------------------------------------ *
 *
 * Deterministic Q/K/V with the attention structures real heads show (what `tca synth` writes and
 * `tca bench` measures on), for tests, benchmarks and calibration experiments without a model.
 * The data depend only on the spec, on every platform.  Kinds:
 *   "sink"      most of every query's mass on the first tokens
 *   "local"     RoPE-like: recent tokens dominate, decaying with distance
 *   "uniform"   near-zero queries: flat attention over the causal prefix
 *   "bipolar"   two regions of L/32 tokens (at L/8 and L/2) hold most of the mass
 *   "retrieval" four "needle" keys at seeded positions in [L/64, L/4)
 *   "random"    q, k ~ N(0, 1): no structure
 *   "mix"       a kind per KV head, cycling local, sink, retrieval, local, bipolar, random
 * V is N(0, 1) for every kind; the query heads of a GQA group share their KV head's structure. */
typedef struct tca_synth_spec {
    size_t struct_size; /* set to sizeof(tca_synth_spec) by the caller */
    const char* kind;   /* one of the kinds above */
    int q_heads;        /* a positive multiple of kv_heads */
    int kv_heads;
    int tokens;         /* L >= 1 */
    int head_dim;       /* d: even, >= 2 */
    uint64_t seed;
} tca_synth_spec;

/* Writes q [q_heads, L, d] and k, v [kv_heads, L, d] as contiguous float32 host arrays; each count
 * (in elements) must equal its array's exactly (TCA_ERROR_SHAPE_MISMATCH otherwise).  A bad kind or
 * shape is TCA_ERROR_INVALID_ARGUMENT.  On failure nothing is written. */
TCA_API tca_status tca_synth_workload(const tca_synth_spec* spec, float* q, size_t q_count, float* k,
                                      size_t k_count, float* v, size_t v_count);
/* The kind KV head `kv_head` of the spec's workload has (spec->kind, or its turn for "mix"), as a
 * static string; validates the spec like tca_synth_workload, without generating anything. */
TCA_API tca_status tca_synth_head_kind(const tca_synth_spec* spec, int kv_head, const char** kind);

#ifdef __cplusplus
}
#endif

#endif /* TCA_TCA_H */
