// TCA prefill + decode (spec Phase 2, Sparse attention, KV cache).
//
// Device state per KV head:
//   G (g_k_, g_v_): the global store, capacity = every token the session may see, with its length
//     in n2_[n2_cur_] (int32 [Hkv], grown on the device by gather's dst_len into the other n2_
//     buffer) and each row's position in g_pos_ (int32 [Hkv, capacity]) for reporting;
//   the window buffer (win_[cur_]): rows [0, n1_) hold the uncompressed tail, oldest first —
//     the pending block (rows [0, n1_ - w) once the ring is full) followed by the ring. It has
//     w + b rows: when it fills, this step's attention also returns the eviction scores of the
//     first b rows, the best t_dec of them are appended to G, and the last w rows move down into
//     the other window buffer (ping-pong: gather's source and destination must not overlap).
//
// Hot path: after creation, prefill and decode read nothing back, wait for nothing and allocate
// nothing on the device. The selection's workspace (scores, metric, order, budgets, kept indices
// and counts) is sized here from the capacity; the budgets are computed on the host (they depend
// only on p* and the block count) and enqueued with Device::update before the ranking. G's exact
// lengths stay on the device; the host keeps a bound (acc_.global with global_exact_ false, exact
// when every prompt block was full), which plans decode's split-K (n2_max), and account(),
// trace(), contents() and the call stats read the device only when asked.
//
// Failure atomicity: a call that throws (an allocation or a kernel build failing at any op) leaves
// the session as it was. Every device write of a call goes where the committed state does not look:
// rows past the window's tail n1_, rows past G's lengths, the spare window buffer, the spare n2_
// buffer. The host state — and which buffers are current — changes only in the call's last lines,
// which cannot throw. A retried call then does exactly what the first attempt would have done.
#include <algorithm>
#include <cstddef>
#include <utility>

#include "core/checked.h"
#include "method/candidates.h"
#include "method/device_util.h"
#include "method/selection.h"
#include "method/session.h"

namespace tca::detail::method {

namespace {

class TcaSession final : public AttentionSession {
public:
    TcaSession(Device& dev, AttnShape s, const TcaParams& p, std::vector<std::vector<double>> p_star, int capacity,
               DType dt)
        : AttentionSession(dev, s, dt), params_(p), p_star_(std::move(p_star)), K_(keep_counts(p.block)) {
        validate_params(p);
        require(int(p_star_.size()) == s.kv_heads, TCA_ERROR_SHAPE_MISMATCH,
                "profile has " + std::to_string(p_star_.size()) + " KV heads, the tensors " + std::to_string(s.kv_heads));
        require(capacity >= 1, TCA_ERROR_INVALID_ARGUMENT, "session capacity must be >= 1");
        for (size_t h = 0; h < p_star_.size(); ++h) {
            validate_distribution(K_, p_star_[h], "p* of a KV head");
            t_dec_.push_back(decode_keep(K_, p_star_[h]));
        }
        // w + b rows per window buffer: in 64 bits, then it must fit the int32 row counts the ops take.
        const int wb = checked_narrow<int>(uint64_t(p.window) + uint64_t(p.block), "window + block rows");
        g_k_ = alloc_tensor(dev, s.kv_heads, capacity, s.dim, dt);
        g_v_ = alloc_tensor(dev, s.kv_heads, capacity, s.dim, dt);
        // Per-head rows, so that each may be split between heads like the stores.
        g_pos_ = alloc_zero_rows(dev, s.kv_heads, size_t(capacity));
        for (auto& n : n2_) n = alloc_zero_rows(dev, s.kv_heads, 1);
        for (auto& buf : win_)
            for (auto& kv : buf) kv = alloc_tensor(dev, s.kv_heads, wb, s.dim, dt);
        probs_ = alloc_zero_rows(dev, s.kv_heads, size_t(p.block));
        zero_order_ = alloc_zero_rows(dev, s.kv_heads, 1);  // one block of rank 0 per head
        dec_budget_ = alloc_int_rows(dev, s.kv_heads, std::vector<int32_t>(t_dec_.begin(), t_dec_.end()));
        dec_idx_ = alloc_zero_rows(dev, s.kv_heads, size_t(p.block));
        dec_count_ = alloc_zero_rows(dev, s.kv_heads, 1);
        if (capacity > p.window) ws_ = make_selection_workspace(dev, s.kv_heads, capacity, capacity - p.window, p.block);
        acc_.bytes_per_token = int64_t(checked_product({2, s.dim, int64_t(dtype_size(dt))}, "K/V bytes per token"));
        acc_.global.assign(s.kv_heads, 0);
        capacity_ = capacity;
    }

    void prefill_on_device(const Tensor& qd, const Tensor& kd, const Tensor& vd, const Tensor& o) override {
        check_call(qd, kd, vd, o, false);
        const int P = qd.tokens, w = params_.window;
        require(acc_.tokens_seen == 0, TCA_ERROR_INVALID_ARGUMENT, "prefill: the session already holds a prompt (reset it first)");
        require(P <= capacity_, TCA_ERROR_INVALID_ARGUMENT, "prompt longer than the session's capacity");
        PrefillArgs a;
        a.q = qd, a.k = kd, a.v = vd, a.o = o;
        std::vector<int> global(s_.kv_heads, 0);
        bool exact = true;
        if (P > w) {
            // Spec Phase 2 over the global region [0, P - w). The budgets go first, from the host:
            // update() copies them into the queue, so nothing waits for the ranking before select.
            const int n_global = P - w, nb = n_blocks_of(n_global, params_.block);
            const auto budgets = head_budgets(K_, p_star_, nb);
            const std::vector<int32_t> flat = flat_budgets(budgets, nb);
            global = budget_bounds(budgets, n_global, params_.block);
            exact = n_global % params_.block == 0;
            dev().update(ws_.budget, flat.data(), checked_mul(flat.size(), 4, "budget bytes"));
            const BlockRanking r = rank_blocks(dev(), qd, kd, n_global, params_.block, float(params_.alpha), &ws_);
            const Selection sel{ws_.idx, ws_.idx_stride, ws_.count};
            select_tokens(dev(), r, ws_.budget, sel);
            a.window = w, a.kept_idx = sel.idx, a.kept_count = sel.count, a.kept_stride = sel.idx_stride;
            dev().prefill(a);
            // The compact cache: kept tokens into G (positions recorded), the last w into the window.
            GatherArgs g;
            g.src_k = kd, g.src_v = vd, g.dst_k = g_k_, g.dst_v = g_v_;
            g.idx = sel.idx, g.idx_stride = sel.idx_stride, g.count = sel.count;
            g.dst_len = n2_[1 - n2_cur_], g.pos_out = g_pos_, g.pos_stride = capacity_;
            dev().gather(g);
        } else {
            dev().prefill(a);  // nothing outside the window: dense, nothing dropped
        }
        const int n1 = std::min(P, w);
        GatherArgs g;
        g.src_k = kd, g.src_v = vd, g.dst_k = win_[cur_][0], g.dst_v = win_[cur_][1];
        g.src_row0 = P - n1, g.uniform_count = n1;
        dev().gather(g);
        // Commit (nothing below throws).
        if (P > w) n2_cur_ = 1 - n2_cur_;
        acc_.global = std::move(global);
        global_exact_ = exact;
        n1_ = n1;
        acc_.tokens_seen = P;
        acc_.ring = n1;
        acc_.pending = 0;
        prompt_ = P;
        sparse_prefill_ = P > w;
    }

    void decode_on_device(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o) override {
        check_call(q, k, v, o, true);
        const int t = acc_.tokens_seen, w = params_.window, b = params_.block;
        require(t < capacity_, TCA_ERROR_INVALID_ARGUMENT, "decode past the session's capacity");
        const Tensor& wk = win_[cur_][0];
        const Tensor& wv = win_[cur_][1];
        // Token t joins the ring at row n1_ (past the committed tail); if the ring held w tokens its
        // oldest is now pending (same rows).
        GatherArgs g;
        g.src_k = k, g.src_v = v, g.dst_k = row_view(wk, n1_), g.dst_v = row_view(wv, n1_), g.uniform_count = 1;
        dev().gather(g);
        const int n1 = n1_ + 1;
        const bool compress = n1 == w + b;  // pending holds b tokens after this step's attention
        DecodeArgs a;
        a.plan_heads = shape().plan_kv_heads;
        a.q = q, a.o = o, a.k1 = wk, a.v1 = wv, a.n1 = n1;
        a.k2 = g_k_, a.v2 = g_v_, a.n2 = n2_[n2_cur_];
        // G's lengths are on the device; the host's account bounds them, so the split-K partitions
        // follow |G| rather than the store's capacity.
        a.n2_max = acc_.global.empty() ? 0 : *std::max_element(acc_.global.begin(), acc_.global.end());
        if (compress) a.probs = probs_, a.probs_n = b;
        dev().decode(a);
        // What this query saw (the G prefix and the tail), for the trace (only with step tracing on);
        // room made now so that the commit cannot fail.
        std::vector<int> seen;
        if (step_trace_) {
            seen = account().global;  // traced sessions (tools, tests) read |G| once if only bounded
            make_room(step_n2_);
            make_room(step_n1_);
        }
        if (compress) compress_pending(t, n1);
        // Commit (nothing below throws).
        if (step_trace_) {
            step_n2_.push_back(std::move(seen));
            step_n1_.push_back(n1);
        }
        acc_.tokens_seen = t + 1;
        if (compress) {
            cur_ = 1 - cur_;
            n2_cur_ = 1 - n2_cur_;
            n1_ = w;
            for (int h = 0; h < s_.kv_heads; ++h) acc_.global[h] += std::min(t_dec_[h], b);
        } else {
            n1_ = n1;
        }
        acc_.ring = std::min(n1_, w);
        acc_.pending = n1_ - acc_.ring;
    }

    const CacheAccount& account() override {
        if (!global_exact_) {
            acc_.global = device_global_lengths();  // G's lengths as committed: nothing else changes
            global_exact_ = true;
        }
        return acc_;
    }
    int tokens_seen() const override { return acc_.tokens_seen; }
    std::function<int64_t()> kept_tokens_reader() override {
        if (global_exact_) {
            int64_t n = 0;
            for (int g : acc_.global) n += g;
            return [n] { return n; };
        }
        // The committed lengths buffer; later calls on this cache write the other one first and
        // replace the context's stats before they could change it.
        Device* dev = &dev_;  // the owner, never a batch recorder: the reader runs later
        const BufView n2 = n2_[n2_cur_];
        const int heads = s_.kv_heads;
        return [dev, n2, heads] {
            int64_t n = 0;
            for (int32_t g : read_ints(*dev, n2, size_t(heads))) n += g;
            return n;
        };
    }

    Mark mark() const override {
        Mark m;
        m.acc = acc_;
        m.n1 = n1_, m.cur = cur_, m.n2_cur = n2_cur_, m.prompt = prompt_, m.sparse_prefill = sparse_prefill_;
        m.global_exact = global_exact_;
        m.steps = step_n1_.size();
        return m;
    }
    void rewind(Mark m) noexcept override {
        acc_ = std::move(m.acc);
        n1_ = m.n1, cur_ = m.cur, n2_cur_ = m.n2_cur, prompt_ = m.prompt, sparse_prefill_ = m.sparse_prefill;
        global_exact_ = m.global_exact;
        step_n1_.erase(step_n1_.begin() + std::ptrdiff_t(m.steps), step_n1_.end());
        step_n2_.erase(step_n2_.begin() + std::ptrdiff_t(m.steps), step_n2_.end());
    }

    std::vector<int> device_global_lengths() override {
        const auto n = read_ints(dev(), n2_[n2_cur_], s_.kv_heads);
        return std::vector<int>(n.begin(), n.end());
    }

    AttentionTrace trace() override {
        AttentionTrace tr;
        tr.dense = false;  // decode rows follow G + tail; prefill rows are dense when nothing was kept
        tr.prompt = prompt_;
        tr.window = sparse_prefill_ ? params_.window : 0;
        if (sparse_prefill_) {  // else a dense prefill: mask() treats rows as dense
            // The prompt's selection is still in the workspace: only a prefill writes it, once per prompt.
            const auto counts = read_ints(dev(), ws_.count, size_t(s_.kv_heads));
            const auto idx = read_ints(dev(), ws_.idx, checked_product({s_.kv_heads, ws_.idx_stride}, "kept index elements"));
            for (int h = 0; h < s_.kv_heads; ++h) {
                const auto row = idx.begin() + std::ptrdiff_t(size_t(h) * size_t(ws_.idx_stride));
                tr.prefill_kept.emplace_back(row, row + counts[h]);
            }
        }
        const std::vector<int> n2 = account().global;
        const auto pos = read_ints(dev(), g_pos_, checked_product({s_.kv_heads, capacity_}, "global-store position elements"));
        tr.g_positions.assign(s_.kv_heads, {});
        for (int h = 0; h < s_.kv_heads; ++h)
            tr.g_positions[h].assign(pos.begin() + size_t(h) * capacity_, pos.begin() + size_t(h) * capacity_ + n2[h]);
        tr.step_n2 = step_n2_;
        tr.step_n1 = step_n1_;
        tr.steps_recorded = step_trace_;
        return tr;
    }

    CacheContents contents() override {
        CacheContents c;
        const auto n2 = device_global_lengths();
        const auto pos = read_ints(dev(), g_pos_, checked_product({s_.kv_heads, capacity_}, "global-store position elements"));
        const int tail0 = acc_.tokens_seen - n1_;  // position of window row 0
        for (int h = 0; h < s_.kv_heads; ++h) {
            std::vector<int> p(pos.begin() + size_t(h) * capacity_, pos.begin() + size_t(h) * capacity_ + n2[h]);
            for (int r = 0; r < n1_; ++r) p.push_back(tail0 + r);
            c.positions.push_back(std::move(p));
            auto k = read_rows(dev(), g_k_, h, 0, n2[h]), v = read_rows(dev(), g_v_, h, 0, n2[h]);
            const auto wk = read_rows(dev(), win_[cur_][0], h, 0, n1_), wv = read_rows(dev(), win_[cur_][1], h, 0, n1_);
            k.insert(k.end(), wk.begin(), wk.end());
            v.insert(v.end(), wv.begin(), wv.end());
            c.k_rows.push_back(std::move(k));
            c.v_rows.push_back(std::move(v));
        }
        return c;
    }

private:
    // Capacity for one more element, grown geometrically (push_back after it cannot throw).
    template <class T>
    static void make_room(std::vector<T>& v) {
        if (v.size() == v.capacity()) v.reserve(std::max<size_t>(16, 2 * v.capacity()));
    }

    // Compression of the pending block (rows [0, b) of the window buffer, whose tail now has n1
    // rows) after step t's attention: keep the top t_dec per head by this step's probabilities
    // (select's tie rule: lower row first), append them to G in position order, and shift the
    // ring's w rows down. Writes only the spare buffers (G's new lengths into the other n2_, the
    // ring into the other window buffer); the caller commits by switching to them.
    void compress_pending(int t, int n1) {
        const int w = params_.window, b = params_.block;
        SelectArgs sa;
        sa.s = probs_, sa.heads = s_.kv_heads, sa.s_stride = b, sa.n_global = b, sa.block = b;
        sa.order = zero_order_, sa.budget = dec_budget_, sa.idx = dec_idx_, sa.idx_stride = b, sa.count = dec_count_;
        dev().select(sa);
        const int row0_pos = t - n1 + 1;  // position of window row 0
        GatherArgs g;
        g.src_k = win_[cur_][0], g.src_v = win_[cur_][1], g.dst_k = g_k_, g.dst_v = g_v_;
        g.idx = dec_idx_, g.idx_stride = b, g.count = dec_count_;
        g.dst_off = n2_[n2_cur_], g.dst_len = n2_[1 - n2_cur_];  // append past G's committed lengths
        g.pos_out = g_pos_, g.pos_stride = capacity_, g.pos_base = row0_pos;
        dev().gather(g);
        GatherArgs m;
        m.src_k = win_[cur_][0], m.src_v = win_[cur_][1], m.dst_k = win_[1 - cur_][0], m.dst_v = win_[1 - cur_][1];
        m.src_row0 = b, m.uniform_count = w;
        dev().gather(m);
    }

    TcaParams params_;
    std::vector<std::vector<double>> p_star_;
    std::vector<int> K_, t_dec_;
    int capacity_ = 0, prompt_ = 0, n1_ = 0, cur_ = 0, n2_cur_ = 0;
    bool sparse_prefill_ = false;
    bool global_exact_ = true;  // acc_.global is G's exact lengths, else an upper bound on them
    SelectionWorkspace ws_;     // the prompt's selection (only when the capacity exceeds the window)
    Tensor g_k_, g_v_;
    Tensor win_[2][2];  // [buffer][k, v]
    BufView n2_[2];  // G's lengths: the current one and the spare a call writes into
    BufView g_pos_, probs_, zero_order_, dec_budget_, dec_idx_, dec_count_;
    CacheAccount acc_;
    std::vector<std::vector<int>> step_n2_;
    std::vector<int> step_n1_;
};

}  // namespace

std::unique_ptr<AttentionSession> make_tca_session(Device& dev, AttnShape shape, const TcaParams& params,
                                                   std::vector<std::vector<double>> p_star, int capacity, DType kv_dtype) {
    return std::make_unique<TcaSession>(dev, shape, params, std::move(p_star), capacity, kv_dtype);
}

}  // namespace tca::detail::method
