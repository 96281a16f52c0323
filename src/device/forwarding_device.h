// A Device that hands every call to another one: the base of decorators that change one or two
// things (method/cache_pool.h: where storage comes from; method/batch.cpp: ops recorded for a
// batched call). The decorated device must outlive it.
#pragma once

#include <string>
#include <vector>

#include "device/device.h"

namespace tca::detail {

class ForwardingDevice : public Device {
public:
    explicit ForwardingDevice(Device& inner) : inner_(inner) {}

    const DeviceInfo& info() const override { return inner_.info(); }
    Buffer alloc(size_t bytes) override { return inner_.alloc(bytes); }
    Buffer alloc_heads(size_t heads, size_t head_bytes, size_t align = 1) override {
        return inner_.alloc_heads(heads, head_bytes, align);
    }
    BufView alloc_view(size_t bytes) override { return inner_.alloc_view(bytes); }
    BufView alloc_heads_view(size_t heads, size_t head_bytes, size_t align = 1) override {
        return inner_.alloc_heads_view(heads, head_bytes, align);
    }
    void write(const BufView& dst, const void* src, size_t bytes) override { inner_.write(dst, src, bytes); }
    void read(const BufView& src, void* dst, size_t bytes) override { inner_.read(src, dst, bytes); }
    void fill_zero(const BufView& dst, size_t bytes) override { inner_.fill_zero(dst, bytes); }
    void finish() override { inner_.finish(); }
    void flush() override { inner_.flush(); }
    void submit() override { inner_.submit(); }
    void update(const BufView& dst, const void* src, size_t bytes) override { inner_.update(dst, src, bytes); }
    DeviceCounters counters() const override { return inner_.counters(); }

    void prefill(const PrefillArgs& a) override { inner_.prefill(a); }
    void decode(const DecodeArgs& a) override { inner_.decode(a); }
    void score(const ScoreArgs& a) override { inner_.score(a); }
    void metric(const MetricArgs& a) override { inner_.metric(a); }
    void rank(const RankArgs& a) override { inner_.rank(a); }
    void select(const SelectArgs& a) override { inner_.select(a); }
    void gather(const GatherArgs& a) override { inner_.gather(a); }
    void colsum(const ColsumArgs& a) override { inner_.colsum(a); }
    void decode_batch(const std::vector<DecodeArgs>& a) override { inner_.decode_batch(a); }
    void gather_batch(const std::vector<GatherArgs>& a) override { inner_.gather_batch(a); }
    void select_batch(const std::vector<SelectArgs>& a) override { inner_.select_batch(a); }
    void stream_copy(const CopyArgs& a) override { inner_.stream_copy(a); }
    void gemm(const GemmArgs& a) override { inner_.gemm(a); }
    bool gemm_supported(DType t) const override { return inner_.gemm_supported(t); }
    void fma_probe(const FmaArgs& a) override { inner_.fma_probe(a); }
    bool fma_supported(DType t) const override { return inner_.fma_supported(t); }
    int decode_splits(const DecodeArgs& a) const override { return inner_.decode_splits(a); }
    Device& backend() override { return inner_.backend(); }
    std::string gemm_engine(DType t) const override { return inner_.gemm_engine(t); }
    void set_profiling(bool on) override {
        inner_.set_profiling(on);
        profiling_ = on;
    }
    std::vector<OpTiming> take_timings() override { return inner_.take_timings(); }

protected:
    Device& inner_;
};

}  // namespace tca::detail
