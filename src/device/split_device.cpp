// The splitting layer (see split_device.h): allocation of split buffers, piecewise transfers, and
// every op run per KV-head range when an argument is split. Ops on plain buffers pass straight
// through, so an unsplit run is exactly the backend's.
#include "device/split_device.h"

#include <algorithm>
#include <initializer_list>
#include <string>

#include "core/checked.h"
#include "device/head_ranges.h"

namespace tca::detail {

const SplitBuffer::Piece& SplitBuffer::piece_at(size_t offset) const {
    const auto it = std::upper_bound(pieces.begin(), pieces.end(), offset,
                                     [](size_t off, const Piece& p) { return off < p.begin; });
    return *(it - 1);
}

Buffer Device::alloc_heads(size_t heads, size_t head_bytes, size_t align) {
    (void)align;
    return alloc(checked_mul(heads, head_bytes, "tensor bytes (heads x bytes per head)"));
}

namespace {

bool any_split(std::initializer_list<const BufView*> views) {
    return std::any_of(views.begin(), views.end(), [](const BufView* v) { return is_split(*v); });
}

// Heads per piece: as many whole rows as fit, a multiple of `align` when one group fits. With the
// group unknown (align 0) the largest divisor of `heads` that is at least half of what fits, so the
// pieces are equal and line up with any group size that divides them.
size_t heads_per_piece(size_t heads, size_t fit, size_t align) {
    if (align == 0) {
        for (size_t d = std::min(heads, fit); 2 * d >= fit && d > 0; --d)
            if (heads % d == 0) return d;
        return fit;
    }
    return fit >= align ? fit / align * align : fit;
}

class SplitDevice final : public Device {
public:
    SplitDevice(std::unique_ptr<Device> inner, uint64_t limit) : inner_(std::move(inner)), info_(inner_->info()) {
        if (limit > 0) info_.max_allocation = std::min<uint64_t>(info_.max_allocation, limit);
        profiling_ = inner_->profiling();
    }

    const DeviceInfo& info() const override { return info_; }
    Device& backend() override { return inner_->backend(); }

    // ---- memory ----

    Buffer alloc(size_t bytes) override {
        require(bytes <= info_.max_allocation, TCA_ERROR_OUT_OF_MEMORY,
                "allocation of " + std::to_string(bytes) + " bytes exceeds " + info_.name + "'s largest buffer of " +
                    std::to_string(info_.max_allocation) + " bytes");
        return inner_->alloc(bytes);
    }

    Buffer alloc_heads(size_t heads, size_t head_bytes, size_t align) override {
        const size_t total = checked_mul(heads, head_bytes, "tensor bytes (heads x bytes per head)");
        const uint64_t limit = info_.max_allocation;
        if (total <= limit) return inner_->alloc(total);
        require(head_bytes <= limit, TCA_ERROR_OUT_OF_MEMORY,
                "one head of " + std::to_string(head_bytes) + " bytes (of a " + std::to_string(total) +
                    "-byte tensor) exceeds " + info_.name + "'s largest buffer of " + std::to_string(limit) +
                    " bytes; tensors are split across buffers only between heads");
        // Split, a tensor is bounded by the device's memory instead: fail before allocating piece after piece.
        require(info_.global_memory == 0 || total <= info_.global_memory, TCA_ERROR_OUT_OF_MEMORY,
                "a tensor of " + std::to_string(total) + " bytes exceeds " + info_.name + "'s memory of " +
                    std::to_string(info_.global_memory) + " bytes");
        const size_t per = heads_per_piece(heads, size_t(limit / head_bytes), align);
        auto sb = std::make_shared<SplitBuffer>();
        for (size_t h = 0; h < heads; h += per)
            sb->pieces.push_back({h * head_bytes, inner_->alloc(std::min(per, heads - h) * head_bytes)});
        sb->size = total;
        sb->row_bytes = head_bytes;
        return sb;
    }

    void write(const BufView& dst, const void* src, size_t bytes) override {
        each_piece(dst, bytes, "write", [&](const BufView& p, size_t done, size_t n) {
            inner_->write(p, static_cast<const unsigned char*>(src) + done, n);
        });
    }
    void read(const BufView& src, void* dst, size_t bytes) override {
        each_piece(src, bytes, "read", [&](const BufView& p, size_t done, size_t n) {
            inner_->read(p, static_cast<unsigned char*>(dst) + done, n);
        });
    }
    void fill_zero(const BufView& dst, size_t bytes) override {
        each_piece(dst, bytes, "fill", [&](const BufView& p, size_t, size_t n) { inner_->fill_zero(p, n); });
    }
    void finish() override { inner_->finish(); }
    void flush() override { inner_->flush(); }
    void submit() override { inner_->submit(); }
    void update(const BufView& dst, const void* src, size_t bytes) override {
        each_piece(dst, bytes, "update", [&](const BufView& p, size_t done, size_t n) {
            inner_->update(p, static_cast<const unsigned char*>(src) + done, n);
        });
    }
    DeviceCounters counters() const override { return inner_->counters(); }

    // ---- ops ----

    void prefill(const PrefillArgs& a) override {
        if (!any_split({&a.q.data, &a.k.data, &a.v.data, &a.o.data, &a.kept_idx, &a.kept_count})) return inner_->prefill(a);
        validate(a);
        PrefillArgs s = a;
        const int g = a.q.heads / a.k.heads;
        HeadRanges r(*this, *inner_, g);
        r.tensor(s.q, true, false), r.tensor(s.k, false, false), r.tensor(s.v, false, false), r.tensor(s.o, true, true);
        if (a.sparse()) r.rows(s.kept_idx, size_t(a.kept_stride), false), r.rows(s.kept_count, 1, false);
        // Query heads are independent here, so a group whose rows straddle two buffers runs in parts.
        r.run(a.k.heads, true, [&](const HeadRanges::Range& x) {
            s.q.heads = s.o.heads = x.nq;
            s.k.heads = s.v.heads = x.nkv;
            inner_->prefill(s);
        });
    }

    void decode(const DecodeArgs& a) override {
        if (!any_split({&a.q.data, &a.o.data, &a.k1.data, &a.v1.data, &a.k2.data, &a.v2.data, &a.n2, &a.probs}))
            return inner_->decode(a);
        validate(a);
        DecodeArgs s = a;
        if (s.splits <= 0) s.splits = inner_->decode_splits(a);  // the whole op's split-K, not each range's
        const int g = a.q.heads / a.k1.heads;
        HeadRanges r(*this, *inner_, g);
        r.tensor(s.q, true, false), r.tensor(s.o, true, true), r.tensor(s.k1, false, false), r.tensor(s.v1, false, false);
        if (a.k2.data) r.tensor(s.k2, false, false), r.tensor(s.v2, false, false), r.rows(s.n2, 1, false);
        if (a.probs) r.rows(s.probs, size_t(a.probs_n), true);
        // Whole groups: the eviction scores average over a group (and q of a group is only d floats a head).
        r.run(a.k1.heads, false, [&](const HeadRanges::Range& x) {
            s.q.heads = s.o.heads = x.nq;
            s.k1.heads = s.v1.heads = x.nkv;
            if (a.k2.data) s.k2.heads = s.v2.heads = x.nkv;
            inner_->decode(s);
        });
    }

    void score(const ScoreArgs& a) override {
        if (!any_split({&a.q.data, &a.k.data, &a.s})) return inner_->score(a);
        validate(a);
        ScoreArgs s = a;
        // Only row q_row of q is read: narrowed to it, a staged group copies d floats per head, not L * d.
        s.q.data.offset += size_t(a.q_row) * size_t(a.q.token_stride) * 4;
        s.q.tokens = 1, s.q_row = 0;
        const int g = a.q.heads / a.k.heads;
        HeadRanges r(*this, *inner_, g);
        r.tensor(s.q, true, false), r.tensor(s.k, false, false), r.rows(s.s, size_t(a.s_stride), true);
        r.run(a.k.heads, false, [&](const HeadRanges::Range& x) {
            s.q.heads = x.nq;
            s.k.heads = x.nkv;
            inner_->score(s);
        });
    }

    void metric(const MetricArgs& a) override {
        if (!any_split({&a.s, &a.h})) return inner_->metric(a);
        validate(a);
        MetricArgs s = a;
        HeadRanges r(*this, *inner_, 1);
        r.rows(s.s, size_t(a.s_stride), false), r.rows(s.h, size_t(n_blocks_of(a.n_global, a.block)), true);
        r.run(a.heads, false, [&](const HeadRanges::Range& x) {
            s.heads = x.nkv;
            inner_->metric(s);
        });
    }

    void rank(const RankArgs& a) override {
        if (!any_split({&a.h, &a.order})) return inner_->rank(a);
        validate(a);
        RankArgs s = a;
        HeadRanges r(*this, *inner_, 1);
        r.rows(s.h, size_t(a.n_blocks), false), r.rows(s.order, size_t(a.n_blocks), true);
        r.run(a.heads, false, [&](const HeadRanges::Range& x) {
            s.heads = x.nkv;
            inner_->rank(s);
        });
    }

    void select(const SelectArgs& a) override {
        if (!any_split({&a.s, &a.order, &a.budget, &a.idx, &a.count})) return inner_->select(a);
        validate(a);
        SelectArgs s = a;
        const size_t nb = size_t(n_blocks_of(a.n_global, a.block));
        HeadRanges r(*this, *inner_, 1);
        r.rows(s.s, size_t(a.s_stride), false), r.rows(s.order, nb, false), r.rows(s.budget, nb, false);
        r.rows(s.idx, size_t(a.idx_stride), true), r.rows(s.count, 1, true);
        r.run(a.heads, false, [&](const HeadRanges::Range& x) {
            s.heads = x.nkv;
            inner_->select(s);
        });
    }

    void gather(const GatherArgs& a) override {
        if (!any_split({&a.src_k.data, &a.src_v.data, &a.dst_k.data, &a.dst_v.data, &a.idx, &a.count, &a.dst_off,
                        &a.dst_len, &a.pos_out}))
            return inner_->gather(a);
        validate(a);
        GatherArgs s = a;
        HeadRanges r(*this, *inner_, 1);
        r.tensor(s.src_k, false, false), r.tensor(s.src_v, false, false), r.tensor(s.dst_k, false, true), r.tensor(s.dst_v, false, true);
        r.rows(s.idx, size_t(a.idx_stride), false), r.rows(s.count, 1, false);
        r.rows(s.dst_off, 1, false), r.rows(s.dst_len, 1, true), r.rows(s.pos_out, size_t(a.pos_stride), true);
        r.run(a.src_k.heads, false, [&](const HeadRanges::Range& x) {
            s.src_k.heads = s.src_v.heads = s.dst_k.heads = s.dst_v.heads = x.nkv;
            inner_->gather(s);
        });
    }

    // Batches go to the backend whole unless an entry touches a split buffer; then entry by entry
    // (each through the splitting op above), which gives the same results.
    void decode_batch(const std::vector<DecodeArgs>& b) override {
        for (const DecodeArgs& a : b)
            if (any_split({&a.q.data, &a.o.data, &a.k1.data, &a.v1.data, &a.k2.data, &a.v2.data, &a.n2, &a.probs}))
                return Device::decode_batch(b);
        inner_->decode_batch(b);
    }
    void gather_batch(const std::vector<GatherArgs>& b) override {
        for (const GatherArgs& a : b)
            if (any_split({&a.src_k.data, &a.src_v.data, &a.dst_k.data, &a.dst_v.data, &a.idx, &a.count, &a.dst_off,
                           &a.dst_len, &a.pos_out}))
                return Device::gather_batch(b);
        inner_->gather_batch(b);
    }
    void select_batch(const std::vector<SelectArgs>& b) override {
        for (const SelectArgs& a : b)
            if (any_split({&a.s, &a.order, &a.budget, &a.idx, &a.count})) return Device::select_batch(b);
        inner_->select_batch(b);
    }
    void colsum(const ColsumArgs& a) override {
        if (!any_split({&a.q.data, &a.k.data, &a.c})) return inner_->colsum(a);
        validate(a);
        ColsumArgs s = a;
        const int g = a.q.heads / a.k.heads;
        HeadRanges r(*this, *inner_, g);
        r.tensor(s.q, true, false), r.tensor(s.k, false, false), r.rows(s.c, size_t(a.c_stride), true);
        r.run(a.k.heads, false, [&](const HeadRanges::Range& x) {
            s.q.heads = x.nq;
            s.k.heads = x.nkv;
            inner_->colsum(s);
        });
    }

    // The roofline probes take the buffers they allocate themselves, never split ones.
    void stream_copy(const CopyArgs& a) override {
        require(!any_split({&a.src, &a.dst}), TCA_ERROR_UNSUPPORTED, "copy: split buffers are not supported");
        inner_->stream_copy(a);
    }
    void gemm(const GemmArgs& a) override {
        require(!any_split({&a.a, &a.b, &a.c}), TCA_ERROR_UNSUPPORTED, "gemm: split buffers are not supported");
        inner_->gemm(a);
    }
    bool gemm_supported(DType t) const override { return inner_->gemm_supported(t); }
    void fma_probe(const FmaArgs& a) override {
        require(!any_split({&a.out}), TCA_ERROR_UNSUPPORTED, "fma probe: split buffers are not supported");
        inner_->fma_probe(a);
    }
    bool fma_supported(DType t) const override { return inner_->fma_supported(t); }
    std::string gemm_engine(DType t) const override { return inner_->gemm_engine(t); }
    int decode_splits(const DecodeArgs& a) const override { return inner_->decode_splits(a); }

    void set_profiling(bool on) override {
        inner_->set_profiling(on);
        profiling_ = on;
    }
    std::vector<OpTiming> take_timings() override { return inner_->take_timings(); }

private:
    // Calls f(view, done, n) for each piece-local part of the logical range [v.offset, + bytes).
    template <class F>
    void each_piece(const BufView& v, size_t bytes, const char* what, F&& f) {
        if (!is_split(v)) return f(v, 0, bytes);
        const auto& sb = static_cast<const SplitBuffer&>(*v.buf);
        require(v.offset <= sb.size && bytes <= sb.size - v.offset, TCA_ERROR_SHAPE_MISMATCH,
                std::string(what) + " past the end of a buffer");
        for (size_t done = 0; done < bytes;) {
            const size_t at = v.offset + done;
            const SplitBuffer::Piece& p = sb.piece_at(at);
            const size_t n = std::min(bytes - done, p.begin + p.buf->size - at);
            f(BufView{p.buf, at - p.begin}, done, n);
            done += n;
        }
    }

    std::unique_ptr<Device> inner_;
    DeviceInfo info_;
};

}  // namespace

std::unique_ptr<Device> make_split_device(std::unique_ptr<Device> inner, uint64_t max_buffer_bytes) {
    return std::make_unique<SplitDevice>(std::move(inner), max_buffer_bytes);
}

}  // namespace tca::detail
