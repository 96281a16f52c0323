// The reference backend: every op as plain loops with double accumulation, written to be
// obviously right rather than fast. GPU kernels are tested against these results.
// Buffers are host memory; ops run synchronously; timings use the host clock.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <utility>
#include <vector>

#include "core/half.h"
#include "core/checked.h"
#include "device/backends.h"
#include "device/fault_injection.h"
#include "iface/iface_fma.h"

namespace tca::detail {

namespace {

struct HostBuffer : BufferImpl {
    std::vector<unsigned char> bytes;
    fault::LiveBuffer live{Api::reference};
};

unsigned char* base_of(const BufView& v) { return static_cast<HostBuffer*>(v.buf.get())->bytes.data() + v.offset; }
int32_t* ints(const BufView& v) { return reinterpret_cast<int32_t*>(base_of(v)); }
float* floats(const BufView& v) { return reinterpret_cast<float*>(base_of(v)); }

// Element (h, t, i) of a tensor, widened to double.
double at(const Tensor& x, int h, int t, int i) {
    const int64_t e = int64_t(h) * x.head_stride + int64_t(t) * x.token_stride + i;
    if (x.dtype == DType::f32) return reinterpret_cast<const float*>(base_of(x.data))[e];
    return float_from_16bit(x.dtype, reinterpret_cast<const uint16_t*>(base_of(x.data))[e]);
}

float* row_f32(const Tensor& x, int h, int t) {
    return reinterpret_cast<float*>(base_of(x.data)) + int64_t(h) * x.head_stride + int64_t(t) * x.token_stride;
}

void copy_row(const Tensor& src, int hs, int ts, const Tensor& dst, int hd, int td) {
    const size_t es = dtype_size(src.dtype);
    std::memcpy(base_of(dst.data) + (int64_t(hd) * dst.head_stride + int64_t(td) * dst.token_stride) * es,
                base_of(src.data) + (int64_t(hs) * src.head_stride + int64_t(ts) * src.token_stride) * es,
                size_t(src.dim) * es);
}

double dot(const Tensor& q, int hq, int iq, const Tensor& k, int hk, int jk) {
    double acc = 0;
    for (int i = 0; i < q.dim; ++i) acc += at(q, hq, iq, i) * at(k, hk, jk, i);
    return acc;
}

// Softmax-weighted sum of v over the listed keys of KV head hk, for query row (hq, iq).
// keys holds (tensor index 0/1, row) pairs so decode can attend over two segments.
struct KeyRef {
    const Tensor* k;
    const Tensor* v;
    int row;
};

void attend(const Tensor& q, int hq, int iq, int hk, const std::vector<KeyRef>& keys, double scale,
            std::vector<double>& p, float* out) {
    p.resize(keys.size());
    double m = -1e300;
    for (size_t j = 0; j < keys.size(); ++j) {
        p[j] = scale * dot(q, hq, iq, *keys[j].k, hk, keys[j].row);
        m = std::max(m, p[j]);
    }
    double l = 0;
    for (double& x : p) l += (x = std::exp(x - m));
    for (double& x : p) x /= l;
    for (int i = 0; i < q.dim; ++i) {
        double acc = 0;
        for (size_t j = 0; j < keys.size(); ++j) acc += p[j] * at(*keys[j].v, hk, keys[j].row, i);
        out[i] = static_cast<float>(acc);
    }
}

// Order of token indices by (s descending, index ascending): the tie rule used everywhere. NaN
// sorts as -infinity (as in every kernel), so even bad input gets a strict weak order.
float order_key(float x) { return std::isnan(x) ? -INFINITY : x; }
bool ranks_before(float sa, int ia, float sb, int ib) {
    const float ka = order_key(sa), kb = order_key(sb);
    return ka > kb || (ka == kb && ia < ib);
}

class CpuDevice final : public Device {
public:
    CpuDevice() : info_(cpu_device_info()) {}

    const DeviceInfo& info() const override { return info_; }

    Buffer alloc(size_t bytes) override {
        require(bytes <= info_.max_allocation, TCA_ERROR_OUT_OF_MEMORY,
                "allocation of " + std::to_string(bytes) + " bytes exceeds the reference device's maximum of " +
                    std::to_string(info_.max_allocation));
        auto b = std::make_shared<HostBuffer>();
        ++counters_.allocations;
        try {
            if (fault::inject(fault::Kind::alloc)) throw std::bad_alloc();  // a test's injected failure
            b->bytes.resize(bytes);
        } catch (const std::bad_alloc&) {
            throw Error(TCA_ERROR_OUT_OF_MEMORY, "host allocation of " + std::to_string(bytes) + " bytes failed");
        }
        b->size = bytes;
        return b;
    }
    void write(const BufView& dst, const void* src, size_t bytes) override {
        require(range_fits(dst.offset, bytes, dst.buf->size), TCA_ERROR_SHAPE_MISMATCH, "write past the end of a buffer");
        std::memcpy(base_of(dst), src, bytes);
    }
    void read(const BufView& src, void* dst, size_t bytes) override {
        require(range_fits(src.offset, bytes, src.buf->size), TCA_ERROR_SHAPE_MISMATCH, "read past the end of a buffer");
        ++counters_.readbacks;
        std::memcpy(dst, base_of(src), bytes);
    }
    void fill_zero(const BufView& dst, size_t bytes) override {
        require(range_fits(dst.offset, bytes, dst.buf->size), TCA_ERROR_SHAPE_MISMATCH, "fill past the end of a buffer");
        std::memset(base_of(dst), 0, bytes);
    }
    void finish() override {}

    std::vector<OpTiming> take_timings() override { return std::exchange(timings_, {}); }

    void prefill(const PrefillArgs& a) override {
        validate(a);
        Timer t(this, a.sparse() ? Op::attend_sparse : Op::attend_dense);
        const int group = a.q.heads / a.k.heads;
        const double scale = default_scale(a.scale, a.q.dim);
        std::vector<KeyRef> keys;
        std::vector<double> p;
        for (int hq = 0; hq < a.q.heads; ++hq) {
            const int hk = hq / group;
            for (int i = 0; i < a.q.tokens; ++i) {
                const int pos = a.q_pos0 + i;
                keys.clear();
                if (a.sparse()) {
                    const int* idx = ints(a.kept_idx) + int64_t(hk) * a.kept_stride;
                    const int n = ints(a.kept_count)[hk];
                    for (int r = 0; r < n && idx[r] <= pos - a.window; ++r) keys.push_back({&a.k, &a.v, idx[r]});
                    for (int j = std::max(0, pos - a.window + 1); j <= pos; ++j) keys.push_back({&a.k, &a.v, j});
                } else {
                    for (int j = 0; j <= pos; ++j) keys.push_back({&a.k, &a.v, j});
                }
                attend(a.q, hq, i, hk, keys, scale, p, row_f32(a.o, hq, i));
            }
        }
    }

    void decode(const DecodeArgs& a) override {
        validate(a);
        Timer t(this, Op::decode);
        const int group = a.q.heads / a.k1.heads;
        const double scale = default_scale(a.scale, a.q.dim);
        std::vector<KeyRef> keys;
        std::vector<double> p;
        if (a.probs) std::fill_n(floats(a.probs), size_t(a.k1.heads) * a.probs_n, 0.f);
        for (int hq = 0; hq < a.q.heads; ++hq) {
            const int hk = hq / group;
            keys.clear();
            for (int j = 0; j < a.n1; ++j) keys.push_back({&a.k1, &a.v1, j});
            if (a.k2.data)
                for (int j = 0; j < ints(a.n2)[hk]; ++j) keys.push_back({&a.k2, &a.v2, j});
            require(!keys.empty(), TCA_ERROR_SHAPE_MISMATCH, "decode over zero keys");
            attend(a.q, hq, 0, hk, keys, scale, p, row_f32(a.o, hq, 0));
            if (a.probs)
                for (int r = 0; r < a.probs_n; ++r)
                    floats(a.probs)[int64_t(hk) * a.probs_n + r] += static_cast<float>(p[r] / group);
        }
    }

    void score(const ScoreArgs& a) override {
        validate(a);
        Timer t(this, Op::score);
        const int group = a.q.heads / a.k.heads;
        const double scale = default_scale(a.scale, a.q.dim);
        std::vector<double> logits(a.n_keys), acc(a.n_keys);
        for (int hk = 0; hk < a.k.heads; ++hk) {
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int hq = hk * group; hq < (hk + 1) * group; ++hq) {
                double m = -1e300, l = 0;
                for (int j = 0; j < a.n_keys; ++j) m = std::max(m, logits[j] = scale * dot(a.q, hq, a.q_row, a.k, hk, j));
                for (int j = 0; j < a.n_keys; ++j) l += (logits[j] = std::exp(logits[j] - m));
                for (int j = 0; j < a.n_keys; ++j) acc[j] += logits[j] / l;
            }
            float* s = floats(a.s) + int64_t(hk) * a.s_stride;
            for (int j = 0; j < a.n_keys; ++j) s[j] = static_cast<float>(acc[j] / group);
        }
    }

    void metric(const MetricArgs& a) override {
        validate(a);
        Timer t(this, Op::metric);
        const int nb = n_blocks_of(a.n_global, a.block);
        for (int h = 0; h < a.heads; ++h) {
            const float* s = floats(a.s) + int64_t(h) * a.s_stride;
            for (int j = 0; j < nb; ++j) {
                // MetricArgs' formulation, the one every backend uses: sums of s / max|s|.
                const int lo = j * a.block, hi = std::min((j + 1) * a.block, a.n_global);
                double m = 0, y1 = 0, y2 = 0;
                for (int i = lo; i < hi; ++i) m = std::max(m, std::fabs(double(s[i])));
                if (m > 0)
                    for (int i = lo; i < hi; ++i) {
                        const double y = s[i] / m;
                        y1 += y;
                        y2 += y * y;
                    }
                const double flat = y1 > 0 ? 1.0 - y2 / (y1 * y1) : 0.0;
                floats(a.h)[int64_t(h) * nb + j] = static_cast<float>((1.0 - a.alpha) * (m * y1) + a.alpha * flat);
            }
        }
    }

    void rank(const RankArgs& a) override {
        validate(a);
        Timer t(this, Op::sort);
        for (int h = 0; h < a.heads; ++h) {
            const float* hv = floats(a.h) + int64_t(h) * a.n_blocks;
            int* order = ints(a.order) + int64_t(h) * a.n_blocks;
            std::iota(order, order + a.n_blocks, 0);
            std::stable_sort(order, order + a.n_blocks,
                             [&](int x, int y) { return ranks_before(hv[x], x, hv[y], y); });
        }
    }

    void select(const SelectArgs& a) override {
        validate(a);
        Timer t(this, Op::select);
        const int nb = n_blocks_of(a.n_global, a.block);
        std::vector<int> budget_of_block(nb), tokens;
        for (int h = 0; h < a.heads; ++h) {
            const float* s = floats(a.s) + int64_t(h) * a.s_stride;
            for (int r = 0; r < nb; ++r) {
                const int blk = ints(a.order)[int64_t(h) * nb + r];
                require(blk >= 0 && blk < nb, TCA_ERROR_INVALID_ARGUMENT, "select: order holds a bad block index");
                budget_of_block[blk] = ints(a.budget)[int64_t(h) * nb + r];
            }
            int* out = ints(a.idx) + int64_t(h) * a.idx_stride;
            int n = 0;
            for (int j = 0; j < nb; ++j) {  // blocks in position order, so the output is sorted
                const int lo = j * a.block, hi = std::min(lo + a.block, a.n_global);
                tokens.resize(hi - lo);
                std::iota(tokens.begin(), tokens.end(), lo);
                std::stable_sort(tokens.begin(), tokens.end(), [&](int x, int y) { return ranks_before(s[x], x, s[y], y); });
                const int keep = std::min(budget_of_block[j], hi - lo);
                require(keep >= 1, TCA_ERROR_INVALID_ARGUMENT, "select: every budget must be >= 1");
                require(n + keep <= a.idx_stride, TCA_ERROR_SHAPE_MISMATCH, "select: idx_stride too small for the kept set");
                std::sort(tokens.begin(), tokens.begin() + keep);
                for (int r = 0; r < keep; ++r) out[n++] = tokens[r];
            }
            ints(a.count)[h] = n;
        }
    }

    void gather(const GatherArgs& a) override {
        validate(a);
        Timer t(this, Op::gather);
        for (int h = 0; h < a.src_k.heads; ++h) {
            const int n = a.count ? ints(a.count)[h] : a.uniform_count;
            const int off = a.dst_off ? ints(a.dst_off)[h] : 0;
            require(off >= 0 && off + n <= a.dst_k.tokens, TCA_ERROR_SHAPE_MISMATCH, "gather: destination overflow");
            for (int r = 0; r < n; ++r) {
                const int row = a.src_row0 + (a.idx ? ints(a.idx)[int64_t(h) * a.idx_stride + r] : r);
                require(row >= 0 && row < a.src_k.tokens, TCA_ERROR_SHAPE_MISMATCH, "gather: source row out of range");
                copy_row(a.src_k, h, row, a.dst_k, h, off + r);
                copy_row(a.src_v, h, row, a.dst_v, h, off + r);
                if (a.pos_out) ints(a.pos_out)[int64_t(h) * a.pos_stride + off + r] = a.pos_base + row;
            }
            if (a.dst_len) ints(a.dst_len)[h] = off + n;
        }
    }

    void colsum(const ColsumArgs& a) override {
        validate(a);
        Timer t(this, Op::colsum);
        const int L = a.k.tokens, group = a.q.heads / a.k.heads;
        const double scale = default_scale(a.scale, a.q.dim);
        std::vector<double> logits(L), col(L);
        for (int hk = 0; hk < a.k.heads; ++hk) {
            std::fill(col.begin(), col.end(), 0.0);
            for (int hq = hk * group; hq < (hk + 1) * group; ++hq) {
                for (int i = 0; i < L; ++i) {
                    double m = -1e300, l = 0;
                    for (int j = 0; j <= i; ++j) m = std::max(m, logits[j] = scale * dot(a.q, hq, i, a.k, hk, j));
                    for (int j = 0; j <= i; ++j) l += (logits[j] = std::exp(logits[j] - m));
                    for (int j = 0; j <= i; ++j) col[j] += logits[j] / l;
                }
            }
            float* c = floats(a.c) + int64_t(hk) * a.c_stride;
            for (int j = 0; j < L; ++j) c[j] = static_cast<float>(col[j] / (double(group) * (L - j)));
        }
    }

    // Roofline probes. The reference is host code: the copy is memcpy and the GEMM a plain
    // triple loop with double accumulation, timed by the host clock. Their rates describe this
    // reference, not any hardware peak (reports mark them as host-loop measurements).
    void stream_copy(const CopyArgs& a) override {
        validate(a);
        Timer t(this, Op::copy);
        std::memcpy(base_of(a.dst), base_of(a.src), a.bytes);
    }

    void gemm(const GemmArgs& a) override {
        validate(a);
        Timer t(this, Op::gemm);
        auto load = [&](const BufView& v, size_t i) -> double {
            if (a.dtype == DType::f32) return reinterpret_cast<const float*>(base_of(v))[i];
            return float_from_16bit(a.dtype, reinterpret_cast<const uint16_t*>(base_of(v))[i]);
        };
        std::vector<double> row(size_t(a.n));
        for (int i = 0; i < a.m; ++i) {
            std::fill(row.begin(), row.end(), 0.0);
            for (int p = 0; p < a.k; ++p) {  // i-p-j order: B is read row by row
                const double x = load(a.a, size_t(i) * a.k + p);
                for (int j = 0; j < a.n; ++j) row[j] += x * load(a.b, size_t(p) * a.n + j);
            }
            for (int j = 0; j < a.n; ++j) {
                const size_t e = size_t(i) * a.n + j;
                if (a.dtype == DType::f32) reinterpret_cast<float*>(base_of(a.c))[e] = static_cast<float>(row[j]);
                else reinterpret_cast<uint16_t*>(base_of(a.c))[e] = float_to_16bit(a.dtype, static_cast<float>(row[j]));
            }
        }
    }
    bool gemm_supported(DType) const override { return true; }
    // The recurrence of src/iface/iface_fma.h in double, whatever the dtype: the reference value the
    // kernels' f32 and f16 arithmetic are compared with (tests), and a host-loop rate (reports).
    void fma_probe(const FmaArgs& a) override {
        validate(a);
        Timer t(this, Op::fma);
        float* out = reinterpret_cast<float*>(base_of(a.out));
        for (uint32_t i = 0; i < a.items; ++i) {
            double x[TCA_FMA_CHAINS];
            for (uint32_t c = 0; c < TCA_FMA_CHAINS; ++c) x[c] = double(TCA_FMA_SEED(i, c)) / 64.0;
            for (uint32_t r = 0; r < a.iters; ++r)
                for (double& v : x) v = v * double(a.a) + double(a.b);
            double s = 0;
            for (double v : x) s += v;
            out[i] = static_cast<float>(s);
        }
    }
    bool fma_supported(DType) const override { return true; }
    std::string gemm_engine(DType) const override { return "host loop (reference, double accumulation)"; }

private:
    // Records an op's host time when profiling is on.
    struct Timer {
        CpuDevice* dev;
        Op op;
        std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
        Timer(CpuDevice* d, Op o) : dev(d), op(o) {}
        ~Timer() {
            if (dev->profiling_)
                dev->timings_.push_back(
                    {op, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()});
        }
    };

    DeviceInfo info_;
    std::vector<OpTiming> timings_;
};

}  // namespace

DeviceInfo cpu_device_info() {
    DeviceInfo d;
    d.name = "cpu";
    d.api = Api::reference;
    d.vendor = "libtca";
    d.device = "CPU reference (double accumulation)";
    d.driver = "libtca " TCA_VERSION_STRING;
    d.type = TCA_DEVICE_REFERENCE;
    d.global_memory = 16ull << 30;
    d.max_allocation = 4ull << 30;
    d.fp16_storage = true;
    d.fp16_arithmetic = false;
    return d;
}

std::unique_ptr<Device> make_cpu_device() { return std::make_unique<CpuDevice>(); }

}  // namespace tca::detail
