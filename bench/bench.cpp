// tca bench: the measurement loop (see bench.h). Every measured call goes through tca.h.
#include "bench.h"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>

#include "bench_api.h"
#include "bench_check.h"
#include "core/checked.h"
#include "core/dtype.h"
#include "core/half.h"

namespace tca::detail::bench {

// ---- API helpers (bench_api.h) ---------------------------------------------------------------

namespace {

// The generator's own message, unprefixed: what `tca bench` has always printed for a bad workload.
void check_synth(tca_status s) {
    if (s != TCA_OK) throw ApiError(s, tca_last_error());
}

tca_synth_spec synth_spec(const std::string& kind, int heads, int kv_heads, int tokens, int dim, uint64_t seed) {
    tca_synth_spec spec{};
    spec.struct_size = sizeof spec;
    spec.kind = kind.c_str();
    spec.q_heads = heads, spec.kv_heads = kv_heads, spec.tokens = tokens, spec.head_dim = dim, spec.seed = seed;
    return spec;
}

}  // namespace

void check_synth_kind(const std::string& kind) {
    const tca_synth_spec spec = synth_spec(kind, 1, 1, 1, 2, 0);  // the smallest valid shape: the kind alone
    const char* name = nullptr;
    check_synth(tca_synth_head_kind(&spec, 0, &name));
}

Workload synth_workload(const std::string& kind, int heads, int kv_heads, int tokens, int dim, uint64_t seed) {
    const tca_synth_spec spec = synth_spec(kind, heads, kv_heads, tokens, dim, seed);
    const char* first = nullptr;
    check_synth(tca_synth_head_kind(&spec, 0, &first));  // the whole spec, before allocating
    Workload w;
    for (auto [a, h] : {std::pair{&w.q, heads}, {&w.k, kv_heads}, {&w.v, kv_heads}}) {
        a->heads = h, a->tokens = tokens, a->dim = dim;
        a->data.resize(checked_product({h, tokens, dim}, "synthetic workload"));
    }
    check_synth(tca_synth_workload(&spec, w.q.data.data(), w.q.data.size(), w.k.data.data(), w.k.data.size(),
                                   w.v.data.data(), w.v.data.size()));
    return w;
}

Context open(const std::string& name) {
    tca_context* c = nullptr;
    check(tca_context_create(name.c_str(), &c), "open device");
    return Context(c);
}

TensorPtr upload(tca_context* ctx, tca_dtype dt, int h, int l, int d, const float* data) {
    tca_tensor* t = nullptr;
    check(tca_tensor_create(ctx, dt, h, l, d, &t), "allocate");
    TensorPtr p(t);
    const size_t n = size_t(h) * l * d;
    if (dt == TCA_F32) {
        check(tca_tensor_upload(t, data, n * 4), "upload");
    } else {
        const DType format = dt == TCA_F16 ? DType::f16 : DType::bf16;
        std::vector<uint16_t> half(n);
        for (size_t i = 0; i < n; ++i) half[i] = float_to_16bit(format, data[i]);
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

namespace {

tca_call_stats stats_of(tca_context* ctx) {
    tca_call_stats st{};
    st.struct_size = sizeof st;
    check(tca_context_last_stats(ctx, &st), "stats");
    return st;
}

// The run whose total is the median stands for the case, so its parts add up to its total.
tca_call_stats median_run(std::vector<tca_call_stats> v) {
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.total_ms < b.total_ms; });
    return v[v.size() / 2];
}

const char* type_name(tca_device_type t) {
    switch (t) {
        case TCA_DEVICE_DISCRETE_GPU: return "discrete_gpu";
        case TCA_DEVICE_INTEGRATED_GPU: return "integrated_gpu";
        case TCA_DEVICE_CPU_DRIVER: return "cpu_driver";
        case TCA_DEVICE_REFERENCE: return "reference";
        default: return "other";
    }
}

bool is_gpu(const DeviceFacts& f) { return f.type == "discrete_gpu" || f.type == "integrated_gpu"; }

std::string now_utc() {
    const std::time_t t = std::time(nullptr);
    char b[32];
    std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    return b;
}

tca_params params_of(const Config& cfg) {
    tca_params p{};
    p.struct_size = sizeof p;
    check(tca_params_init(&p), "params");
    p.block = cfg.block, p.window = cfg.window, p.tau = cfg.tau, p.alpha = cfg.alpha;
    return p;
}

// Synthetic inputs of the workload kind; K/V rounded to what the device will store, so host-side
// checks see exactly the device's values.
Workload make_inputs(const Config& cfg, int L, uint64_t seed) {
    Workload s = synth_workload(cfg.workload, cfg.heads, cfg.kv_heads, L, cfg.dim, seed);
    if (cfg.kv_dtype != TCA_F32) {
        const DType t = cfg.kv_dtype == TCA_F16 ? DType::f16 : DType::bf16;
        for (auto* x : {&s.k, &s.v})
            for (float& e : x->data) e = float_from_16bit(t, float_to_16bit(t, e));
    }
    return s;
}

// Progress on stderr: which case, how many are left.
struct Progress {
    size_t total = 0, done = 0;
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
    void step(const std::string& what) {
        ++done;
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        fmt::print(stderr, "[{}/{}] {} ({} left, {:.0f} s elapsed)\n", done, total, what, total - done, s);
    }
};

// One device's measurements at one length.
class Case {
public:
    Case(const Config& cfg, tca_context* ctx, tca_context* ref, const DeviceRun& dr, int L, Progress& progress,
         Results& out)
        : cfg_(cfg), ctx_(ctx), ref_(ref), dr_(dr), L_(L), progress_(progress), out_(out) {
        shape_ = CaseShape{cfg.heads, cfg.kv_heads, L, cfg.dim, cfg.window};
    }

    void run(const std::vector<std::pair<std::string, tca_profile*>>& profiles) {
        if (cfg_.decode_only) return run_decode_only(profiles);
        if (cfg_.chunk > 0) {
            progress_.step(fmt::format("{} L={} chunks of {}", dr_.facts.name, L_, cfg_.chunk));
            return run_chunked(cfg_, ctx_, dr_.facts, L_, make_inputs(cfg_, L_, cfg_.seed + 1000), profiles, out_);
        }
        data_ = make_inputs(cfg_, L_, cfg_.seed + 1000);
        const int hq = cfg_.heads, hkv = cfg_.kv_heads, d = cfg_.dim;
        tq_ = upload(ctx_, TCA_F32, hq, L_, d, data_.q.data.data());
        tk_ = upload(ctx_, cfg_.kv_dtype, hkv, L_, d, data_.k.data.data());
        tv_ = upload(ctx_, cfg_.kv_dtype, hkv, L_, d, data_.v.data.data());
        progress_.step(fmt::format("{} L={} dense", dr_.facts.name, L_));
        const Record dense = run_dense();
        out_.records.push_back(dense);
        bounds_ = bound_rows(data_.q.data, data_.k.data, data_.v.data, shape_, cfg_.bound_rows);
        for (const auto& [name, prof] : profiles) {
            progress_.step(fmt::format("{} L={} tca {}", dr_.facts.name, L_, name));
            try {
                out_.records.push_back(run_tca(dense, name, prof));
            } catch (const ApiError& e) {
                if (e.status != TCA_ERROR_OUT_OF_MEMORY && e.status != TCA_ERROR_UNSUPPORTED) throw;
                skip(out_, dr_.facts.name, L_, "tca " + name, e.what());
            }
        }
    }

    // --decode-only: the caches are built once per length and profile; only decode steps are timed.
    void run_decode_only(const std::vector<std::pair<std::string, tca_profile*>>& profiles) {
        data_ = make_inputs(cfg_, L_, cfg_.seed + 1000);
        const int hq = cfg_.heads, hkv = cfg_.kv_heads, d = cfg_.dim;
        tk_ = upload(ctx_, cfg_.kv_dtype, hkv, L_, d, data_.k.data.data());
        tv_ = upload(ctx_, cfg_.kv_dtype, hkv, L_, d, data_.v.data.data());
        progress_.step(fmt::format("{} L={} dense decode", dr_.facts.name, L_));
        std::vector<float> q1(size_t(hq) * d);
        for (int h = 0; h < hq; ++h) std::memcpy(&q1[size_t(h) * d], data_.q.row(h, L_ - 1), size_t(d) * 4);
        auto tq1 = upload(ctx_, TCA_F32, hq, 1, d, q1.data());
        auto to1 = output(ctx_, hq, 1, d);
        Record dense = base();
        dense.method = dense.profile = "dense";
        dense.decode_only = true;
        dense.decode_ms = median_ms(
            [&] { check(tca_dense_decode(ctx_, tq1.get(), tk_.get(), tv_.get(), L_, to1.get(), 0.f), "decode"); },
            std::max(cfg_.runs, cfg_.runs * cfg_.decode_steps));
        dense.kv_bytes = dense.decode_kv_bytes_per_step = dense.kv_dense_bytes;
        rates(dense);
        dense.dense_nmse_decode = check_decode(q1);
        out_.records.push_back(dense);
        if (profiles.empty()) return;
        // The TCA caches take the prompt through the API's only way in, one (untimed) prefill.
        tq_ = upload(ctx_, TCA_F32, hq, L_, d, data_.q.data.data());
        for (const auto& [name, prof] : profiles) {
            progress_.step(fmt::format("{} L={} tca {} decode", dr_.facts.name, L_, name));
            try {
                out_.records.push_back(decode_only_tca(dense, name, prof, q1));
            } catch (const ApiError& e) {
                if (e.status != TCA_ERROR_OUT_OF_MEMORY && e.status != TCA_ERROR_UNSUPPORTED) throw;
                skip(out_, dr_.facts.name, L_, "tca " + name, e.what());
            }
        }
        tq_.reset();
    }

    Record decode_only_tca(const Record& dense, const std::string& name, tca_profile* prof, const std::vector<float>& q1) {
        const int hq = cfg_.heads, hkv = cfg_.kv_heads, d = cfg_.dim;
        std::vector<float> k1(size_t(hkv) * d), v1(size_t(hkv) * d);
        for (int h = 0; h < hkv; ++h) {
            std::memcpy(&k1[size_t(h) * d], data_.k.row(h, L_ - 1), size_t(d) * 4);
            std::memcpy(&v1[size_t(h) * d], data_.v.row(h, L_ - 1), size_t(d) * 4);
        }
        auto tq1 = upload(ctx_, TCA_F32, hq, 1, d, q1.data()), to1 = output(ctx_, hq, 1, d);
        auto tk1 = upload(ctx_, cfg_.kv_dtype, hkv, 1, d, k1.data()), tv1 = upload(ctx_, cfg_.kv_dtype, hkv, 1, d, v1.data());
        const int steps = cfg_.warmup + std::max(cfg_.runs, cfg_.runs * cfg_.decode_steps);
        tca_cache* c = nullptr;
        check(tca_cache_create(ctx_, prof, 0, hq, hkv, d, cfg_.kv_dtype, L_ + steps, &c), "cache");
        CachePtr cache(c);
        {
            auto to = output(ctx_, hq, L_, d);
            check(tca_cache_prefill(c, tq_.get(), tk_.get(), tv_.get(), to.get()), "tca prefill");
        }
        Record r = base();
        r.method = "tca", r.profile = name, r.decode_only = true;
        uint64_t bytes = 0, dense_bytes = 0;
        check(tca_cache_size(c, &bytes, &dense_bytes, nullptr), "size");
        r.kv_bytes = r.decode_kv_bytes_per_step = double(bytes);
        r.kv_reduction = dense_bytes ? 1.0 - double(bytes) / double(dense_bytes) : 0;
        std::vector<tca_call_stats> dec;
        double bytes_sum = 0;
        const double token_bytes = 2.0 * hkv * d * (cfg_.kv_dtype == TCA_F32 ? 4 : 2);
        check(tca_context_set_profiling(ctx_, 1), "profiling");
        for (int i = 0; i < steps; ++i) {
            uint64_t before = 0;
            check(tca_cache_size(c, &before, nullptr, nullptr), "size");
            check(tca_cache_decode(c, tq1.get(), tk1.get(), tv1.get(), to1.get()), "tca decode");
            if (i >= cfg_.warmup) dec.push_back(stats_of(ctx_)), bytes_sum += double(before) + token_bytes;
        }
        check(tca_context_set_profiling(ctx_, 0), "profiling");
        r.decode_ms = median_run(dec).total_ms;
        // A step reads the cache as it stands (G + pending + ring) plus its own token.
        r.kv_bytes = r.decode_kv_bytes_per_step = bytes_sum / double(dec.size());
        r.decode_speedup = dense.decode_ms / r.decode_ms;
        r.keep_fraction = 0;
        int64_t kept_total = 0;
        for (int h = 0; h < hkv; ++h) {
            int n = 0;
            check(tca_cache_kept_positions(c, h, nullptr, 0, &n), "kept positions");
            kept_total += n;
        }
        const int n_global = std::max(0, L_ - cfg_.window);
        r.keep_fraction = n_global > 0 ? std::min(1.0, double(kept_total) / (double(n_global) * hkv)) : 1.0;
        r.attended_fraction = 0;
        rates(r);
        return r;
    }

    static void skip(Results& out, const std::string& dev, int L, const std::string& what, const std::string& why) {
        fmt::print(stderr, "skip: {} L={} {}: {}\n", dev, L, what, why);
        out.skipped.push_back({dev, L, what, why});
    }

private:
    template <class F>
    double median_ms(F&& call, int n_runs = 0) {
        check(tca_context_set_profiling(ctx_, 1), "profiling");
        std::vector<tca_call_stats> runs;
        for (int i = 0; i < cfg_.warmup + (n_runs > 0 ? n_runs : cfg_.runs); ++i) {
            call();
            if (i >= cfg_.warmup) runs.push_back(stats_of(ctx_));
        }
        check(tca_context_set_profiling(ctx_, 0), "profiling");
        return median_run(runs).total_ms;
    }

    Record base() const {
        Record r;
        r.dev = dr_.facts;
        r.length = L_, r.heads = cfg_.heads, r.kv_heads = cfg_.kv_heads, r.dim = cfg_.dim;
        r.window = cfg_.window, r.block = cfg_.block;
        r.kv_dtype = cfg_.kv_dtype == TCA_F32 ? "f32" : cfg_.kv_dtype == TCA_F16 ? "f16" : "bf16";
        const double es = cfg_.kv_dtype == TCA_F32 ? 4 : 2;
        r.kv_dense_bytes = 2.0 * cfg_.kv_heads * double(L_) * cfg_.dim * es;
        return r;
    }

    // Attention flops of a causal prefill over `pairs` (query, key) pairs: QK^T and PV.
    double flops(double fraction) const {
        return 4.0 * cfg_.heads * cfg_.dim * (double(L_) * (L_ + 1) / 2) * fraction;
    }

    void rates(Record& r) const {
        r.prefill_gflops = r.stages.attend > 0 ? flops(r.attended_fraction) / (r.stages.attend * 1e6) : 0;
        // Decode reads the cached K/V once (plus q and o, negligible).
        r.decode_gbps = r.decode_ms > 0 ? r.kv_bytes / (r.decode_ms * 1e6) : 0;
        const auto& rl = dr_.roofline;
        r.prefill_roofline = rl.f32_peak_gflops() > 0 ? r.prefill_gflops / rl.f32_peak_gflops() : 0;
        r.prefill_gemm_share = rl.f32_gflops > 0 ? r.prefill_gflops / rl.f32_gflops : 0;
        r.decode_roofline = rl.copy_gbps > 0 ? r.decode_gbps / rl.copy_gbps : 0;
        r.decode_copy_share = r.decode_roofline;
        r.decode_kv_bytes_per_step = r.kv_bytes;
    }

    Record run_dense() {
        const int hq = cfg_.heads, d = cfg_.dim;
        Record r = base();
        r.method = r.profile = "dense";
        auto to = output(ctx_, hq, L_, d);
        // Decode: the last token's query against all L keys.
        std::vector<float> q1(size_t(hq) * d);
        for (int h = 0; h < hq; ++h) std::memcpy(&q1[size_t(h) * d], data_.q.row(h, L_ - 1), size_t(d) * 4);
        auto tq1 = upload(ctx_, TCA_F32, hq, 1, d, q1.data());
        auto to1 = output(ctx_, hq, 1, d);
        r.prefill_ms = median_ms([&] { check(tca_dense_prefill(ctx_, tq_.get(), tk_.get(), tv_.get(), to.get(), 0.f), "prefill"); });
        r.stages.attend = r.prefill_ms;
        r.decode_ms = median_ms(
            [&] { check(tca_dense_decode(ctx_, tq1.get(), tk_.get(), tv_.get(), L_, to1.get(), 0.f), "decode"); },
            std::max(cfg_.runs, cfg_.runs * cfg_.decode_steps));
        r.kv_bytes = r.kv_dense_bytes;
        rates(r);
        dense_o_ = download(to.get(), data_.q.data.size());
        r.dense_nmse_prefill = check_prefill_rows();
        r.dense_nmse_decode = check_decode(q1);
        return r;
    }

    // The last check_rows query rows of the first KV group, on the device and on the reference.
    double check_prefill_rows() {
        const int group = cfg_.heads / cfg_.kv_heads, d = cfg_.dim, rows = std::min(cfg_.check_rows, L_);
        std::vector<float> qs(size_t(group) * rows * d);
        for (int h = 0; h < group; ++h) std::memcpy(&qs[size_t(h) * rows * d], data_.q.row(h, L_ - rows), size_t(rows) * d * 4);
        std::vector<float> outs[2];
        int i = 0;
        for (tca_context* c : {ref_, ctx_}) {
            auto tq = upload(c, TCA_F32, group, rows, d, qs.data());
            auto tk = upload(c, cfg_.kv_dtype, 1, L_, d, data_.k.data.data());
            auto tv = upload(c, cfg_.kv_dtype, 1, L_, d, data_.v.data.data());
            auto to = output(c, group, rows, d);
            check(tca_dense_prefill_chunk(c, tq.get(), tk.get(), tv.get(), to.get(), L_ - rows, 0.f), "check prefill");
            outs[i++] = download(to.get(), qs.size());
        }
        return nmse(outs[0], outs[1]);
    }

    double check_decode(const std::vector<float>& q1) {
        const int group = cfg_.heads / cfg_.kv_heads, d = cfg_.dim;
        std::vector<float> outs[2];
        int i = 0;
        for (tca_context* c : {ref_, ctx_}) {
            auto a = upload(c, TCA_F32, group, 1, d, q1.data());
            auto b = upload(c, cfg_.kv_dtype, 1, L_, d, data_.k.data.data());
            auto e = upload(c, cfg_.kv_dtype, 1, L_, d, data_.v.data.data());
            auto o = output(c, group, 1, d);
            check(tca_dense_decode(c, a.get(), b.get(), e.get(), L_, o.get(), 0.f), "check decode");
            outs[i++] = download(o.get(), size_t(group) * d);
        }
        return nmse(outs[0], outs[1]);
    }

    // TCA prefill (selection, sparse attention, compaction), then decode_steps decode steps, through
    // a cache. The decode median is over all steps of all runs (the cache grows by a few tokens).
    Record run_tca(const Record& dense, const std::string& name, tca_profile* prof) {
        const int hq = cfg_.heads, hkv = cfg_.kv_heads, d = cfg_.dim;
        auto to = output(ctx_, hq, L_, d);
        // The decode step's token: the last prompt token's q/k/v again (any finite data times the same).
        std::vector<float> q1(size_t(hq) * d), k1(size_t(hkv) * d), v1(size_t(hkv) * d);
        for (int h = 0; h < hq; ++h) std::memcpy(&q1[size_t(h) * d], data_.q.row(h, L_ - 1), size_t(d) * 4);
        for (int h = 0; h < hkv; ++h) {
            std::memcpy(&k1[size_t(h) * d], data_.k.row(h, L_ - 1), size_t(d) * 4);
            std::memcpy(&v1[size_t(h) * d], data_.v.row(h, L_ - 1), size_t(d) * 4);
        }
        auto tq1 = upload(ctx_, TCA_F32, hq, 1, d, q1.data()), to1 = output(ctx_, hq, 1, d);
        auto tk1 = upload(ctx_, cfg_.kv_dtype, hkv, 1, d, k1.data()), tv1 = upload(ctx_, cfg_.kv_dtype, hkv, 1, d, v1.data());
        tca_cache* c = nullptr;
        check(tca_cache_create(ctx_, prof, 0, hq, hkv, d, cfg_.kv_dtype, L_ + cfg_.decode_steps, &c), "cache");
        CachePtr cache(c);

        Record r = base();
        r.method = "tca", r.profile = name;
        check(tca_context_set_profiling(ctx_, 1), "profiling");
        std::vector<tca_call_stats> pre, dec;
        for (int i = 0; i < cfg_.warmup + cfg_.runs; ++i) {
            check(tca_cache_reset(c), "reset");
            check(tca_cache_prefill(c, tq_.get(), tk_.get(), tv_.get(), to.get()), "tca prefill");
            const tca_call_stats sp = stats_of(ctx_);
            if (i >= cfg_.warmup) pre.push_back(sp);
            for (int step = 0; step < cfg_.decode_steps; ++step) {
                check(tca_cache_decode(c, tq1.get(), tk1.get(), tv1.get(), to1.get()), "tca decode");
                if (i >= cfg_.warmup) dec.push_back(stats_of(ctx_));
            }
        }
        check(tca_context_set_profiling(ctx_, 0), "profiling");
        const tca_call_stats m = median_run(pre);
        r.prefill_ms = m.total_ms;
        r.stages = Stages{m.score_ms, m.metric_ms, m.sort_ms, m.select_ms, m.attend_ms, m.other_ms};
        r.decode_ms = median_run(dec).total_ms;
        r.prefill_speedup = dense.prefill_ms / r.prefill_ms;
        r.decode_speedup = dense.decode_ms / r.decode_ms;

        // Sizes, kept sets and outputs of one more (untimed) prefill.
        check(tca_cache_reset(c), "reset");
        check(tca_cache_prefill(c, tq_.get(), tk_.get(), tv_.get(), to.get()), "tca prefill");
        uint64_t bytes = 0, dense_bytes = 0;
        check(tca_cache_size(c, &bytes, &dense_bytes, nullptr), "size");
        r.kv_bytes = double(bytes);
        r.kv_reduction = dense_bytes ? 1.0 - double(bytes) / double(dense_bytes) : 0;
        std::vector<std::vector<int>> kept(static_cast<size_t>(hkv));
        int64_t kept_total = 0;
        for (int h = 0; h < hkv; ++h) {
            int n = 0;
            check(tca_cache_kept_positions(c, h, nullptr, 0, &n), "kept positions");
            kept[size_t(h)].resize(size_t(n));
            check(tca_cache_kept_positions(c, h, kept[size_t(h)].data(), n, &n), "kept positions");
            kept_total += n;
        }
        const int n_global = std::max(0, L_ - cfg_.window);
        r.keep_fraction = n_global > 0 ? double(kept_total) / (double(n_global) * hkv) : 1.0;
        r.attended_fraction = attended_fraction(kept, shape_);
        rates(r);
        const auto tca_o = download(to.get(), dense_o_.size());
        std::tie(r.mean_rel_l1, r.max_rel_l1) = rel_l1(dense_o_, tca_o, shape_, cfg_.window);
        const BoundCheck b = check_bound(bounds_, kept, dense_o_, tca_o, shape_);
        r.worst_bound_slack = b.worst_slack, r.max_bound_use = b.max_use, r.bound_rows = b.rows;
        return r;
    }

    const Config& cfg_;
    tca_context* ctx_;
    tca_context* ref_;
    const DeviceRun& dr_;
    int L_;
    Progress& progress_;
    Results& out_;
    CaseShape shape_;
    Workload data_;
    TensorPtr tq_, tk_, tv_;
    std::vector<float> dense_o_;
    BoundRows bounds_;
};

DeviceRun describe(tca_context* ctx, const Config& cfg) {
    tca_device_info info{};
    info.struct_size = sizeof info;
    check(tca_context_device_info(ctx, &info), "device info");
    DeviceRun d;
    d.facts = DeviceFacts{info.name, info.api, info.vendor, info.device, info.driver, type_name(info.type),
                          info.global_memory, info.max_allocation};
    d.lengths = cfg.lengths;
    if (d.lengths.empty()) {
        d.lengths = {4096, 8192, 16384, 32768};
        if (is_gpu(d.facts)) d.lengths.insert(d.lengths.end(), {65536, 131072});
    }
    return d;
}

RooflineFacts measure_roofline(tca_context* ctx) {
    tca_roofline r{};
    r.struct_size = sizeof r;
    check(tca_device_roofline(ctx, &r), "roofline");
    RooflineFacts f{r.copy_gbps,  r.f32_gflops,  r.f16_gflops,  r.copy_bytes, r.gemm_size,
                    r.runs,       r.host_timed != 0, r.copy_engine, r.f32_engine, r.f16_engine};
    f.fma_f32_gflops = r.fma_f32_gflops, f.fma_f16_gflops = r.fma_f16_gflops, f.fma_engine = r.fma_engine;
    return f;
}

// Largest single buffer a case at length L allocates: q and o are [Hq, L, d] f32.
uint64_t largest_buffer(const Config& cfg, int L) { return uint64_t(cfg.heads) * L * cfg.dim * 4; }

// The calibrated profile: one forward pass over a synthetic calibration sequence of the workload
// kind (a seed the measured inputs do not use), on the first device where it fits.
ProfilePtr calibrate(const Config& cfg, int L, tca_context* ctx, const DeviceFacts& dev, Calibration& cal) {
    const auto data = make_inputs(cfg, L, cfg.seed);
    auto tq = upload(ctx, TCA_F32, cfg.heads, L, cfg.dim, data.q.data.data());
    auto tk = upload(ctx, TCA_F32, cfg.kv_heads, L, cfg.dim, data.k.data.data());  // calibration takes f32
    const tca_params p = params_of(cfg);
    const tca_tensor* q = tq.get();
    const tca_tensor* k = tk.get();
    tca_profile* prof = nullptr;
    check(tca_calibrate(ctx, &p, 1, &q, &k, &prof), "calibrate");
    ProfilePtr owner(prof);
    cal.workload = cfg.workload, cal.device = dev.name, cal.length = L, cal.done = true;
    cal.min_keep = 1, cal.max_keep = 0;
    for (int h = 0; h < cfg.kv_heads; ++h) {
        double ratio = 0;
        check(tca_profile_keep_ratio(prof, 0, h, &ratio), "keep ratio");
        cal.mean_keep += ratio / cfg.kv_heads;
        cal.min_keep = std::min(cal.min_keep, ratio), cal.max_keep = std::max(cal.max_keep, ratio);
    }
    return owner;
}

// Default calibration length. Calibrating on a sequence of only 2 x window leaves half of it in the
// always-kept window, which then holds most of the attention mass, so every head passes tau with
// the sparsest candidate and the profile says nothing about long prompts. Calibrate on the longest
// length the sweep measures instead, capped at 16K to bound the O(L^2) pass, never below 2 x window.
int calibration_length(const Config& cfg, const std::vector<DeviceRun>& devices) {
    if (cfg.calib_length > 0) return cfg.calib_length;
    int longest = 0;
    for (const auto& d : devices)
        for (int L : d.lengths) longest = std::max(longest, L);
    return std::max(2 * cfg.window, std::min(longest, 16384));
}

}  // namespace

Results run(const Config& cfg) {
    Results res;
    res.config = cfg;
    res.version = tca_version_string();
    res.revision = tca_build_revision();
    res.created = now_utc();
    check_synth_kind(cfg.workload);  // a bad kind fails before any measurement
    auto ref = open("cpu");
    std::vector<std::string> names = cfg.devices;
    if (names.empty()) {
        char name[64];
        check(tca_default_device_name(name, sizeof name), "default device");
        names.push_back(name);
    }
    std::vector<Context> contexts;
    for (const auto& n : names) {
        contexts.push_back(open(n));
        res.devices.push_back(describe(contexts.back().get(), cfg));
    }

    // Fixed-ratio profiles, then the calibrated one (made on the first device it fits).
    std::vector<ProfilePtr> owned;
    std::vector<std::pair<std::string, tca_profile*>> profiles;
    const tca_params params = params_of(cfg);
    for (double keep : cfg.keep) {
        tca_profile* p = nullptr;
        check(tca_profile_fixed(&params, 1, cfg.heads, cfg.kv_heads, cfg.dim, keep, &p), "fixed profile");
        owned.emplace_back(p);
        profiles.emplace_back(fmt::format("keep={:g}", keep), p);
    }
    if (cfg.calibrate && !cfg.decode_only) {  // decode-only measures the fixed ratios
        const int Lc = calibration_length(cfg, res.devices);
        for (size_t i = 0; i < contexts.size() && !res.calibration.done; ++i) {
            if (largest_buffer(cfg, Lc) > res.devices[i].facts.max_allocation) continue;
            fmt::print(stderr, "calibrating on {} ({} workload, L={})\n", res.devices[i].facts.name, cfg.workload, Lc);
            owned.push_back(calibrate(cfg, Lc, contexts[i].get(), res.devices[i].facts, res.calibration));
            profiles.emplace_back("calibrated:" + cfg.workload, owned.back().get());
        }
        if (!res.calibration.done) Case::skip(res, "*", Lc, "calibration", "no device can hold the calibration sequence");
    }

    Progress progress;
    for (const auto& d : res.devices) progress.total += d.lengths.size() * (1 + profiles.size());
    for (size_t i = 0; i < contexts.size(); ++i) {
        DeviceRun& dr = res.devices[i];
        fmt::print(stderr, "{}: measuring the roofline\n", dr.facts.name);
        dr.roofline = measure_roofline(contexts[i].get());
        for (int L : dr.lengths) {
            const uint64_t need = largest_buffer(cfg, L);
            const size_t cases = 1 + profiles.size();
            if (need > dr.facts.max_allocation) {
                Case::skip(res, dr.facts.name, L, "all",
                           fmt::format("q needs a {:.0f} MiB buffer, over the device's max allocation of {:.0f} MiB",
                                       need / 1048576.0, dr.facts.max_allocation / 1048576.0));
                progress.done += cases;
                continue;
            }
            try {
                Case(cfg, contexts[i].get(), ref.get(), dr, L, progress, res).run(profiles);
            } catch (const ApiError& e) {
                if (e.status != TCA_ERROR_OUT_OF_MEMORY && e.status != TCA_ERROR_UNSUPPORTED) throw;
                Case::skip(res, dr.facts.name, L, "dense", e.what());
            }
        }
    }
    return res;
}

}  // namespace tca::detail::bench
