// The device layer: what every backend (cpu reference, opencl, vulkan) implements.
//
// It knows buffers, a fixed set of named attention ops, synchronisation and timestamps — and
// nothing of the TCA method's policy (profiles, budgets, caches). The method (src/method) drives
// these ops; the ops' exact semantics are documented on each argument struct below and are the
// contract the CPU reference defines and the GPU kernels are tested against (tests/).
//
// Tensors are [heads, tokens, dim] with explicit strides in elements; dim is contiguous.
// Integer index/length buffers are int32; score buffers are float32.
// Ops are enqueued in order on one queue; read() and finish() synchronise.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "tca/tca.h"

namespace tca::detail {

enum class Api { reference, opencl, vulkan };

struct DeviceInfo {
    std::string name;  // "cpu", "opencl:0", "vulkan:0"
    Api api = Api::reference;
    std::string vendor, device, driver;
    tca_device_type type = TCA_DEVICE_OTHER;
    uint64_t global_memory = 0;
    uint64_t max_allocation = 0;
    bool fp16_storage = false;     // K/V may be stored as f16 (all backends support it by conversion)
    bool fp16_arithmetic = false;  // native f16 math available (not required by any kernel)
    uint32_t subgroup_size = 0;    // 0 if unknown
    bool subgroup_ops = false;     // subgroup arithmetic/shuffle usable by kernels
};

// Backend-owned storage. The base class only knows the size; backends downcast.
struct BufferImpl {
    virtual ~BufferImpl() = default;
    size_t size = 0;
};
using Buffer = std::shared_ptr<BufferImpl>;

// A byte range inside a buffer (a sub-range view; offset in bytes).
struct BufView {
    Buffer buf;
    size_t offset = 0;
    explicit operator bool() const { return static_cast<bool>(buf); }
};

// A [heads, tokens, dim] tensor view. Strides in elements of `dtype`.
struct Tensor {
    BufView data;
    DType dtype = DType::f32;
    int heads = 0, tokens = 0, dim = 0;
    int64_t head_stride = 0, token_stride = 0;

    static Tensor contiguous(BufView data, DType dtype, int heads, int tokens, int dim) {
        return Tensor{std::move(data), dtype, heads, tokens, dim, int64_t(tokens) * dim, dim};
    }
    // Bytes spanned from data.offset to one past the last element.
    size_t span_bytes() const;
};

// ---- op arguments ---------------------------------------------------------------------------
// GQA: query head hq uses KV head hq / group, group = q.heads / k.heads.
// scale: multiplier of q.k (1/sqrt(d) by default). Masking uses a finite large negative
// (kMaskValue), never -inf, so fully masked rows cannot produce NaN.
constexpr float kMaskValue = -1.0e30f;

// Causal prefill attention, dense or sparse.
//   Query row i of q sits at absolute position p = q_pos0 + i; keys sit at positions 0..k.tokens-1.
//   Dense (kept_idx empty): query p attends to every key j <= p.
//   Sparse (kept_idx given): query p attends to
//        { kept_idx[h][r] : r < kept_count[h], kept_idx[h][r] <= p - window }   (kept global tokens)
//      ∪ { j : p - window < j <= p }                                            (its local window)
//     kept_idx is int32 [k.heads, kept_stride], each row sorted ascending; kept_count int32 [k.heads].
//   Softmax over exactly the attended keys; o[hq][i] = sum_j softmax_j * v[j].
struct PrefillArgs {
    Tensor q, k, v, o;  // q, o: f32 [Hq, Lq, d]; k, v: [Hkv, Lk, d] same dtype
    int q_pos0 = 0;
    float scale = 0.f;
    // sparse only:
    int window = 0;
    BufView kept_idx;
    BufView kept_count;
    int kept_stride = 0;
    bool sparse() const { return static_cast<bool>(kept_idx); }
};

// Decode attention: one query row per head against the union of two key segments.
//   Segment 1: rows [0, n1) of k1/v1 (same count for every KV head) — the dense cache, or the
//              TCA window (ring + pending block).
//   Segment 2: rows [0, n2[h]) of k2/v2, per-KV-head counts from the int32 buffer n2 — the TCA
//              global store. Omitted when k2 has no data.
//   o[hq] = softmax-weighted sum of v over both segments (one softmax over all of them).
//   probs (optional, f32 [k1.heads, probs_n]): for segment-1 rows r < probs_n, the mean over the
//   group's query heads of their softmax probability on that row (the eviction score of the spec).
//   splits: split-K partitions hint (0 = backend chooses); results must not depend on it beyond
//   floating-point reassociation.
struct DecodeArgs {
    Tensor q, o;  // f32 [Hq, 1, d]
    Tensor k1, v1;
    int n1 = 0;
    Tensor k2, v2;
    BufView n2;
    BufView probs;
    int probs_n = 0;
    float scale = 0.f;
    int splits = 0;
    // The caller's bound on max_h n2[h] (-1: unknown, k2.tokens). Only plans the split-K
    // partitions, so that a step's work follows the live rows (the TCA store's |G|), not the
    // store's capacity; a row past it is still attended (the last split takes the rest).
    int n2_max = -1;
    // KV heads the split count is planned for (0: k1.heads); see AttnShape::plan_kv_heads.
    int plan_heads = 0;
    // Rows the split-K partitions are planned over: n1 plus the bound on segment 2.
    int64_t planned_rows() const {
        if (!k2.data) return n1;
        return int64_t(n1) + (n2_max >= 0 && n2_max < k2.tokens ? n2_max : k2.tokens);
    }
};

// Importance: s[h][j] = mean over the group's query heads hq of softmax_j(scale * q[hq][q_row] . k[h][j])
// over keys j < n_keys. s: f32 [k.heads, s_stride].
struct ScoreArgs {
    Tensor q;
    int q_row = 0;
    Tensor k;
    int n_keys = 0;
    float scale = 0.f;
    BufView s;
    int s_stride = 0;
};

// Redundancy metric per block of the global region [0, n_global) of each head's scores:
//   B_j = tokens [j*block, min((j+1)*block, n_global));  S1 = sum s, S2 = sum s^2
//   h[h][j] = (1 - alpha) * S1 + alpha * (1 - S2 / S1^2)   (the second term is 0 when S1 == 0)
// n_blocks = ceil(n_global / block); h: f32 [heads, n_blocks].
// Every backend (the reference too) evaluates it in one scaled form, because s are probabilities
// that are often tiny (1e-25 far from the query: S1 > 0 while S1^2 underflows f32, and S2 / S1^2
// would be 0 / 0) and may be large as well (S2 overflowing):
//   m = max_i |s_i|;  Y1 = sum s_i / m,  Y2 = sum (s_i / m)^2  (both 0 when m == 0)
//   h = (1 - alpha) * m * Y1 + alpha * (Y1 > 0 ? 1 - Y2 / Y1^2 : 0)
// For s >= 0 and m > 0, 1 <= Y1, Y2 <= block, so nothing under- or overflows but m * Y1 itself.
// Subnormal s may be flushed to zero by a GPU (a block of only subnormals then reads as zeros).
struct MetricArgs {
    BufView s;
    int heads = 0, s_stride = 0, n_global = 0, block = 128;
    float alpha = 0.5f;
    BufView h;
};

// Block ranking: order[h][r] = index of the block with rank r, sorting h descending with ties
// broken by the lower block index (NaN ranks as -infinity, so order is always a permutation).
// order: int32 [heads, n_blocks].
struct RankArgs {
    BufView h;
    int heads = 0, n_blocks = 0;
    BufView order;
};

// Per-block top-t selection.
//   Block order[h][r] keeps t = min(budget[h][r], its size) tokens: those with the largest s,
//   ties broken by the lower token index (NaN as -infinity). Output: kept token indices (relative
//   to 0, in [0, n_global)) sorted ascending in idx[h][0..count[h]) (idx row stride idx_stride),
//   count[h] = total kept. budget: int32 [heads, n_blocks] (by rank, each >= 1).
struct SelectArgs {
    BufView s;
    int heads = 0, s_stride = 0, n_global = 0, block = 128;
    BufView order, budget;
    BufView idx;
    int idx_stride = 0;
    BufView count;
};

// Row gather (KV compaction and eviction):
//   for each head h and r < count[h] (or `uniform_count` when count is empty):
//     row = src_row0 + idx[h][r]  (or src_row0 + r when idx is empty)
//     dst[h][dst_off[h] + r] = src[h][row]          for both (src_k -> dst_k) and (src_v -> dst_v)
//     pos_out[h][dst_off[h] + r] = pos_base + row   (if pos_out given; int32 [heads, pos_stride])
//   dst_off: int32 [heads] or empty (0). Then, if dst_len is given, dst_len[h] = dst_off[h] + count.
//   dst_len may be the same buffer as dst_off (append to a growing store): kernels read every
//   offset before any length is written.
//   src and dst must not overlap.
struct GatherArgs {
    Tensor src_k, src_v, dst_k, dst_v;
    int src_row0 = 0;
    BufView idx;
    int idx_stride = 0;
    BufView count;
    int uniform_count = 0;
    BufView dst_off;
    BufView dst_len;
    BufView pos_out;
    int pos_stride = 0;
    int pos_base = 0;
};

// Calibration statistic: mean attention received by each key under full causal attention.
//   A[hq][i][j] = softmax_j<=i(scale * q[hq][i] . k[h][j])
//   c[h][j] = (1 / group) * sum_{hq in group} (sum_{i >= j} A[hq][i][j]) / (L - j)
// c: f32 [k.heads, c_stride]; L = q.tokens = k.tokens. Never materialises L x L.
struct ColsumArgs {
    Tensor q, k;
    float scale = 0.f;
    BufView c;
    int c_stride = 0;
};

// ---- roofline probes (what the benchmark measures the device's own limits with) ----------
// Neither is used by the method; they exist so `tca bench` can report achieved rates as a fraction
// of what this device reaches on the simplest bandwidth-bound and compute-bound work.

// Bandwidth probe: dst[0 .. bytes) = src[0 .. bytes) by a kernel (not a DMA transfer), so it runs
// through the same memory path as the attention kernels. bytes > 0 and a multiple of 16; offsets
// 16-byte aligned; src and dst must not overlap.
struct CopyArgs {
    BufView src, dst;
    size_t bytes = 0;
};

// Compute probe: C[M, N] = A[M, K] * B[K, N], all row-major, contiguous, of `dtype` (f16: IEEE
// half storage). Accumulation in f32 or wider; each output rounded once to dtype.
struct GemmArgs {
    BufView a, b, c;
    DType dtype = DType::f32;
    int m = 0, n = 0, k = 0;
};

// Compute probe: the device's multiply-add peak, register-resident (no memory traffic in the
// loop). out[i] (f32) for i < items is the recurrence of src/iface/iface_fma.h (TCA_FMA_CHAINS
// chains per item, x = x * a + b for `iters` rounds, in `dtype` arithmetic: f32, or f16 where
// fma_supported(f16)), summed over the chains. FLOPs: 2 * items * iters * TCA_FMA_CHAINS.
// |a| < 1 keeps the recurrence contracting (checkable whatever the rounding).
struct FmaArgs {
    BufView out;
    DType dtype = DType::f32;
    uint32_t items = 0, iters = 0;
    float a = 0.5f, b = 0.25f;
};

// ---- ops and stages ---------------------------------------------------------------------------
// Every op a device times. Backends name their timings by this enum, and the report code (the C
// API's tca_call_stats, the roofline, `tca bench`) maps each to a stage by stage_of(), whose switch
// has no default: an op added here without a stage is a compiler warning, never time silently
// counted as "other".
enum class Op { attend_dense, attend_sparse, decode, score, metric, sort, select, gather, colsum, copy, gemm, fma };
// The stages of tca_call_stats: score_ms, metric_ms, sort_ms, select_ms, attend_ms, other_ms.
enum class Stage { score, metric, sort, select, attend, other };

// "attend_dense", "decode", ...: the op's name in traces and reports.
const char* op_name(Op op);
Stage stage_of(Op op);
const char* stage_name(Stage s);  // "score", ..., "other"

// What a device has done to the host since it was made (tca_counters in tca.h): the host-side cost
// that a hot path must not hide. Every backend counts; the split-device decorator forwards its
// backend's (its own temporary buffers are the backend's allocations).
struct DeviceCounters {
    uint64_t submits = 0;      // work handed to the queue (vkQueueSubmit, clFlush)
    uint64_t waits = 0;        // blocking host syncs: fence waits, clFinish, blocking transfers
    uint64_t readbacks = 0;    // device-to-host transfers (read())
    uint64_t allocations = 0;  // device buffer allocations, staging included
};

// One measured op.
struct OpTiming {
    Op op = Op::attend_dense;
    double ms = 0;
};

class Device {
public:
    virtual ~Device() = default;
    virtual const DeviceInfo& info() const = 0;

    // Memory. alloc() throws TCA_ERROR_OUT_OF_MEMORY past max_allocation or on failure.
    virtual Buffer alloc(size_t bytes) = 0;
    // A buffer of `heads` rows of `head_bytes` each ([heads, ...] tensors and per-head arrays).
    // The devices open_device() returns store one larger than max_allocation as several buffers of
    // whole rows, `align` rows a multiple where it can be (the GQA group of a query tensor; 0 when
    // unknown), and run every op on it per head range (device/split_device.h). This default, for
    // a bare backend, is one alloc(). A single row over max_allocation is TCA_ERROR_OUT_OF_MEMORY.
    virtual Buffer alloc_heads(size_t heads, size_t head_bytes, size_t align = 1);
    // Storage as views: what the method allocates through (method/device_util). These defaults give
    // a buffer of its own at offset 0; a cache pool (method/cache_pool.h) hands out ranges of one
    // buffer instead, so that many caches' rows can be reached by one dispatch (the batched ops).
    virtual BufView alloc_view(size_t bytes) { return BufView{alloc(bytes), 0}; }
    virtual BufView alloc_heads_view(size_t heads, size_t head_bytes, size_t align = 1) {
        return BufView{alloc_heads(heads, head_bytes, align), 0};
    }
    virtual void write(const BufView& dst, const void* src, size_t bytes) = 0;
    virtual void read(const BufView& src, void* dst, size_t bytes) = 0;  // blocking
    virtual void fill_zero(const BufView& dst, size_t bytes) = 0;
    virtual void finish() = 0;
    // Hands recorded work to the queue without necessarily waiting for it. Interop contexts call it at
    // the end of every API call so that the caller's later submissions to the same queue run after it.
    virtual void flush() { finish(); }
    // Hands recorded work to the device and returns without waiting (library-made contexts call it at
    // the end of every API call, so the device starts while the host goes on). Never blocks, except
    // where a backend's ring of in-flight submissions is full (counted as a wait).
    virtual void submit() {}
    // Enqueues a host-to-device write of `bytes` from src and returns: src is copied before the call
    // returns (the caller may reuse it at once), nothing waits, and nothing is allocated once the
    // backend's staging has grown to the largest request. Ordered with the ops like any command.
    // dst.offset and bytes must be multiples of 4. The default (a backend that runs ops at once) is write().
    virtual void update(const BufView& dst, const void* src, size_t bytes) { write(dst, src, bytes); }
    virtual DeviceCounters counters() const { return counters_; }

    // Ops (enqueued; see the argument structs for semantics).
    virtual void prefill(const PrefillArgs& a) = 0;
    virtual void decode(const DecodeArgs& a) = 0;
    virtual void score(const ScoreArgs& a) = 0;
    virtual void metric(const MetricArgs& a) = 0;
    virtual void rank(const RankArgs& a) = 0;
    virtual void select(const SelectArgs& a) = 0;
    virtual void gather(const GatherArgs& a) = 0;
    virtual void colsum(const ColsumArgs& a) = 0;
    // Many sequences at once (spec "Many sequences at once"): entry i does exactly what the single op
    // with it does, and results are bit-identical to running the entries one by one in order. No
    // entry may write what another entry reads or writes (each is one sequence's own memory).
    // These defaults run the entries one by one; the GPU backends run every group of entries whose
    // buffers and build constants coincide (caches of one pool) as one dispatch per kernel, each
    // workgroup reading its entry's parameters from a table (iface_*.h, "batched").
    virtual void decode_batch(const std::vector<DecodeArgs>& a) {
        for (const DecodeArgs& x : a) decode(x);
    }
    virtual void gather_batch(const std::vector<GatherArgs>& a) {
        for (const GatherArgs& x : a) gather(x);
    }
    virtual void select_batch(const std::vector<SelectArgs>& a) {
        for (const SelectArgs& x : a) select(x);
    }
    // Roofline probes (see CopyArgs / GemmArgs). gemm() throws TCA_ERROR_UNSUPPORTED for a dtype
    // gemm_supported() denies.
    virtual void stream_copy(const CopyArgs& a) = 0;
    virtual void gemm(const GemmArgs& a) = 0;
    virtual bool gemm_supported(DType t) const = 0;
    // The multiply-add peak probe (FmaArgs); TCA_ERROR_UNSUPPORTED for a dtype fma_supported() denies.
    virtual void fma_probe(const FmaArgs& a) = 0;
    virtual bool fma_supported(DType t) const = 0;
    // The split-K partition count decode() uses for `a` when a.splits is 0, where that choice
    // depends on the number of heads (0: it does not). A decode run as several head ranges passes
    // it on, so that every range reduces in the order the whole op would.
    virtual int decode_splits(const DecodeArgs& a) const {
        (void)a;
        return 0;
    }
    // The device that runs the ops: this one, or the backend a decorating device wraps. Backends
    // downcast it (interop, test hooks), never the decorator.
    virtual Device& backend() { return *this; }
    // What runs gemm() here ("clblast", "tca gemm.comp", "host loop"), for reports.
    virtual std::string gemm_engine(DType t) const = 0;

    // Profiling: when on, every op records its device time (timestamps); take_timings() waits
    // for outstanding work and returns the records since the last call.
    virtual void set_profiling(bool on) { profiling_ = on; }
    bool profiling() const { return profiling_; }
    virtual std::vector<OpTiming> take_timings() = 0;

protected:
    bool profiling_ = false;
    DeviceCounters counters_;
};

// ---- helpers shared by backends ---------------------------------------------------------------

inline float default_scale(float scale, int dim) {
    return scale != 0.f ? scale : 1.0f / std::sqrt(static_cast<float>(dim));
}

// Shape/stride/bounds validation of each op, shared by all backends so that every backend
// rejects bad arguments identically (throws Error with TCA_ERROR_SHAPE_MISMATCH / INVALID_ARGUMENT).
void validate(const PrefillArgs& a);
void validate(const DecodeArgs& a);
void validate(const ScoreArgs& a);
void validate(const MetricArgs& a);
void validate(const RankArgs& a);
void validate(const SelectArgs& a);
void validate(const GatherArgs& a);
void validate(const ColsumArgs& a);
void validate(const CopyArgs& a);
void validate(const GemmArgs& a);
void validate(const FmaArgs& a);

// In 64 bits: n_global + block - 1 overflows int for n_global near INT_MAX.
inline int n_blocks_of(int n_global, int block) {
    return n_global <= 0 ? 0 : int((int64_t(n_global) + block - 1) / block);
}

}  // namespace tca::detail
