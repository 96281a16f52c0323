// tca bench --chunk C: chunked prompts (spec "Chunked prompt (streaming prefill)") through chunked
// caches (tca_cache_create_ex, TCA_CACHE_CHUNKED), dense (profile NULL: every chunk attends to
// everything before it) against TCA on the same code path. Per run a fresh cache takes the L
// prompt tokens in chunks of C; the record's prefill_ms is the device time of all chunk calls of
// the median run, its peak_kv_bytes the most K/V the cache held while a chunk was attended
// (tca_cache_peak_size), its kv_bytes what it holds after the prompt.
#include <fmt/core.h>

#include <algorithm>
#include <cstring>

#include "bench.h"
#include "bench_api.h"

namespace tca::detail::bench {

namespace {

struct Chunk {
    TensorPtr q, k, v, o;
};

// Rows [t0, t0 + n) of every head of a host array.
std::vector<float> rows(const HostArray& x, int t0, int n) {
    std::vector<float> r(size_t(x.heads) * n * x.dim);
    for (int h = 0; h < x.heads; ++h) std::memcpy(&r[size_t(h) * n * x.dim], x.row(h, t0), size_t(n) * x.dim * 4);
    return r;
}

struct Timed {
    double ms = 0;
    Stages stages;
};

// Runs (warmup + runs) prompts through a fresh chunked cache each; the run of median total.
Timed time_prompt(const Config& cfg, tca_context* ctx, tca_profile* prof, int L, std::vector<Chunk>& chunks,
                  uint64_t& peak, uint64_t& dense_peak, uint64_t& held, std::vector<int>& kept) {
    tca_cache_options opt{};
    opt.struct_size = sizeof opt;
    check(tca_cache_options_init(&opt), "cache options");
    opt.mode = TCA_CACHE_CHUNKED, opt.max_chunk = cfg.chunk;
    tca_cache* c = nullptr;
    check(tca_cache_create_ex(ctx, prof, 0, cfg.heads, cfg.kv_heads, cfg.dim, cfg.kv_dtype, L, &opt, &c), "chunked cache");
    CachePtr cache(c);
    std::vector<Timed> runs;
    check(tca_context_set_profiling(ctx, 1), "profiling");
    for (int i = 0; i < cfg.warmup + cfg.runs; ++i) {
        check(tca_cache_reset(c), "reset");
        Timed t;
        for (auto& ch : chunks) {
            check(tca_cache_prefill(c, ch.q.get(), ch.k.get(), ch.v.get(), ch.o.get()), "chunk");
            tca_call_stats st{};
            st.struct_size = sizeof st;
            check(tca_context_last_stats(ctx, &st), "stats");
            t.ms += st.total_ms;
            t.stages.score += st.score_ms, t.stages.metric += st.metric_ms, t.stages.sort += st.sort_ms;
            t.stages.select += st.select_ms, t.stages.attend += st.attend_ms, t.stages.other += st.other_ms;
        }
        if (i >= cfg.warmup) runs.push_back(t);
    }
    check(tca_context_set_profiling(ctx, 0), "profiling");
    check(tca_cache_peak_size(c, &peak, &dense_peak), "peak size");
    check(tca_cache_size(c, &held, nullptr, nullptr), "size");
    kept.assign(size_t(cfg.kv_heads), 0);
    for (int h = 0; h < cfg.kv_heads; ++h) check(tca_cache_kept_positions(c, h, nullptr, 0, &kept[h]), "kept positions");
    std::sort(runs.begin(), runs.end(), [](const Timed& a, const Timed& b) { return a.ms < b.ms; });
    return runs[runs.size() / 2];
}

}  // namespace

void run_chunked(const Config& cfg, tca_context* ctx, const DeviceFacts& facts, int L, const Workload& data,
                 const std::vector<std::pair<std::string, tca_profile*>>& profiles, Results& out) {
    const int hq = cfg.heads, hkv = cfg.kv_heads, d = cfg.dim;
    std::vector<Chunk> chunks;
    for (int s = 0; s < L; s += cfg.chunk) {
        const int n = std::min(cfg.chunk, L - s);
        chunks.push_back({upload(ctx, TCA_F32, hq, n, d, rows(data.q, s, n).data()),
                          upload(ctx, cfg.kv_dtype, hkv, n, d, rows(data.k, s, n).data()),
                          upload(ctx, cfg.kv_dtype, hkv, n, d, rows(data.v, s, n).data()), output(ctx, hq, n, d)});
    }
    auto record = [&](const std::string& method, const std::string& name, tca_profile* prof) {
        Record r;
        r.dev = facts;
        r.method = method, r.profile = name;
        r.length = L, r.heads = hq, r.kv_heads = hkv, r.dim = d, r.window = cfg.window, r.block = cfg.block;
        r.kv_dtype = cfg.kv_dtype == TCA_F32 ? "f32" : "f16";
        r.chunk = cfg.chunk;
        uint64_t peak = 0, dense_peak = 0, held = 0;
        std::vector<int> kept;
        const Timed t = time_prompt(cfg, ctx, prof, L, chunks, peak, dense_peak, held, kept);
        r.prefill_ms = t.ms, r.stages = t.stages;
        r.peak_kv_bytes = double(peak), r.peak_kv_dense_bytes = double(dense_peak);
        r.kv_bytes = double(held), r.kv_dense_bytes = double(dense_peak);
        r.kv_reduction = dense_peak ? 1.0 - double(held) / double(dense_peak) : 0;
        if (prof) {
            int64_t total = 0;
            for (int k : kept) total += k;
            const int compressed = std::max(0, L - cfg.window);
            r.keep_fraction = compressed > 0 ? std::min(1.0, double(total) / (double(compressed) * hkv)) : 1.0;
        }
        return r;
    };
    fmt::print(stderr, "{} L={} chunks of {}: dense\n", facts.name, L, cfg.chunk);
    const Record dense = record("dense", "dense", nullptr);
    out.records.push_back(dense);
    for (const auto& [name, prof] : profiles) {
        fmt::print(stderr, "{} L={} chunks of {}: tca {}\n", facts.name, L, cfg.chunk, name);
        Record r = record("tca", name, prof);
        r.prefill_speedup = r.prefill_ms > 0 ? dense.prefill_ms / r.prefill_ms : 0;
        out.records.push_back(r);
    }
}

}  // namespace tca::detail::bench
