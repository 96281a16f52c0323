// Host cost of the cache calls through the C API: microseconds of host time per tca_cache_decode
// call when calls are asynchronous (they enqueue and return; one tca_context_finish at the end) vs
// blocking (tca_context_finish after every call, what a caller who wants the old behaviour does),
// and the device counters per decode step (tca_context_counters).
//
//   tca_hot_path_bench [device] [steps]      e.g.  tca_hot_path_bench vulkan:0 256
//
// Shape: 8 query / 2 KV heads, d 128, a 2048-token prompt, window 256, block 64, keep 0.25; every
// step's q/k/v are uploaded before the timed loop, so only the calls are timed.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "tca/tca.h"

namespace {

constexpr int kHq = 8, kHkv = 2, kD = 128, kP = 2048;

void check(tca_status s, const char* what) {
    if (s != TCA_OK) {
        std::fprintf(stderr, "%s: %s (%s)\n", what, tca_status_name(s), tca_last_error());
        std::exit(1);
    }
}

tca_counters counters(tca_context* ctx) {
    tca_counters c{};
    c.struct_size = sizeof c;
    check(tca_context_counters(ctx, &c), "counters");
    return c;
}

struct Figures {
    double us_per_call = 0;
    double submits = 0, waits = 0, readbacks = 0, allocations = 0;  // per step
};

Figures measure(const std::string& dev, int steps, bool blocking) {
    tca_context* ctx = nullptr;
    check(tca_context_create(dev.c_str(), &ctx), "context");
    tca_params params{};
    params.struct_size = sizeof params;
    check(tca_params_init(&params), "params");
    params.window = 256, params.block = 64;
    tca_profile* prof = nullptr;
    check(tca_profile_fixed(&params, 1, kHq, kHkv, kD, 0.25, &prof), "profile");
    tca_cache* cache = nullptr;
    check(tca_cache_create(ctx, prof, 0, kHq, kHkv, kD, TCA_F32, kP + steps, &cache), "cache");
    std::mt19937 rng(7);
    std::normal_distribution<float> nd;
    std::vector<tca_tensor*> all;
    auto tensor = [&](int heads, int n, bool fill) {
        tca_tensor* t = nullptr;
        check(tca_tensor_create(ctx, TCA_F32, heads, n, kD, &t), "tensor");
        if (fill) {
            std::vector<float> x(size_t(heads) * n * kD);
            for (auto& e : x) e = nd(rng);
            check(tca_tensor_upload(t, x.data(), x.size() * 4), "upload");
        }
        all.push_back(t);
        return t;
    };
    tca_tensor *q = tensor(kHq, kP, true), *k = tensor(kHkv, kP, true), *v = tensor(kHkv, kP, true),
               *o = tensor(kHq, kP, false);
    std::vector<tca_tensor*> sq, sk, sv, so;
    for (int s = 0; s < steps; ++s) {
        sq.push_back(tensor(kHq, 1, true)), sk.push_back(tensor(kHkv, 1, true));
        sv.push_back(tensor(kHkv, 1, true)), so.push_back(tensor(kHq, 1, false));
    }
    Figures f;
    for (int pass = 0; pass < 2; ++pass) {  // the first warms up (kernels, scratch, the submission ring)
        check(tca_cache_reset(cache), "reset");
        check(tca_cache_prefill(cache, q, k, v, o), "prefill");
        check(tca_context_finish(ctx), "finish");
        const tca_counters c0 = counters(ctx);
        double us = 0;
        for (int s = 0; s < steps; ++s) {
            const auto t0 = std::chrono::steady_clock::now();
            check(tca_cache_decode(cache, sq[s], sk[s], sv[s], so[s]), "decode");
            if (blocking) check(tca_context_finish(ctx), "finish");
            us += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
        }
        // Asynchronous on Vulkan: once kMaxFrames (64) submissions are in flight the host waits for
        // the oldest, so a run longer than that measures the device's pace as well.
        const tca_counters c1 = counters(ctx);  // before the closing finish
        check(tca_context_finish(ctx), "finish");
        f.us_per_call = us / steps;
        f.submits = double(c1.submits - c0.submits) / steps;
        f.waits = double(c1.waits - c0.waits) / steps;
        f.readbacks = double(c1.readbacks - c0.readbacks) / steps;
        f.allocations = double(c1.allocations - c0.allocations) / steps;
    }
    check(tca_cache_destroy(cache), "cache destroy");
    for (auto* t : all) tca_tensor_destroy(t);
    tca_profile_destroy(prof);
    check(tca_context_destroy(ctx), "context destroy");
    return f;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string dev = argc > 1 ? argv[1] : "cpu";
    const int steps = argc > 2 ? std::atoi(argv[2]) : 256;
    if (steps < 1) return 1;
    std::printf("device %s, %d decode steps after a %d-token prompt (Hq %d, Hkv %d, d %d)\n", dev.c_str(), steps, kP,
                kHq, kHkv, kD);
    for (bool blocking : {false, true}) {
        const Figures f = measure(dev, steps, blocking);
        std::printf("%-12s host %8.1f us/decode call; per step: %.2f submits, %.2f waits, %.2f readbacks, %.2f allocations\n",
                    blocking ? "blocking" : "asynchronous", f.us_per_call, f.submits, f.waits, f.readbacks,
                    f.allocations);
    }
    return 0;
}
