#include "bench.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>

#include "core/half.h"

namespace tca::bench {

namespace {

void check(tca_status s, const char* what) {
    if (s != TCA_OK) throw std::runtime_error(fmt::format("{}: {} ({})", what, tca_last_error(), tca_status_name(s)));
}

// RAII owners for API handles.
struct ContextDeleter {
    void operator()(tca_context* c) const { tca_context_destroy(c); }
};
struct TensorDeleter {
    void operator()(tca_tensor* t) const { tca_tensor_destroy(t); }
};
using Context = std::unique_ptr<tca_context, ContextDeleter>;
using TensorPtr = std::unique_ptr<tca_tensor, TensorDeleter>;

Context open(const std::string& name) {
    tca_context* c = nullptr;
    check(tca_context_create(name.c_str(), &c), "open device");
    return Context(c);
}

// A device tensor filled from host floats (converted to fp16 if asked).
TensorPtr upload(tca_context* ctx, tca_dtype dt, int h, int l, int d, const float* data) {
    tca_tensor* t = nullptr;
    check(tca_tensor_create(ctx, dt, h, l, d, &t), "allocate");
    TensorPtr p(t);
    const size_t n = size_t(h) * l * d;
    if (dt == TCA_F32) {
        check(tca_tensor_upload(t, data, n * 4), "upload");
    } else {
        std::vector<uint16_t> half(n);
        for (size_t i = 0; i < n; ++i) half[i] = float_to_half(data[i]);
        check(tca_tensor_upload(t, half.data(), n * 2), "upload");
    }
    return p;
}

TensorPtr output(tca_context* ctx, int h, int l, int d) {
    tca_tensor* t = nullptr;
    check(tca_tensor_create(ctx, TCA_F32, h, l, d, &t), "allocate output");
    return TensorPtr(t);
}

std::vector<float> download(const tca_tensor* t, size_t n) {
    std::vector<float> v(n);
    check(tca_tensor_download(t, v.data(), n * 4), "download");
    return v;
}

std::vector<float> randn(size_t n, unsigned seed, float sigma) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.f, sigma);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

double nmse(const std::vector<float>& ref, const std::vector<float>& x) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        num += (double(ref[i]) - x[i]) * (double(ref[i]) - x[i]);
        den += double(ref[i]) * ref[i];
    }
    return den > 0 ? num / den : num;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

// Runs `call` warmup + runs times with profiling on; returns the median device time.
template <class F>
double time_device(tca_context* ctx, const Config& cfg, F&& call) {
    check(tca_context_set_profiling(ctx, 1), "profiling");
    std::vector<double> ms;
    for (int i = 0; i < cfg.warmup + cfg.runs; ++i) {
        call();
        tca_call_stats st{};
        st.struct_size = sizeof st;
        check(tca_context_last_stats(ctx, &st), "stats");
        if (i >= cfg.warmup) ms.push_back(st.total_ms);
    }
    check(tca_context_set_profiling(ctx, 0), "profiling");
    return median(ms);
}

// Checks the last `rows` query rows of the first KV group against the reference: the device
// and the reference each run a small problem made of exactly those rows' keys.
double check_prefill(tca_context* dev, tca_context* ref, const Config& cfg, int L, const std::vector<float>& q,
                     const std::vector<float>& k, const std::vector<float>& v) {
    const int group = cfg.heads / cfg.kv_heads, d = cfg.dim;
    const int rows = std::min(cfg.check_rows, L);
    // Query rows L-rows..L-1 of heads 0..group-1, as a [group, rows, d] tensor; keys of KV head 0.
    std::vector<float> qs(size_t(group) * rows * d);
    for (int h = 0; h < group; ++h)
        std::memcpy(&qs[size_t(h) * rows * d], &q[(size_t(h) * L + (L - rows)) * d], size_t(rows) * d * 4);
    std::vector<float> outs[2];
    int i = 0;
    for (tca_context* ctx : {ref, dev}) {
        auto tq = upload(ctx, TCA_F32, group, rows, d, qs.data());
        auto tk = upload(ctx, cfg.kv_dtype, 1, L, d, k.data());
        auto tv = upload(ctx, cfg.kv_dtype, 1, L, d, v.data());
        auto to = output(ctx, group, rows, d);
        check(tca_dense_prefill_chunk(ctx, tq.get(), tk.get(), tv.get(), to.get(), L - rows, 0.f), "check prefill");
        outs[i++] = download(to.get(), qs.size());
    }
    return nmse(outs[0], outs[1]);
}

// Per-row relative L1 error of `x` against `ref`, both [heads, L, d]: (mean, max).
std::pair<double, double> rel_l1(const std::vector<float>& ref, const std::vector<float>& x, int d) {
    double sum = 0, worst = 0;
    const size_t rows = ref.size() / d;
    for (size_t r = 0; r < rows; ++r) {
        double num = 0, den = 0;
        for (int i = 0; i < d; ++i) {
            num += std::fabs(double(ref[r * d + i]) - x[r * d + i]);
            den += std::fabs(double(ref[r * d + i]));
        }
        const double e = den > 0 ? num / den : num;
        sum += e;
        worst = std::max(worst, e);
    }
    return {sum / rows, worst};
}

// TCA prefill (selection + sparse attention + compaction) and one decode step through a
// tca_cache at a fixed keep ratio, on the same inputs as the dense record.
Record run_tca(tca_context* ctx, const Config& cfg, const Record& dense, double keep, const tca_tensor* q,
               const tca_tensor* k, const tca_tensor* v, const std::vector<float>& dense_o) {
    const int hq = cfg.heads, hkv = cfg.kv_heads, d = cfg.dim, L = dense.length;
    tca_params params{};
    params.struct_size = sizeof params;
    check(tca_params_init(&params), "params");
    params.block = cfg.block, params.window = cfg.window;
    tca_profile* prof = nullptr;
    check(tca_profile_fixed(&params, 1, hq, hkv, d, keep, &prof), "fixed profile");
    std::unique_ptr<tca_profile, tca_status (*)(tca_profile*)> prof_owner(prof, tca_profile_destroy);
    auto to = output(ctx, hq, L, d);
    auto q1 = output(ctx, hq, 1, d), o1 = output(ctx, hq, 1, d);
    tca_tensor *k1 = nullptr, *v1 = nullptr;
    check(tca_tensor_create(ctx, cfg.kv_dtype, hkv, 1, d, &k1), "allocate");
    check(tca_tensor_create(ctx, cfg.kv_dtype, hkv, 1, d, &v1), "allocate");
    TensorPtr k1_owner(k1), v1_owner(v1);
    tca_cache* cache = nullptr;
    check(tca_cache_create(ctx, prof, 0, hq, hkv, d, cfg.kv_dtype, L + 1, &cache), "cache");
    std::unique_ptr<tca_cache, tca_status (*)(tca_cache*)> cache_owner(cache, tca_cache_destroy);

    Record r = dense;
    r.method = fmt::format("tca@{:.2f}", keep);
    check(tca_context_set_profiling(ctx, 1), "profiling");
    std::vector<tca_call_stats> pre, dec;
    for (int i = 0; i < cfg.warmup + cfg.runs; ++i) {
        check(tca_cache_reset(cache), "reset");
        check(tca_cache_prefill(cache, q, k, v, to.get()), "tca prefill");
        tca_call_stats st{};
        st.struct_size = sizeof st;
        check(tca_context_last_stats(ctx, &st), "stats");
        check(tca_cache_decode(cache, q1.get(), k1, v1, o1.get()), "tca decode");
        tca_call_stats sd{};
        sd.struct_size = sizeof sd;
        check(tca_context_last_stats(ctx, &sd), "stats");
        if (i >= cfg.warmup) pre.push_back(st), dec.push_back(sd);
    }
    check(tca_context_set_profiling(ctx, 0), "profiling");
    // The run with the median total stands for the case, so its parts add up to its total.
    auto by_total = [](const tca_call_stats& a, const tca_call_stats& b) { return a.total_ms < b.total_ms; };
    std::sort(pre.begin(), pre.end(), by_total);
    std::sort(dec.begin(), dec.end(), by_total);
    const tca_call_stats& m = pre[pre.size() / 2];
    r.prefill_ms = m.total_ms, r.score_ms = m.score_ms, r.metric_ms = m.metric_ms, r.sort_ms = m.sort_ms;
    r.select_ms = m.select_ms, r.attend_ms = m.attend_ms, r.other_ms = m.other_ms;
    r.decode_ms = dec[dec.size() / 2].total_ms;
    r.prefill_speedup = dense.prefill_ms / r.prefill_ms;
    r.decode_speedup = dense.decode_ms / r.decode_ms;
    uint64_t bytes = 0, dense_bytes = 0;
    check(tca_cache_reset(cache), "reset");
    check(tca_cache_prefill(cache, q, k, v, to.get()), "tca prefill");
    check(tca_cache_size(cache, &bytes, &dense_bytes, nullptr), "size");
    r.kv_bytes = double(bytes);
    r.kv_reduction = 1.0 - double(bytes) / double(dense_bytes);
    const auto [mean, worst] = rel_l1(dense_o, download(to.get(), dense_o.size()), d);
    r.mean_rel_l1 = mean, r.max_rel_l1 = worst;
    r.prefill_gflops = r.decode_gbps = 0;
    r.prefill_nmse = r.decode_nmse = 0;
    return r;
}

}  // namespace

std::vector<Record> run(const Config& cfg) {
    std::vector<Record> out;
    auto ref = open("cpu");
    std::vector<std::string> devices = cfg.devices;
    if (devices.empty()) {
        char name[64];
        check(tca_default_device_name(name, sizeof name), "default device");
        devices.push_back(name);
    }
    const size_t total = devices.size() * cfg.lengths.size();
    size_t done = 0;
    for (const auto& dev_name : devices) {
        auto ctx = open(dev_name);
        tca_device_info info{};
        info.struct_size = sizeof info;
        check(tca_context_device_info(ctx.get(), &info), "device info");
        for (int L : cfg.lengths) {
            fmt::print(stderr, "[{}/{}] {} L={} dense\n", ++done, total, dev_name, L);
            const int hq = cfg.heads, hkv = cfg.kv_heads, d = cfg.dim;
            const auto q = randn(size_t(hq) * L * d, cfg.seed, 1.0f);
            const auto k = randn(size_t(hkv) * L * d, cfg.seed + 1, 1.0f);
            const auto v = randn(size_t(hkv) * L * d, cfg.seed + 2, 1.0f);
            auto tq = upload(ctx.get(), TCA_F32, hq, L, d, q.data());
            auto tk = upload(ctx.get(), cfg.kv_dtype, hkv, L, d, k.data());
            auto tv = upload(ctx.get(), cfg.kv_dtype, hkv, L, d, v.data());
            auto to = output(ctx.get(), hq, L, d);
            // Decode: the query of the last token against all L keys.
            auto tq1 = upload(ctx.get(), TCA_F32, hq, 1, d, q.data());
            auto to1 = output(ctx.get(), hq, 1, d);

            Record r;
            r.device = dev_name, r.api = info.api, r.device_name = info.device, r.driver = info.driver;
            r.method = "dense", r.length = L, r.heads = hq, r.kv_heads = hkv, r.dim = d;
            r.kv_dtype = cfg.kv_dtype == TCA_F32 ? "f32" : "f16";
            const double es = cfg.kv_dtype == TCA_F32 ? 4 : 2;
            r.kv_bytes = 2.0 * hkv * L * d * es;
            r.prefill_ms = time_device(ctx.get(), cfg, [&] {
                check(tca_dense_prefill(ctx.get(), tq.get(), tk.get(), tv.get(), to.get(), 0.f), "prefill");
            });
            r.decode_ms = time_device(ctx.get(), cfg, [&] {
                check(tca_dense_decode(ctx.get(), tq1.get(), tk.get(), tv.get(), L, to1.get(), 0.f), "decode");
            });
            // Causal prefill: QK^T and PV over L(L+1)/2 pairs per head, 2 flops per multiply-add.
            const double flops = 4.0 * hq * d * (double(L) * (L + 1) / 2);
            r.prefill_gflops = flops / (r.prefill_ms * 1e6);
            r.decode_gbps = (r.kv_bytes + 2.0 * hq * d * 4) / (r.decode_ms * 1e6);
            r.prefill_nmse = check_prefill(ctx.get(), ref.get(), cfg, L, q, k, v);
            // Decode check: one group against the reference.
            {
                const int group = hq / hkv;
                std::vector<float> outs[2];
                int i = 0;
                for (tca_context* c : {ref.get(), ctx.get()}) {
                    auto a = upload(c, TCA_F32, group, 1, d, q.data());
                    auto b = upload(c, cfg.kv_dtype, 1, L, d, k.data());
                    auto e = upload(c, cfg.kv_dtype, 1, L, d, v.data());
                    auto o = output(c, group, 1, d);
                    check(tca_dense_decode(c, a.get(), b.get(), e.get(), L, o.get(), 0.f), "check decode");
                    outs[i++] = download(o.get(), size_t(group) * d);
                }
                r.decode_nmse = nmse(outs[0], outs[1]);
            }
            out.push_back(r);
            const auto dense_o = download(to.get(), q.size());
            for (double keep : cfg.keep) out.push_back(run_tca(ctx.get(), cfg, r, keep, tq.get(), tk.get(), tv.get(), dense_o));
        }
    }
    return out;
}

void print_table(const std::vector<Record>& records) {
    fmt::print("{:<9} {:<9} {:>6} {:>10} {:>8} {:>8} {:>9} {:>7} {:>8} {:>8} {:>6} {:>6} {:>7} {:>8}\n", "device",
               "method", "length", "prefill ms", "GFLOP/s", "speedup", "decode ms", "GB/s", "speedup", "KV MiB",
               "KV -%", "sel %", "rel L1", "NMSE");
    for (const auto& r : records) {
        const bool tca = r.method != "dense";
        const double sel = r.score_ms + r.metric_ms + r.sort_ms + r.select_ms;
        auto only = [](bool on, const std::string& s) { return on ? s : std::string(); };
        fmt::print("{:<9} {:<9} {:>6} {:>10.2f} {:>8} {:>8} {:>9.3f} {:>7} {:>8} {:>8.2f} {:>6} {:>6} {:>7} {:>8}\n",
                   r.device, r.method, r.length, r.prefill_ms, only(!tca, fmt::format("{:.1f}", r.prefill_gflops)),
                   only(tca, fmt::format("{:.2f}x", r.prefill_speedup)), r.decode_ms,
                   only(!tca, fmt::format("{:.2f}", r.decode_gbps)), only(tca, fmt::format("{:.2f}x", r.decode_speedup)),
                   r.kv_bytes / 1048576.0, only(tca, fmt::format("{:.1f}", 100 * r.kv_reduction)),
                   only(tca, fmt::format("{:.1f}", 100 * sel / r.prefill_ms)), only(tca, fmt::format("{:.3f}", r.mean_rel_l1)),
                   only(!tca, fmt::format("{:.1e}", std::max(r.prefill_nmse, r.decode_nmse))));
    }
    fmt::print("GFLOP/s and GB/s: dense prefill compute and decode K/V read rates (device timestamps).\n");
    fmt::print("speedup: dense time / TCA time on the same device and inputs; KV -%: cache bytes saved; sel %: share of\n"
               "TCA prefill spent in score+metric+sort+select; rel L1: mean per-row relative L1 error vs dense;\n"
               "NMSE: dense kernels vs the CPU reference on sampled rows. Inputs are random (flat attention), so the\n"
               "TCA error shows what a fixed budget costs on the hardest case; calibrated budgets adapt per head.\n");
}

}  // namespace tca::bench
