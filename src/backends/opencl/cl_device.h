// Private header of the OpenCL backend: the device class, split across the files of this folder.
//
// Structure: devices and errors (cl_runtime.cpp, cl_errors.cpp); construction, timings and the entry
// points (cl_device.cpp); buffers and scratch (cl_memory.cpp); programs built lazily, once per device
// and set of build options, with the binary kept in the on-disk cache (cl_program.cpp); the tuning
// table (cl_tuning.cpp); one file per op family (ops_*.cpp).
//
// Every op: validate(), then one or more kernel launches on a single in-order queue with
// profiling enabled; when profiling is on, the op's device time spans its first launch's start
// to its last launch's end.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "backends/opencl/cl_common.h"
#include "backends/opencl/cl_tuning.h"
#include "backends/opencl/opencl_testing.h"
#include "device/backends.h"
#include "device/fault_injection.h"

namespace tca::detail::opencl {

struct ClBuffer : BufferImpl {
    MemHandle mem;
    const void* owner = nullptr;  // the device that allocated it
    fault::LiveBuffer live{Api::opencl};
};

// A tensor as a kernel sees it: buffer, element offset, head stride, token stride.
struct TensorArg {
    cl_mem mem;
    cl_long off, hs, ts;
};
// An int32/float32 array: buffer and offset in 4-byte elements (null buffer when absent).
struct ViewArg {
    cl_mem mem;
    cl_long off;
};

inline void set_arg(cl_kernel k, cl_uint& i, cl_mem m) { check(clSetKernelArg(k, i++, sizeof m, &m), "clSetKernelArg"); }
inline void set_arg(cl_kernel k, cl_uint& i, cl_int v) { check(clSetKernelArg(k, i++, sizeof v, &v), "clSetKernelArg"); }
inline void set_arg(cl_kernel k, cl_uint& i, cl_long v) { check(clSetKernelArg(k, i++, sizeof v, &v), "clSetKernelArg"); }
inline void set_arg(cl_kernel k, cl_uint& i, cl_float v) { check(clSetKernelArg(k, i++, sizeof v, &v), "clSetKernelArg"); }
inline void set_arg(cl_kernel k, cl_uint& i, const TensorArg& t) {
    set_arg(k, i, t.mem);
    set_arg(k, i, t.off);
    set_arg(k, i, t.hs);
    set_arg(k, i, t.ts);
}
// A family's parameter block (src/iface/iface_*.h), passed as one by-value struct argument.
template <class P>
struct ParamsArg {
    const P& p;
};
template <class P>
ParamsArg<P> params(const P& p) {
    return {p};
}
template <class P>
inline void set_arg(cl_kernel k, cl_uint& i, ParamsArg<P> a) {
    check(clSetKernelArg(k, i++, sizeof(P), &a.p), "clSetKernelArg");
}
inline void set_arg(cl_kernel k, cl_uint& i, const ViewArg& v) {
    set_arg(k, i, v.mem);
    set_arg(k, i, v.off);
}

// Global and local sizes; a zero local size lets the driver choose. Global sizes are rounded
// up to a multiple of the local size; kernels check their bounds.
struct Range {
    size_t n[3] = {1, 1, 1};
    cl_uint dims = 1;
    Range(size_t x) : dims(1) { n[0] = x; }
    Range(size_t x, size_t y) : dims(2) { n[0] = x, n[1] = y; }
    Range(size_t x, size_t y, size_t z) : dims(3) { n[0] = x, n[1] = y, n[2] = z; }
};
inline const Range kAnyLocal{0};


inline size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
inline int ceil_div(int a, int b) { return int((int64_t(a) + b - 1) / b); }  // a + b - 1 may pass INT_MAX

inline std::string kv_options(const Tensor& kv) {
    return "-D HEAD_DIM=" + std::to_string(kv.dim) + " -D KV_HALF=" + (kv.dtype == DType::f16 ? "1" : kv.dtype == DType::bf16 ? "2" : "0");
}
inline std::string define(const char* name, int value) { return std::string(" -D ") + name + "=" + std::to_string(value); }

class OpenCLDevice final : public Device {
public:
    OpenCLDevice(const Entry& e, const BackendOptions& options);
    // On the caller's objects (interop): they were checked to fit together and are retained here, so
    // the handles release exactly the references this device took.
    OpenCLDevice(const Entry& e, cl_context context, cl_command_queue queue, const BackendOptions& options);
    ~OpenCLDevice() override;

    const DeviceInfo& info() const override { return info_; }

    // ---- memory (cl_memory.cpp) ----
    Buffer alloc(size_t bytes) override;
    void write(const BufView& dst, const void* src, size_t bytes) override;
    void read(const BufView& src, void* dst, size_t bytes) override;
    void fill_zero(const BufView& dst, size_t bytes) override;
    // The caller's cl_mem as one of this device's buffers: same cl_context required; retained here and
    // released (never freed) when the last view of it goes.
    Buffer wrap(cl_mem m);

    void finish() override {
        ++counters_.waits;
        check(clFinish(queue_.get()), "clFinish");
    }
    // The end of every call: a marker whose event is the call's last command (last_event()), then
    // the queue is flushed.
    void flush() override;
    // Gates everything enqueued from now on on `events` (a barrier with them as its wait list).
    void wait_for(const std::vector<cl_event>& events);
    // The last call's closing marker, retained for the caller; null before the first call.
    cl_event last_event();
    void submit() override { flush(); }
    void update(const BufView& dst, const void* src, size_t bytes) override;
    // Timings need events with timestamps, which only a queue made with profiling has.
    void set_profiling(bool on) override;
    std::vector<OpTiming> take_timings() override;

    // ---- ops (ops_*.cpp) ----
    void prefill(const PrefillArgs& a) override;
    // Enough split-K partitions to fill the device, so the choice depends on the number of heads.
    int decode_splits(const DecodeArgs& a) const override;
    // Build constants of the decode layout for `a` at work-group size `wg` (ops_decode.cpp).
    std::string decode_options(const DecodeArgs& a, int wg) const;
    // Test hook: another decode row (e.g. the GPU row on a CPU driver); returns the row it replaced.
    DecodeTuning set_decode_tuning(const DecodeTuning& t);
    void decode(const DecodeArgs& a) override;
    // Batches (device.h): entries grouped by op_params.h's keys; a group of two or more runs as one
    // launch per kernel (decode.cl with DEC_BATCH, gather.cl's *_batch kernels), a lone entry as the op.
    void decode_batch(const std::vector<DecodeArgs>& a) override;
    void gather_batch(const std::vector<GatherArgs>& a) override;
    void score(const ScoreArgs& a) override;
    void metric(const MetricArgs& a) override;
    void rank(const RankArgs& a) override;
    void select(const SelectArgs& a) override;
    void gather(const GatherArgs& a) override;
    void colsum(const ColsumArgs& a) override;
    void stream_copy(const CopyArgs& a) override;
    void gemm(const GemmArgs& a) override;
    // The GEMM is CLBlast's (ops_gemm_clblast.cpp); a build without CLBlast compiles
    // ops_gemm_without_clblast.cpp instead, where it is unsupported (the roofline's peak is the
    // multiply-add probe; the GEMM is only a reference line).
    bool gemm_supported(DType t) const override {
        return clblast_built() && (t == DType::f32 || info_.fp16_arithmetic);
    }
    std::string gemm_engine(DType t) const override {
        return gemm_supported(t) ? (t == DType::f32 ? "CLBlast SGEMM" : "CLBlast HGEMM") : "";
    }
    static bool clblast_built();
    void fma_probe(const FmaArgs& a) override;
    bool fma_supported(DType t) const override { return t == DType::f32 || info_.fp16_arithmetic; }

    // ---- test hooks ----
    opencl_testing::ProgramCacheStats cache_stats() const { return stats_; }
    void build_for_test(const std::string& source, const std::string& options) { build(source, options); }
    void release_scratch();

private:
    enum ScratchSlot {
        kDecodePart, kScoreParts, kScoreMerged, kSelectKeep, kSelectOffsets, kColsumStats, kDecodeTable, kGatherTable,
        kScratchSlots
    };

    struct Program {
        ProgramHandle program;
        std::map<std::string, KernelHandle> kernels;
    };

    struct PendingTiming {
        Op op = Op::attend_dense;
        cl_event first = nullptr, last = nullptr;
    };

    // Collects the events of one op's launches while profiling is on.
    struct OpScope {
        OpenCLDevice& dev;
        PendingTiming rec;
        OpScope(OpenCLDevice& d, Op op) : dev(d) {
            rec.op = op;
            dev.current_ = &rec;
        }
        ~OpScope() {
            dev.current_ = nullptr;
            if (rec.first) dev.pending_.push_back(rec);
        }
    };

    static void release_pending(PendingTiming& p);

    // ---- buffers and kernel arguments (cl_memory.cpp) ----
    cl_mem mem(const BufView& v) const;
    TensorArg tensor(const Tensor& t) const;
    // The tensor addressed in units of `ub` bytes (ub divides its offset and strides).
    TensorArg in_units(const Tensor& t, size_t ub) const;
    ViewArg view(const BufView& v) const;
    cl_mem scratch(ScratchSlot slot, size_t bytes);
    // A batched op's parameter table: the slot's scratch buffer, written by an enqueued copy of src
    // (ordered with the launches; nothing waits).
    cl_mem table(ScratchSlot slot, const void* src, size_t bytes);
    // Enqueues a non-blocking write from a staging copy of src (update() and table()).
    void staged_write(cl_mem dst, size_t offset, const void* src, size_t bytes);
    // Every device allocation: clCreateBuffer, or the failure a test injected (device/fault_injection.h).
    cl_mem create_buffer(size_t bytes, cl_int* err);

    // Keys per local tile: the table's size, halved until `tiles` tiles of [bk, d] floats fit in
    // three quarters of local memory (the rest is left for the compiler's own use). (ops_prefill.cpp)
    int key_tile(int d, int tiles) const;

    // ---- programs (cl_program.cpp) ----
    // Builds (or loads from the cache) one program.
    ProgramHandle build(const std::string& source, const std::string& options);
    // A cached binary the driver refuses is not an error: the caller rebuilds from source.
    ProgramHandle from_binary(const std::vector<unsigned char>& bin, const std::string& options);
    ProgramHandle from_source(const std::string& source, const std::string& options);
    cl_kernel kernel(const std::string& file, const std::string& options, const char* name);

    // A kernel whose work-group size is a build option: built for `wg`, then for half of it
    // while the compiled kernel cannot run that many work-items (private arrays grow with the
    // head dim, and a small GPU may not fit a full group of them).
    template <class Options>
    std::pair<cl_kernel, int> fitted(const char* file, const char* name, int wg, const Options& options) {
        for (;;) {
            cl_kernel k = kernel(file, options(wg), name);
            if (size_t(wg) <= max_work_group(k) || wg <= 8) return {k, wg};
            wg /= 2;
        }
    }
    size_t max_work_group(cl_kernel k) const;

    // ---- launches and events (cl_device.cpp) ----
    // A marker command: with profiling on, its event brackets work enqueued by others (CLBlast).
    void marker();
    void record_event(cl_event ev);
    template <class... Args>
    void launch(cl_kernel k, Range global, Range local, const Args&... args) {
        cl_uint i = 0;
        (set_arg(k, i, args), ...);
        enqueue(k, global, local);
    }
    void enqueue(cl_kernel k, Range global, Range local);

    struct Scratch {
        MemHandle mem;
        size_t bytes = 0;
    };
    // Host memory a non-blocking write reads from, until its event completes (update()).
    struct StagingChunk {
        std::vector<unsigned char> bytes;
        EventHandle busy;
    };

    void setup();
    static cl_command_queue_properties device_value_of_queue(cl_command_queue q, cl_command_queue_info param);

    DeviceInfo info_;
    bool queue_profiling_ = true;  // false only on a caller's queue made without profiling
    cl_device_id device_;
    std::string platform_version_, cache_dir_, tuning_overrides_;
    ContextHandle context_;
    QueueHandle queue_;
    cl_ulong local_mem_ = 0;
    cl_uint compute_units_ = 1;
    size_t max_wg_ = 64;
    Tuning tuning_{};
    std::map<std::string, Program> programs_;
    Scratch scratch_[kScratchSlots];
    PendingTiming* current_ = nullptr;
    std::vector<PendingTiming> pending_;
    std::deque<StagingChunk> staging_;  // destroyed after the destructor's clFinish
    EventHandle last_event_;
    opencl_testing::ProgramCacheStats stats_;
};

}  // namespace tca::detail::opencl
