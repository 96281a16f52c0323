#include "device/roofline.h"

#include <algorithm>
#include <random>
#include <vector>

#include "core/half.h"
#include "iface/iface_fma.h"

namespace tca::detail {

namespace {

constexpr int kWarmup = 1, kRuns = 5;

// Device time of one recorded op `op` (the sum, should the backend split it).
double op_ms(Device& dev, Op op) {
    double ms = 0;
    for (const auto& t : dev.take_timings())
        if (t.op == op) ms += t.ms;
    return ms;
}

// Best (shortest) device time of `run` over kRuns after kWarmup.
template <class F>
double best_ms(Device& dev, Op op, F&& run) {
    double best = 0;
    for (int i = 0; i < kWarmup + kRuns; ++i) {
        run();
        const double ms = op_ms(dev, op);
        if (i >= kWarmup && ms > 0 && (best == 0 || ms < best)) best = ms;
    }
    return best;
}

size_t copy_bytes_for(const DeviceInfo& info) {
    // Past every cache level; GPUs get more so launch overhead is negligible.
    size_t want = info.type == TCA_DEVICE_DISCRETE_GPU || info.type == TCA_DEVICE_INTEGRATED_GPU ? (512u << 20)
                  : info.type == TCA_DEVICE_REFERENCE                                           ? (64u << 20)
                                                                                                : (128u << 20);
    want = std::min<uint64_t>(want, info.max_allocation);
    if (info.global_memory) want = std::min<uint64_t>(want, info.global_memory / 4);
    return want / 16 * 16;
}

int gemm_size_for(const DeviceInfo& info) {
    int n = 512;
    switch (info.type) {
        case TCA_DEVICE_DISCRETE_GPU: n = 4096; break;
        case TCA_DEVICE_INTEGRATED_GPU: n = 2048; break;
        case TCA_DEVICE_REFERENCE: n = 192; break;  // double-precision host loops
        default: break;
    }
    // Each f32 matrix is one buffer: no larger than the device's largest (a forced small limit).
    while (n > 16 && uint64_t(n) * uint64_t(n) * 4 > info.max_allocation) n -= 16;
    return n;
}

double gemm_gflops(Device& dev, DType t, int n) {
    const size_t elems = size_t(n) * n, bytes = elems * dtype_size(t);
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<float> x(elems);
    for (float& v : x) v = u(rng);
    Buffer a = dev.alloc(bytes), b = dev.alloc(bytes), c = dev.alloc(bytes);
    if (t == DType::f32) {
        dev.write({a, 0}, x.data(), bytes);
        dev.write({b, 0}, x.data(), bytes);
    } else {
        std::vector<uint16_t> h(elems);
        for (size_t i = 0; i < elems; ++i) h[i] = float_to_half(x[i]);
        dev.write({a, 0}, h.data(), bytes);
        dev.write({b, 0}, h.data(), bytes);
    }
    const GemmArgs g{{a, 0}, {b, 0}, {c, 0}, t, n, n, n};
    const double ms = best_ms(dev, Op::gemm, [&] { dev.gemm(g); });
    return ms > 0 ? 2.0 * n * double(n) * n / (ms * 1e6) : 0;
}

// Enough work-items to fill every lane of the device several times over and enough rounds that a
// run takes milliseconds (launch overhead negligible), yet well under a second on a CPU driver.
void fma_size_for(const DeviceInfo& info, Roofline& r) {
    switch (info.type) {
        case TCA_DEVICE_DISCRETE_GPU: r.fma_items = 1u << 20, r.fma_iters = 2048; break;
        case TCA_DEVICE_INTEGRATED_GPU: r.fma_items = 1u << 18, r.fma_iters = 1024; break;
        case TCA_DEVICE_REFERENCE: r.fma_items = 256, r.fma_iters = 256; break;  // double-precision host loops
        default: r.fma_items = 1u << 14, r.fma_iters = 1024; break;              // CPU drivers
    }
}

double fma_gflops(Device& dev, DType t, const Roofline& r) {
    Buffer out = dev.alloc(size_t(r.fma_items) * 4);
    FmaArgs f;
    f.out = {out, 0}, f.dtype = t, f.items = r.fma_items, f.iters = r.fma_iters;
    const double ms = best_ms(dev, Op::fma, [&] { dev.fma_probe(f); });
    return ms > 0 ? 2.0 * double(r.fma_items) * r.fma_iters * TCA_FMA_CHAINS / (ms * 1e6) : 0;
}

}  // namespace

Roofline measure_roofline(Device& dev) {
    const DeviceInfo& info = dev.info();
    const bool was_profiling = dev.profiling();
    dev.set_profiling(true);
    dev.take_timings();  // drop records of earlier calls
    Roofline r;
    r.runs = kRuns;
    r.host_timed = info.type == TCA_DEVICE_REFERENCE;
    try {
        r.copy_bytes = copy_bytes_for(info);
        {
            Buffer src = dev.alloc(r.copy_bytes), dst = dev.alloc(r.copy_bytes);
            dev.fill_zero({src, 0}, r.copy_bytes);
            const CopyArgs c{{src, 0}, {dst, 0}, r.copy_bytes};
            const double ms = best_ms(dev, Op::copy, [&] { dev.stream_copy(c); });
            r.copy_gbps = ms > 0 ? 2.0 * double(r.copy_bytes) / (ms * 1e6) : 0;
        }
        r.copy_engine = info.api == Api::reference ? "host memcpy (reference)"
                        : info.api == Api::opencl  ? "tca cl/copy.cl"
                                                   : "tca shaders/copy.comp";
        fma_size_for(info, r);
        r.fma_engine = info.api == Api::reference ? "host loop (reference, double)"
                       : info.api == Api::opencl  ? "tca cl/fma.cl"
                                                  : "tca shaders/fma.comp";
        r.fma_f32_gflops = fma_gflops(dev, DType::f32, r);
        if (dev.fma_supported(DType::f16)) r.fma_f16_gflops = fma_gflops(dev, DType::f16, r);
        r.gemm_size = gemm_size_for(info);
        if (dev.gemm_supported(DType::f32)) {  // not on an OpenCL build without CLBlast
            r.f32_engine = dev.gemm_engine(DType::f32);
            r.f32_gflops = gemm_gflops(dev, DType::f32, r.gemm_size);
        }
        if (dev.gemm_supported(DType::f16)) {
            r.f16_engine = dev.gemm_engine(DType::f16);
            r.f16_gflops = gemm_gflops(dev, DType::f16, r.gemm_size);
        }
    } catch (...) {
        dev.set_profiling(was_profiling);
        throw;
    }
    dev.take_timings();
    dev.set_profiling(was_profiling);
    return r;
}

}  // namespace tca::detail
