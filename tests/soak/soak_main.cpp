// tca_soak: a long decode run through the public C API only, checking what must not drift.
//
//   tca_soak --device D [--steps N] [--prompt P] [--check-every K]
//
// One TCA cache (fixed profile, keep 1/b: every compression keeps one token) takes a prompt, then
// N decode steps. At every step the cache's size must equal what the spec's KV-cache rule gives
// (|G| per head grows by t_dec at each compression of a full pending block; pending < b; ring <= w)
// and the output must be finite. Every K steps G's positions are read back and checked (count,
// ascending). Resident memory is sampled after a warm-up and at the end: on the CPU drivers device
// memory is host memory, so a per-step leak of host or device memory shows as growth. Exits 1 on
// any violation, 2 on bad arguments, 77 when the device is absent (outside CI).
#include <tca/tca.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "tca_soak: FAIL: %s\n", what.c_str());
    std::exit(1);
}

void check(tca_status s, const char* what) {
    if (s != TCA_OK) fail(std::string(what) + ": " + tca_status_name(s) + ": " + tca_last_error());
}

// Resident set size in bytes (Linux /proc/self/statm), 0 where unavailable.
uint64_t rss_bytes() {
    FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long pages_total = 0, pages_resident = 0;
    const int n = std::fscanf(f, "%llu %llu", &pages_total, &pages_resident);
    std::fclose(f);
    return n == 2 ? pages_resident * 4096ull : 0;
}

long parse_positive(const char* flag, const char* value) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v <= 0 || v > 100000000L) {
        std::fprintf(stderr, "tca_soak: %s needs a positive integer, got '%s'\n", flag, value);
        std::exit(2);
    }
    return v;
}

struct Tensor {
    tca_tensor* t = nullptr;
    ~Tensor() { if (t) tca_tensor_destroy(t); }
};

}  // namespace

int main(int argc, char** argv) {
    std::string device;
    long steps = 100000, prompt = 1024, check_every = 1000;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) { std::fprintf(stderr, "tca_soak: %s needs a value\n", a.c_str()); return 2; }
        const char* v = argv[++i];
        if (a == "--device") device = v;
        else if (a == "--steps") steps = parse_positive("--steps", v);
        else if (a == "--prompt") prompt = parse_positive("--prompt", v);
        else if (a == "--check-every") check_every = parse_positive("--check-every", v);
        else { std::fprintf(stderr, "tca_soak: unknown flag %s\n", a.c_str()); return 2; }
    }
    const int hq = 4, hkv = 2, d = 32, block = 32, window = 64;

    tca_context* ctx = nullptr;
    const tca_status made = tca_context_create(device.c_str(), &ctx);
    const char* ci = std::getenv("CI");
    if (made == TCA_ERROR_DEVICE_NOT_FOUND && !(ci && std::string(ci) == "true")) {
        std::printf("tca_soak: no device %s here: skipped\n", device.c_str());
        return 77;  // CTest's SKIP_RETURN_CODE; in CI a missing driver is a failure
    }
    check(made, "context");
    tca_params params{};
    params.struct_size = sizeof params;
    check(tca_params_init(&params), "params");
    params.block = block, params.window = window;
    tca_profile* profile = nullptr;
    check(tca_profile_fixed(&params, 1, hq, hkv, d, 1.0 / block, &profile), "profile");
    tca_cache* cache = nullptr;
    check(tca_cache_create(ctx, profile, 0, hq, hkv, d, TCA_F16, int(prompt + steps), &cache), "cache");

    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.f, 1.f);
    auto randn = [&](size_t n) {
        std::vector<float> x(n);
        for (auto& e : x) e = nd(rng);
        return x;
    };
    auto to_half = [](const std::vector<float>& x) {  // round-to-nearest-even f32 -> f16 bits (|x| small)
        std::vector<uint16_t> h(x.size());
        for (size_t i = 0; i < x.size(); ++i) {
            uint32_t u;
            std::memcpy(&u, &x[i], 4);
            const uint32_t sign = (u >> 16) & 0x8000u;
            const int exp = int((u >> 23) & 0xff) - 127 + 15;
            uint32_t mant = u & 0x7fffffu;
            if (exp <= 0) { h[i] = uint16_t(sign); continue; }  // tiny: flush (never happens for N(0,1) in practice)
            uint32_t r = (uint32_t(exp) << 10) | (mant >> 13);
            const uint32_t rest = mant & 0x1fffu;
            if (rest > 0x1000u || (rest == 0x1000u && (r & 1u))) ++r;
            h[i] = uint16_t(sign | r);
        }
        return h;
    };

    // The prompt.
    {
        Tensor q, k, v, o;
        check(tca_tensor_create(ctx, TCA_F32, hq, int(prompt), d, &q.t), "q");
        check(tca_tensor_create(ctx, TCA_F16, hkv, int(prompt), d, &k.t), "k");
        check(tca_tensor_create(ctx, TCA_F16, hkv, int(prompt), d, &v.t), "v");
        check(tca_tensor_create(ctx, TCA_F32, hq, int(prompt), d, &o.t), "o");
        const auto qh = randn(size_t(hq) * prompt * d);
        const auto kh = to_half(randn(size_t(hkv) * prompt * d)), vh = to_half(randn(size_t(hkv) * prompt * d));
        check(tca_tensor_upload(q.t, qh.data(), qh.size() * 4), "upload q");
        check(tca_tensor_upload(k.t, kh.data(), kh.size() * 2), "upload k");
        check(tca_tensor_upload(v.t, vh.data(), vh.size() * 2), "upload v");
        check(tca_cache_prefill(cache, q.t, k.t, v.t, o.t), "prefill");
    }
    const uint64_t bytes_per_token = 2ull * d * 2;  // K + V rows of one KV head, f16
    std::vector<int> global(hkv);
    for (int h = 0; h < hkv; ++h) check(tca_cache_kept_positions(cache, h, nullptr, 0, &global[h]), "kept positions");
    // t_dec = max(1, floor(sum k p_k)); with keep 1/b the profile's expected keep count is 1.
    const int t_dec = 1;
    int uncompressed = window;  // pending + ring after the prompt (prompt > window)
    if (prompt <= window) fail("--prompt must exceed the window (64)");

    Tensor q, k, v, o;
    check(tca_tensor_create(ctx, TCA_F32, hq, 1, d, &q.t), "q1");
    check(tca_tensor_create(ctx, TCA_F16, hkv, 1, d, &k.t), "k1");
    check(tca_tensor_create(ctx, TCA_F16, hkv, 1, d, &v.t), "v1");
    check(tca_tensor_create(ctx, TCA_F32, hq, 1, d, &o.t), "o1");
    std::vector<float> out(size_t(hq) * d);
    std::vector<int32_t> pos;
    const long warmup = std::min<long>(steps / 10, 2000);
    uint64_t rss_warm = 0;
    for (long s = 0; s < steps; ++s) {
        const auto qh = randn(size_t(hq) * d);
        const auto kh = to_half(randn(size_t(hkv) * d)), vh = to_half(randn(size_t(hkv) * d));
        check(tca_tensor_upload(q.t, qh.data(), qh.size() * 4), "upload q1");
        check(tca_tensor_upload(k.t, kh.data(), kh.size() * 2), "upload k1");
        check(tca_tensor_upload(v.t, vh.data(), vh.size() * 2), "upload v1");
        check(tca_cache_decode(cache, q.t, k.t, v.t, o.t), "decode");
        // The spec's rule: the new token joins the ring; a full pending block (b tokens) is compressed.
        ++uncompressed;
        if (uncompressed == window + block) {
            uncompressed = window;
            for (auto& n : global) n += t_dec;
        }
        uint64_t bytes = 0, dense = 0;
        int tokens = 0;
        check(tca_cache_size(cache, &bytes, &dense, &tokens), "size");
        uint64_t expect = 0;
        for (int n : global) expect += uint64_t(n + uncompressed) * bytes_per_token;
        if (bytes != expect || tokens != prompt + s + 1)
            fail("step " + std::to_string(s) + ": cache holds " + std::to_string(bytes) + " bytes / " +
                 std::to_string(tokens) + " tokens, the spec's rule gives " + std::to_string(expect) + " / " +
                 std::to_string(prompt + s + 1));
        if (bytes > dense) fail("step " + std::to_string(s) + ": TCA cache larger than dense");
        if ((s + 1) % 64 == 0 || s + 1 == steps) {  // outputs: read back now and then (a download waits)
            check(tca_tensor_download(o.t, out.data(), out.size() * 4), "download");
            for (float x : out)
                if (!std::isfinite(x)) fail("step " + std::to_string(s) + ": non-finite output");
        }
        if ((s + 1) % check_every == 0 || s + 1 == steps) {
            for (int h = 0; h < hkv; ++h) {
                int count = 0;
                pos.resize(size_t(global[h]));
                check(tca_cache_kept_positions(cache, h, pos.data(), int(pos.size()), &count), "kept positions");
                if (count != global[h]) fail("step " + std::to_string(s) + ": |G| " + std::to_string(count) +
                                             " on head " + std::to_string(h) + ", expected " + std::to_string(global[h]));
                for (size_t i = 1; i < pos.size(); ++i)
                    if (pos[i] <= pos[i - 1]) fail("G positions not ascending at step " + std::to_string(s));
                if (!pos.empty() && pos.back() >= prompt + s + 1 - window)
                    fail("G holds a token of the ring at step " + std::to_string(s));
            }
        }
        if (s + 1 == warmup) rss_warm = rss_bytes();
    }
    check(tca_context_finish(ctx), "finish");
    const uint64_t rss_end = rss_bytes();
    uint64_t bytes = 0, dense = 0;
    check(tca_cache_size(cache, &bytes, &dense, nullptr), "size");
    std::printf("tca_soak: %s: %ld decode steps after a %ld-token prompt: cache %.1f KiB (dense %.1f KiB), "
                "|G| %d per head; RSS %.1f MiB after %ld steps, %.1f MiB at the end\n",
                device.empty() ? "default" : device.c_str(), steps, prompt, bytes / 1024.0, dense / 1024.0, global[0],
                rss_warm / 1048576.0, warmup, rss_end / 1048576.0);
    // Flat: what the remaining steps added must stay under 1 MiB plus 8 bytes a step (a per-step
    // leak of even one small allocation, or a trace entry, exceeds that over 100,000 steps).
    if (rss_warm && rss_end > rss_warm + (1u << 20) + 8ull * uint64_t(steps - warmup))
        fail("resident memory grew by " + std::to_string((rss_end - rss_warm) >> 10) + " KiB over " +
             std::to_string(steps - warmup) + " steps");
    check(tca_cache_destroy(cache), "cache destroy");
    check(tca_profile_destroy(profile), "profile destroy");
    check(tca_context_destroy(ctx), "context destroy");
    return 0;
}
