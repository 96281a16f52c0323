// One layer's attention over a growing sequence on a Device: a prefill of the prompt, then
// decode steps of one token each. Two implementations share the interface:
//   * dense: every token stays in the cache (the baseline);
//   * TCA: spec Phase 2 prefill selection, then the spec's decode cache (global store G,
//     pending block, ring of the last w tokens) with compression of each full pending block.
// Both drive the device only through device.h ops, so they run on every backend.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "device/device.h"
#include "method/host_tensor.h"
#include "method/params.h"
#include "method/trace.h"

namespace tca::detail::method {

struct AttnShape {
    int q_heads = 0, kv_heads = 0, dim = 0;
    // KV heads decode's split-K is planned for (0: kv_heads). A head shard of a model plans for the
    // whole model's heads, so its partitions, and so its results, are exactly the unsharded ones.
    int plan_kv_heads = 0;
};

// Logical cache contents and their size. Per KV head the cache is |G| + |pending| + |ring|
// tokens; pending and ring lengths are the same for every head, |G| is per head.
struct CacheAccount {
    int tokens_seen = 0;          // tokens processed (prompt + decoded)
    int64_t bytes_per_token = 0;  // K + V bytes of one token of one KV head
    std::vector<int> global;      // |G| per KV head (tokens chosen by selection / eviction)
    int pending = 0;              // tokens that left the ring, not yet compressed
    int ring = 0;                 // the most recent tokens, at most w (dense: every token)
    // Chunked prompts (chunked_session.h): the most tokens held at once, summed over KV heads,
    // while a chunk was attended (G + the uncompressed tokens + the chunk). 0 for the other
    // sessions, whose peak is what they hold now.
    int64_t peak_tokens = 0;

    int cached(int h) const { return global[h] + pending + ring; }
    int64_t tca_bytes(int h) const { return int64_t(cached(h)) * bytes_per_token; }
    int64_t dense_bytes() const { return int64_t(tokens_seen) * bytes_per_token; }
};

// What the cache holds, read back from the device (tests compare it across devices; nothing on
// the hot path uses it). Per KV head: the positions of the cached tokens — G in append order,
// then the uncompressed tail oldest first — and their K and V rows as stored (raw bytes of the
// session's dtype, dim elements per row), so two devices' caches can be compared bit for bit.
struct CacheContents {
    std::vector<std::vector<int>> positions;        // [kv head][row]
    std::vector<std::vector<uint8_t>> k_rows, v_rows;  // [kv head][row * dim * dtype bytes]
};

class AttentionSession {
public:
    AttentionSession(Device& dev, AttnShape shape, DType kv_dtype) : dev_(dev), s_(shape), kv_dtype_(kv_dtype) {}
    virtual ~AttentionSession() = default;

    // Device-resident calls (what the C API uses; no host round trip of the data).
    // Prompt: q/o f32 [Hq, P, d], k/v [Hkv, P, d] of the session's K/V dtype. Called once, first.
    virtual void prefill_on_device(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) = 0;
    // One new token: q/o f32 [Hq, 1, d], k/v [Hkv, 1, d] of the session's K/V dtype.
    virtual void decode_on_device(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) = 0;

    // Host conveniences over the calls above (tests, CLI): upload, run, download.
    // q [Hq, P, d], k/v [Hkv, P, d]; returns o [Hq, P, d].
    HostTensor prefill(const HostTensor& q, const HostTensor& k, const HostTensor& v);
    // One new token: q [Hq * d], k/v [Hkv * d] (head-major); returns o [Hq * d].
    std::vector<float> decode(const float* q, const float* k, const float* v);

    AttnShape shape() const { return s_; }
    DType kv_dtype() const { return kv_dtype_; }
    // The cache's account, exact. |G| lives on the device (prefill's selection sets it there, and the
    // host knows only a bound unless every block was full): the first account() after such a prefill
    // reads it back once. The hot path never calls it; it uses tokens_seen() and the bound.
    virtual const CacheAccount& account() = 0;
    virtual int tokens_seen() const = 0;
    // |G| per KV head as the device holds it (a read-back; tests compare it with account()).
    virtual std::vector<int> device_global_lengths() = 0;
    // Kept global tokens summed over KV heads for the call stats (-1: dense), evaluated when the
    // stats are read: it reads the device's |G| (as it stands after the last call) only then.
    virtual std::function<int64_t()> kept_tokens_reader() = 0;
    // What every query so far attended to (reads G's positions back from the device). The per-step
    // records (step_n1/step_n2, what each decode query saw) exist only while step tracing is on;
    // without them trace() still gives G's positions and the prefill selection.
    virtual AttentionTrace trace() = 0;
    // Per-step tracing costs host memory on every decode step (it grows without bound), so only the
    // error-bound tools (tests, `tca attend`) turn it on; library caches run without it. Turn it on
    // before the first call.
    void set_step_trace(bool on) { step_trace_ = on; }
    bool step_trace() const { return step_trace_; }
    virtual CacheContents contents() = 0;

    // Input range (tca.h, "input range"; core/range.h): bounds on the largest row norm of a call's
    // q, k and v (kNormUnknown: not known, that product unchecked). check_range() throws
    // TCA_ERROR_OUT_OF_RANGE, changing nothing, when q against every key taken so far and this
    // call's k could leave the range; admit() records the call's k and v once it has succeeded.
    // The host wrappers above do both themselves.
    void check_range(double q, double k, double v, const char* what) const;
    void admit(double k, double v);
    // The longest value row taken so far: every output row is a softmax average of such rows.
    double value_norm() const { return v_norm_; }

protected:
    // Checks the shapes of a prefill (tokens = P) or decode (one_token: tokens = 1) call.
    void check_call(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, bool one_token) const;

    // Undo for the host wrappers, whose download can fail after the device call completed. A call
    // writes the device only where the state it started from does not look (rows past the tail and
    // past G, spare buffers), so restoring the host state it started from undoes it completely.
    struct Mark {
        CacheAccount acc;
        int n1 = 0, cur = 0, n2_cur = 0, prompt = 0;
        bool sparse_prefill = false, global_exact = true;
        size_t steps = 0;  // trace entries
        size_t chunks = 0;  // chunk records (chunked sessions)
    };
    virtual Mark mark() const = 0;
    virtual void rewind(Mark m) noexcept = 0;

    // The device the session's ops go to: its own, or while a batched call records them
    // (method/batch.h), the recorder. Storage, read-backs and the host wrappers use dev_ itself.
    Device& dev() { return ops_ ? *ops_ : dev_; }

    Device& dev_;
    AttnShape s_;
    DType kv_dtype_;
    bool step_trace_ = true;

private:
    friend class BatchDecode;  // method/batch.h: marks, redirects ops, rewinds on failure
    Device* ops_ = nullptr;
    Tensor step_[4];  // host decode staging: q, k, v, o of one token
    double k_norm_ = 0, v_norm_ = 0;  // largest row norms of every k and v taken (sessions start empty)
};

// capacity: the most tokens the session will see (prompt + decode steps).
std::unique_ptr<AttentionSession> make_dense_session(Device& dev, AttnShape shape, int capacity,
                                                     DType kv_dtype = DType::f32);
// p_star: one distribution over keep_counts(params.block) per KV head.
std::unique_ptr<AttentionSession> make_tca_session(Device& dev, AttnShape shape, const TcaParams& params,
                                                   std::vector<std::vector<double>> p_star, int capacity,
                                                   DType kv_dtype = DType::f32);

}  // namespace tca::detail::method
