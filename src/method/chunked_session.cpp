// Chunked prompts (spec "Chunked prompt (streaming prefill)"), TCA and dense, on the existing ops.
//
// TCA device state per KV head: one store of Gcap + 2 * Ucap rows (K and V alike):
//   rows [0, Gcap): G, |G_h| rows used (n2_[n2_cur_] on the device; the host knows every |G_h|
//     exactly, because only full blocks are compressed and the budgets depend only on the block
//     count), each row's position in g_pos_;
//   rows [Gcap + c * Ucap, +Ucap), c = cur_: the uncompressed tokens u .. u + n_u - 1, oldest first;
//     the other region is where a compression moves what stays uncompressed (ping-pong: gather's
//     source and destination must not overlap).
// One buffer holds both, so a chunk's attention is one sparse prefill over it: window 1 and the
// kept list G's rows followed by every uncompressed row, the chunk's queries at the rows their
// keys were appended to. A query at row p then sees the kept rows <= p - 1 plus itself: exactly
// G + every position in [u, i]. The chunk's last query's probabilities over that same set come
// from the decode op (segment 1 the uncompressed rows, segment 2 G, probs over the rows to
// compress); metric, rank, select and gather compress them as prefill does.
//
// Failure atomicity as in tca_session.cpp: a call writes only rows past the committed tails, the
// spare region, the spare n2_ buffer and scratch buffers; the host state changes in the call's
// last lines, which cannot throw.
#include "method/chunked_session.h"

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <utility>

#include "core/checked.h"
#include "method/budget.h"
#include "method/candidates.h"
#include "method/device_util.h"

namespace tca::detail::method {

namespace {

// Rows [row0, row0 + n) of every head of t, as a tensor of n tokens.
Tensor rows_view(const Tensor& t, int row0, int n) {
    Tensor r = row_view(t, row0);
    r.tokens = n;
    return r;
}

void check_chunk(int tokens, int c, int max_chunk, int capacity, bool decoding) {
    require(!decoding, TCA_ERROR_INVALID_ARGUMENT,
            "prefill: the cache is decoding; a chunked prompt takes no chunk after the first decode step (reset it first)");
    require(c <= max_chunk, TCA_ERROR_INVALID_ARGUMENT,
            "prefill: a chunk of " + std::to_string(c) + " tokens is longer than the cache's max_chunk " +
                std::to_string(max_chunk));
    require(int64_t(tokens) + c <= capacity, TCA_ERROR_INVALID_ARGUMENT,
            "prefill: the chunk ends at token " + std::to_string(int64_t(tokens) + c) + ", past the cache's max_tokens " +
                std::to_string(capacity));
}

class ChunkedTcaSession final : public AttentionSession {
public:
    ChunkedTcaSession(Device& dev, AttnShape s, const TcaParams& p, std::vector<std::vector<double>> p_star, int capacity,
                      int max_chunk, DType dt)
        : AttentionSession(dev, s, dt), params_(p), p_star_(std::move(p_star)), K_(keep_counts(p.block)) {
        validate_params(p);
        require(int(p_star_.size()) == s.kv_heads, TCA_ERROR_SHAPE_MISMATCH,
                "profile has " + std::to_string(p_star_.size()) + " KV heads, the tensors " + std::to_string(s.kv_heads));
        require(capacity >= 1, TCA_ERROR_INVALID_ARGUMENT, "session capacity must be >= 1");
        require(max_chunk >= 1, TCA_ERROR_INVALID_ARGUMENT, "max_chunk must be >= 1");
        const int b = p.block;
        int kmax = 1;  // no budget exceeds the largest keep count of positive probability
        for (auto& ph : p_star_) {
            validate_distribution(K_, ph, "p* of a KV head");
            t_dec_.push_back(std::min(decode_keep(K_, ph), b));
            for (size_t i = 0; i < K_.size(); ++i)
                if (ph[i] > 0) kmax = std::max(kmax, K_[i]);
        }
        capacity_ = capacity, max_chunk_ = max_chunk;
        // Before a chunk at most w + b - 1 tokens are uncompressed (what a compression leaves: the
        // ring and a partial block), so w + b - 1 + max_chunk while it is attended (decode: w + b).
        ucap_ = int(std::min<int64_t>(int64_t(p.window) + b - 1 + max_chunk, capacity));
        gcap_ = int(std::max<int64_t>(1, std::min<int64_t>(capacity, int64_t(capacity / b) * kmax)));
        const int rows = checked_narrow<int>(int64_t(gcap_) + 2 * int64_t(ucap_), "chunked store rows");
        store_[0] = alloc_tensor(dev, s.kv_heads, rows, s.dim, dt);
        store_[1] = alloc_tensor(dev, s.kv_heads, rows, s.dim, dt);
        kept_stride_ = checked_narrow<int>(int64_t(gcap_) + ucap_, "kept list length");
        kept_ = alloc_zeros(dev, checked_product({s.kv_heads, kept_stride_}, "kept list elements"));
        kept_count_ = alloc_zeros(dev, size_t(s.kv_heads));
        for (auto& n : n2_) n = alloc_zeros(dev, size_t(s.kv_heads));
        g_pos_ = alloc_zeros(dev, checked_product({s.kv_heads, gcap_}, "global-store position elements"));
        const int max_m = std::max(1, ucap_ / b);
        probs_ = alloc_zeros(dev, checked_product({s.kv_heads, max_m, b}, "importance elements"));
        metric_ = alloc_zeros(dev, checked_product({s.kv_heads, max_m}, "block metric elements"));
        order_ = alloc_zeros(dev, checked_product({s.kv_heads, max_m}, "block order elements"));
        budget_ = alloc_zeros(dev, checked_product({s.kv_heads, max_m}, "budget elements"));
        idx_ = alloc_zeros(dev, checked_product({s.kv_heads, ucap_}, "kept index elements"));
        count_ = alloc_zeros(dev, size_t(s.kv_heads));
        zero_order_ = alloc_zeros(dev, size_t(s.kv_heads));
        dec_budget_ = alloc_ints(dev, std::vector<int32_t>(t_dec_.begin(), t_dec_.end()));
        o_last_ = alloc_tensor(dev, s.q_heads, 1, s.dim, DType::f32, s.q_heads / s.kv_heads);
        acc_.bytes_per_token = int64_t(checked_product({2, s.dim, int64_t(dtype_size(dt))}, "K/V bytes per token"));
        acc_.global.assign(s.kv_heads, 0);
    }

    void prefill_on_device(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) override {
        check_call(q, k, v, o, false);
        const int C = q.tokens, w = params_.window, b = params_.block, H = s_.kv_heads;
        check_chunk(acc_.tokens_seen, C, max_chunk_, capacity_, decoding_);
        const int s = acc_.tokens_seen, e = s + C, u = s - n_u_, n = n_u_ + C, r0 = u_row0(cur_);
        // The chunk's K/V join the uncompressed rows (past the committed tail).
        GatherArgs g;
        g.src_k = k, g.src_v = v;
        g.dst_k = rows_view(store_[0], r0 + n_u_, C), g.dst_v = rows_view(store_[1], r0 + n_u_, C);
        g.uniform_count = C;
        dev().gather(g);
        // Kept list per head: G's rows, then every uncompressed row (the chunk's included).
        host_kept_.assign(size_t(H) * kept_stride_, 0);
        std::vector<int32_t> counts(H);
        for (int h = 0; h < H; ++h) {
            int32_t* row = host_kept_.data() + size_t(h) * kept_stride_;
            std::iota(row, row + acc_.global[h], 0);
            std::iota(row + acc_.global[h], row + acc_.global[h] + n, r0);
            counts[h] = acc_.global[h] + n;
        }
        write_ints(dev(), kept_, host_kept_);
        write_ints(dev(), kept_count_, counts);
        PrefillArgs a;
        a.q = q, a.o = o, a.k = store_[0], a.v = store_[1];
        a.q_pos0 = r0 + n_u_, a.window = 1;
        a.kept_idx = kept_, a.kept_count = kept_count_, a.kept_stride = kept_stride_;
        dev().prefill(a);
        // The full blocks of [u, e - w) are compressed (u is 0 or the end of a block).
        const int m = e - w > u ? (e - w - u) / b : 0;
        std::vector<int> gained(H, 0);
        if (m > 0) {
            DecodeArgs d;  // the chunk's last query over G + every uncompressed row
            d.plan_heads = shape().plan_kv_heads;
            d.q = row_view(q, C - 1), d.o = o_last_;
            d.k1 = rows_view(store_[0], r0, ucap_), d.v1 = rows_view(store_[1], r0, ucap_), d.n1 = n;
            set_global_segment(d);
            d.probs = probs_, d.probs_n = m * b;
            dev().decode(d);
            std::vector<int32_t> budgets;
            budgets.reserve(size_t(H) * m);
            for (int h = 0; h < H; ++h) {
                const auto psi = budget_vector(K_, p_star_[h], m);
                budgets.insert(budgets.end(), psi.begin(), psi.end());
                gained[h] = std::accumulate(psi.begin(), psi.end(), 0);
            }
            compress(m, &budgets, n, u);
        }
        int64_t held = 0;  // while the chunk was attended: G + every uncompressed token
        for (int h = 0; h < H; ++h) held += acc_.global[h] + n;
        ChunkSpan span{s, e, u, acc_.global};
        make_room(chunks_);
        // Commit (nothing below throws).
        chunks_.push_back(std::move(span));
        acc_.peak_tokens = std::max(acc_.peak_tokens, held);
        if (m > 0) {
            cur_ = 1 - cur_, n2_cur_ = 1 - n2_cur_;
            n_u_ = n - m * b;
            for (int h = 0; h < H; ++h) acc_.global[h] += gained[h];
        } else {
            n_u_ = n;
        }
        acc_.tokens_seen = e;
        set_tail();
    }

    void decode_on_device(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) override {
        check_call(q, k, v, o, true);
        const int t = acc_.tokens_seen, w = params_.window, b = params_.block;
        require(t > 0, TCA_ERROR_INVALID_ARGUMENT, "decode before any chunk of the prompt");
        require(t < capacity_, TCA_ERROR_INVALID_ARGUMENT, "decode past the session's capacity");
        const int r0 = u_row0(cur_), u = t - n_u_;
        GatherArgs g;  // token t joins the uncompressed rows
        g.src_k = k, g.src_v = v, g.dst_k = row_view(store_[0], r0 + n_u_), g.dst_v = row_view(store_[1], r0 + n_u_);
        g.uniform_count = 1;
        dev().gather(g);
        const int n1 = n_u_ + 1;
        const bool full = n1 == w + b;  // pending (the rows before the ring) holds b tokens
        DecodeArgs a;
        a.plan_heads = shape().plan_kv_heads;
        a.q = q, a.o = o, a.k1 = rows_view(store_[0], r0, ucap_), a.v1 = rows_view(store_[1], r0, ucap_), a.n1 = n1;
        set_global_segment(a);
        if (full) a.probs = probs_, a.probs_n = b;
        dev().decode(a);
        std::vector<int> seen;
        if (step_trace_) {
            seen = acc_.global;
            make_room(step_n2_);
            make_room(step_n1_);
        }
        if (full) compress(1, nullptr, n1, u);
        // Commit (nothing below throws).
        if (step_trace_) {
            step_n2_.push_back(std::move(seen));
            step_n1_.push_back(n1);
        }
        if (!decoding_) prompt_ = t;
        decoding_ = true;
        acc_.tokens_seen = t + 1;
        if (full) {
            cur_ = 1 - cur_, n2_cur_ = 1 - n2_cur_;
            n_u_ = n1 - b;
            for (int h = 0; h < s_.kv_heads; ++h) acc_.global[h] += t_dec_[h];
        } else {
            n_u_ = n1;
        }
        set_tail();
    }

    const CacheAccount& account() override { return acc_; }  // |G| is exact on the host: only full blocks are compressed
    int tokens_seen() const override { return acc_.tokens_seen; }
    std::function<int64_t()> kept_tokens_reader() override {
        int64_t n = 0;
        for (int g : acc_.global) n += g;
        return [n] { return n; };
    }

    Mark mark() const override {
        Mark m;
        m.acc = acc_;
        m.n1 = n_u_, m.cur = cur_, m.n2_cur = n2_cur_, m.prompt = prompt_, m.sparse_prefill = decoding_;
        m.steps = step_n1_.size(), m.chunks = chunks_.size();
        return m;
    }
    void rewind(Mark m) noexcept override {
        acc_ = std::move(m.acc);
        n_u_ = m.n1, cur_ = m.cur, n2_cur_ = m.n2_cur, prompt_ = m.prompt, decoding_ = m.sparse_prefill;
        step_n1_.erase(step_n1_.begin() + std::ptrdiff_t(m.steps), step_n1_.end());
        step_n2_.erase(step_n2_.begin() + std::ptrdiff_t(m.steps), step_n2_.end());
        chunks_.erase(chunks_.begin() + std::ptrdiff_t(m.chunks), chunks_.end());
    }

    std::vector<int> device_global_lengths() override {
        const auto n = read_ints(dev(), n2_[n2_cur_], s_.kv_heads);
        return std::vector<int>(n.begin(), n.end());
    }

    AttentionTrace trace() override {
        AttentionTrace tr;
        tr.dense = false;
        tr.prompt = decoding_ ? prompt_ : acc_.tokens_seen;
        tr.chunks = chunks_;
        const auto pos = read_ints(dev(), g_pos_, checked_product({s_.kv_heads, gcap_}, "global-store position elements"));
        tr.g_positions.assign(s_.kv_heads, {});
        for (int h = 0; h < s_.kv_heads; ++h)
            tr.g_positions[h].assign(pos.begin() + size_t(h) * gcap_, pos.begin() + size_t(h) * gcap_ + acc_.global[h]);
        tr.step_n2 = step_n2_;
        tr.step_n1 = step_n1_;
        tr.steps_recorded = step_trace_;
        return tr;
    }

    CacheContents contents() override {
        CacheContents c;
        const auto n2 = device_global_lengths();
        const auto pos = read_ints(dev(), g_pos_, checked_product({s_.kv_heads, gcap_}, "global-store position elements"));
        const int u = acc_.tokens_seen - n_u_, r0 = u_row0(cur_);
        for (int h = 0; h < s_.kv_heads; ++h) {
            std::vector<int> p(pos.begin() + size_t(h) * gcap_, pos.begin() + size_t(h) * gcap_ + n2[h]);
            for (int r = 0; r < n_u_; ++r) p.push_back(u + r);
            c.positions.push_back(std::move(p));
            auto k = read_rows(dev(), store_[0], h, 0, n2[h]), v = read_rows(dev(), store_[1], h, 0, n2[h]);
            const auto uk = read_rows(dev(), store_[0], h, r0, n_u_), uv = read_rows(dev(), store_[1], h, r0, n_u_);
            k.insert(k.end(), uk.begin(), uk.end());
            v.insert(v.end(), uv.begin(), uv.end());
            c.k_rows.push_back(std::move(k));
            c.v_rows.push_back(std::move(v));
        }
        return c;
    }

private:
    template <class T>
    static void make_room(std::vector<T>& v) {
        if (v.size() == v.capacity()) v.reserve(std::max<size_t>(16, 2 * v.capacity()));
    }

    int u_row0(int c) const { return gcap_ + c * ucap_; }

    // Segment 2 of a decode op: G, |G_h| rows from the device's current lengths.
    void set_global_segment(DecodeArgs& d) const {
        d.k2 = rows_view(store_[0], 0, gcap_), d.v2 = rows_view(store_[1], 0, gcap_), d.n2 = n2_[n2_cur_];
        d.n2_max = *std::max_element(acc_.global.begin(), acc_.global.end());
    }

    // Compresses the first m blocks of the n uncompressed rows (position u on), whose importance
    // the decode op just wrote into probs_ ([heads, m * b]). budgets: by rank, [heads, m], for a
    // chunk (metric and rank first); null for decode (one block, t_dec of it). The kept rows join
    // G (the spare n2_ gets the new lengths), the other n - m * b rows move into the spare region.
    void compress(int m, const std::vector<int32_t>* budgets, int n, int u) {
        const int b = params_.block, H = s_.kv_heads, rows = m * b;
        SelectArgs sa;
        sa.s = probs_, sa.heads = H, sa.s_stride = rows, sa.n_global = rows, sa.block = b;
        sa.idx = idx_, sa.idx_stride = ucap_, sa.count = count_;
        if (budgets) {
            MetricArgs ma;
            ma.s = probs_, ma.heads = H, ma.s_stride = rows, ma.n_global = rows, ma.block = b;
            ma.alpha = float(params_.alpha), ma.h = metric_;
            dev().metric(ma);
            RankArgs ra;
            ra.h = metric_, ra.heads = H, ra.n_blocks = m, ra.order = order_;
            dev().rank(ra);
            write_ints(dev(), budget_, *budgets);
            sa.order = order_, sa.budget = budget_;
        } else {
            sa.order = zero_order_, sa.budget = dec_budget_;
        }
        dev().select(sa);
        const int r0 = u_row0(cur_), r1 = u_row0(1 - cur_);
        GatherArgs g;  // G's rows and the uncompressed rows are disjoint rows of one buffer
        g.src_k = rows_view(store_[0], r0, ucap_), g.src_v = rows_view(store_[1], r0, ucap_);
        g.dst_k = rows_view(store_[0], 0, gcap_), g.dst_v = rows_view(store_[1], 0, gcap_);
        g.idx = idx_, g.idx_stride = ucap_, g.count = count_;
        g.dst_off = n2_[n2_cur_], g.dst_len = n2_[1 - n2_cur_];
        g.pos_out = g_pos_, g.pos_stride = gcap_, g.pos_base = u;
        dev().gather(g);
        if (n > rows) {
            GatherArgs mv;
            mv.src_k = rows_view(store_[0], r0, ucap_), mv.src_v = rows_view(store_[1], r0, ucap_);
            mv.dst_k = rows_view(store_[0], r1, ucap_), mv.dst_v = rows_view(store_[1], r1, ucap_);
            mv.src_row0 = rows, mv.uniform_count = n - rows;
            dev().gather(mv);
        }
    }

    void set_tail() {
        acc_.ring = std::min(n_u_, params_.window);
        acc_.pending = n_u_ - acc_.ring;
    }

    TcaParams params_;
    std::vector<std::vector<double>> p_star_;
    std::vector<int> K_, t_dec_;
    int capacity_ = 0, max_chunk_ = 0, gcap_ = 0, ucap_ = 0, kept_stride_ = 0;
    int n_u_ = 0, cur_ = 0, n2_cur_ = 0, prompt_ = 0;
    bool decoding_ = false;
    Tensor store_[2];  // K, V: [Hkv, gcap_ + 2 * ucap_, d]
    Tensor o_last_;    // the importance pass's (unused) output
    BufView n2_[2], g_pos_, kept_, kept_count_, probs_, metric_, order_, budget_, idx_, count_, zero_order_, dec_budget_;
    std::vector<int32_t> host_kept_;
    CacheAccount acc_;
    std::vector<ChunkSpan> chunks_;
    std::vector<std::vector<int>> step_n2_;
    std::vector<int> step_n1_;
};

class ChunkedDenseSession final : public AttentionSession {
public:
    ChunkedDenseSession(Device& dev, AttnShape s, int capacity, int max_chunk, DType dt) : AttentionSession(dev, s, dt) {
        require(capacity >= 1, TCA_ERROR_INVALID_ARGUMENT, "session capacity must be >= 1");
        require(max_chunk >= 1, TCA_ERROR_INVALID_ARGUMENT, "max_chunk must be >= 1");
        k_ = alloc_tensor(dev, s.kv_heads, capacity, s.dim, dt);
        v_ = alloc_tensor(dev, s.kv_heads, capacity, s.dim, dt);
        capacity_ = capacity, max_chunk_ = max_chunk;
        acc_.bytes_per_token = int64_t(checked_product({2, s.dim, int64_t(dtype_size(dt))}, "K/V bytes per token"));
        acc_.global.assign(s.kv_heads, 0);
    }

    void prefill_on_device(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) override {
        check_call(q, k, v, o, false);
        const int t = acc_.tokens_seen, C = q.tokens;
        check_chunk(t, C, max_chunk_, capacity_, decoding_);
        GatherArgs g;  // the chunk's K/V at rows [t, t + C)
        g.src_k = k, g.src_v = v, g.dst_k = rows_view(k_, t, C), g.dst_v = rows_view(v_, t, C), g.uniform_count = C;
        dev().gather(g);
        PrefillArgs a;  // causal over everything so far
        a.q = q, a.o = o, a.k = rows_view(k_, 0, t + C), a.v = rows_view(v_, 0, t + C), a.q_pos0 = t;
        dev().prefill(a);
        acc_.tokens_seen = acc_.ring = t + C;
        acc_.peak_tokens = std::max(acc_.peak_tokens, int64_t(t + C) * s_.kv_heads);
    }

    void decode_on_device(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) override {
        check_call(q, k, v, o, true);
        const int t = acc_.tokens_seen;
        require(t > 0, TCA_ERROR_INVALID_ARGUMENT, "decode before any chunk of the prompt");
        require(t < capacity_, TCA_ERROR_INVALID_ARGUMENT, "decode past the session's capacity");
        GatherArgs g;
        g.src_k = k, g.src_v = v, g.dst_k = row_view(k_, t), g.dst_v = row_view(v_, t), g.uniform_count = 1;
        dev().gather(g);
        DecodeArgs a;
        a.plan_heads = shape().plan_kv_heads;
        a.q = q, a.o = o, a.k1 = k_, a.v1 = v_, a.n1 = t + 1;
        dev().decode(a);
        if (step_trace_) trace_n1_.push_back(t + 1);
        if (!decoding_) prompt_ = t;
        decoding_ = true;
        acc_.tokens_seen = acc_.ring = t + 1;
    }

    const CacheAccount& account() override { return acc_; }
    int tokens_seen() const override { return acc_.tokens_seen; }
    std::function<int64_t()> kept_tokens_reader() override {
        return [] { return int64_t(-1); };
    }
    Mark mark() const override {
        Mark m;
        m.acc = acc_;
        m.prompt = prompt_, m.sparse_prefill = decoding_, m.steps = trace_n1_.size();
        return m;
    }
    void rewind(Mark m) noexcept override {
        acc_ = std::move(m.acc);
        prompt_ = m.prompt, decoding_ = m.sparse_prefill;
        trace_n1_.erase(trace_n1_.begin() + std::ptrdiff_t(m.steps), trace_n1_.end());
    }
    std::vector<int> device_global_lengths() override { return acc_.global; }

    AttentionTrace trace() override {
        AttentionTrace tr;
        tr.dense = true;
        tr.prompt = decoding_ ? prompt_ : acc_.tokens_seen;
        tr.steps_recorded = step_trace_;
        tr.step_n1 = trace_n1_;
        tr.step_n2.assign(trace_n1_.size(), std::vector<int>(s_.kv_heads, 0));
        tr.g_positions.assign(s_.kv_heads, {});
        return tr;
    }

    CacheContents contents() override {
        CacheContents c;
        const int n = acc_.tokens_seen;
        for (int h = 0; h < s_.kv_heads; ++h) {
            c.positions.emplace_back(n);
            std::iota(c.positions.back().begin(), c.positions.back().end(), 0);
            c.k_rows.push_back(read_rows(dev(), k_, h, 0, n));
            c.v_rows.push_back(read_rows(dev(), v_, h, 0, n));
        }
        return c;
    }

private:
    Tensor k_, v_;
    CacheAccount acc_;
    std::vector<int> trace_n1_;
    int capacity_ = 0, max_chunk_ = 0, prompt_ = 0;
    bool decoding_ = false;
};

}  // namespace

std::unique_ptr<AttentionSession> make_chunked_tca_session(Device& dev, AttnShape shape, const TcaParams& params,
                                                           std::vector<std::vector<double>> p_star, int capacity,
                                                           int max_chunk, DType kv_dtype) {
    return std::make_unique<ChunkedTcaSession>(dev, shape, params, std::move(p_star), capacity, max_chunk, kv_dtype);
}

std::unique_ptr<AttentionSession> make_chunked_dense_session(Device& dev, AttnShape shape, int capacity, int max_chunk,
                                                             DType kv_dtype) {
    return std::make_unique<ChunkedDenseSession>(dev, shape, capacity, max_chunk, kv_dtype);
}

}  // namespace tca::detail::method
