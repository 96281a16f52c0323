#include "method/synth.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/error.h"

namespace tca::detail::method {

namespace {

// SplitMix64: tiny, fast, and identical everywhere.
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed) {}
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
    double normal() {  // Box-Muller
        const double u1 = 1.0 - uniform(), u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }
};

// Independent streams per (seed, head, purpose).
Rng stream(uint64_t seed, int head, int purpose) {
    Rng r(seed * 0x100000001b3ull + uint64_t(head) * 7919 + uint64_t(purpose) * 104729);
    r.next();
    return r;
}

using Vec = std::vector<double>;

double dotv(const Vec& a, const Vec& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
}

// n orthonormal random directions (Gram-Schmidt over Gaussian vectors).
std::vector<Vec> directions(Rng& r, int n, int d) {
    std::vector<Vec> out;
    while (int(out.size()) < n) {
        Vec v(d);
        for (double& x : v) x = r.normal();
        for (const Vec& u : out) {
            const double p = dotv(v, u);
            for (int i = 0; i < d; ++i) v[i] -= p * u[i];
        }
        const double nrm = std::sqrt(dotv(v, v));
        for (double& x : v) x /= nrm;
        out.push_back(std::move(v));
    }
    return out;
}

// Gaussian noise of scale sigma with the components along `dirs` removed, so that structured
// logits are not blurred by cross terms with the noise.
Vec noise_outside(Rng& r, int d, double sigma, const std::vector<Vec>& dirs) {
    Vec v(d);
    for (double& x : v) x = sigma * r.normal();
    for (const Vec& u : dirs) {
        const double p = dotv(v, u);
        for (int i = 0; i < d; ++i) v[i] -= p * u[i];
    }
    return v;
}

void put(HostTensor& t, int h, int j, const Vec& v) {
    for (int i = 0; i < t.dim; ++i) t.row(h, j)[i] = float(v[i]);
}

// Amplitude of a component so that two of them give logit `target`: a^2 / sqrt(d) = target.
double amp(double target, int d) { return std::sqrt(std::max(target, 0.0) * std::sqrt(double(d))); }

struct HeadGen {
    const SynthSpec& spec;
    int L, d;
    HostTensor &q, &k;
    int hk, group;
    uint64_t seed;

    void query_heads(const std::function<Vec(Rng&, int)>& make_q) {
        for (int g = 0; g < group; ++g) {
            Rng r = stream(seed, hk * group + g, 2);
            for (int i = 0; i < L; ++i) put(q, hk * group + g, i, make_q(r, i));
        }
    }
};

void gen_random(HeadGen& g) {
    Rng rk = stream(g.seed, g.hk, 1);
    for (int j = 0; j < g.L; ++j) put(g.k, g.hk, j, noise_outside(rk, g.d, 1.0, {}));
    g.query_heads([&](Rng& r, int) { return noise_outside(r, g.d, 1.0, {}); });
}

void gen_uniform(HeadGen& g) {
    Rng rk = stream(g.seed, g.hk, 1);
    for (int j = 0; j < g.L; ++j) put(g.k, g.hk, j, noise_outside(rk, g.d, 1.0, {}));
    g.query_heads([&](Rng& r, int) { return noise_outside(r, g.d, 0.02, {}); });
}

// Keys: noise outside `dirs`, plus, for the keys `boost(j)` says, a component along dirs[which].
// Queries: noise outside `dirs` plus `q_amp` along each of dirs.
void gen_directional(HeadGen& g, int n_dirs, double q_amp, double q_noise,
                     const std::function<void(int j, Vec& key, const std::vector<Vec>& dirs)>& boost) {
    Rng rd = stream(g.seed, g.hk, 0), rk = stream(g.seed, g.hk, 1);
    const auto dirs = directions(rd, n_dirs, g.d);
    for (int j = 0; j < g.L; ++j) {
        Vec key = noise_outside(rk, g.d, 1.0, dirs);
        boost(j, key, dirs);
        put(g.k, g.hk, j, key);
    }
    g.query_heads([&](Rng& r, int) {
        Vec v = noise_outside(r, g.d, q_noise, dirs);
        for (const Vec& u : dirs)
            for (int i = 0; i < g.d; ++i) v[i] += q_amp * u[i];
        return v;
    });
}

void gen_sink(HeadGen& g) {
    const double s0 = std::log(double(g.L)) + 3.0;  // token 0's logit
    const double a = amp(s0, g.d);                   // q and k amplitudes along the sink direction
    gen_directional(g, 1, a, 0.5, [&](int j, Vec& key, const std::vector<Vec>& dirs) {
        if (j >= 4) return;
        const double logit = s0 - 1.5 * j;  // a few weaker sinks after the first
        for (int i = 0; i < g.d; ++i) key[i] += logit / s0 * a * dirs[0][i];
    });
}

void gen_retrieval(HeadGen& g) {
    constexpr int kNeedles = 4;
    Rng rp = stream(g.seed, g.hk, 3);
    std::vector<int> pos;
    const int lo = g.L / 64, hi = std::max(lo + 1, g.L / 4);
    for (int n = 0; n < kNeedles; ++n) pos.push_back(lo + int(rp.uniform() * (hi - lo)));
    // Each needle's logit: the query spreads over kNeedles directions, so amplitudes split it.
    const double s = std::log(double(g.L)) + 3.0;
    const double qa = amp(s, g.d) / std::sqrt(double(kNeedles)), ka = amp(s, g.d) * std::sqrt(double(kNeedles));
    gen_directional(g, kNeedles, qa, 0.5, [&](int j, Vec& key, const std::vector<Vec>& dirs) {
        for (int n = 0; n < kNeedles; ++n)
            if (pos[n] == j)
                for (int i = 0; i < g.d; ++i) key[i] += ka * dirs[n][i];
    });
}

void gen_bipolar(HeadGen& g) {
    const int r = std::max(1, g.L / 32);
    const int r1 = g.L / 8, r2 = g.L / 2;
    const double s = std::log(double(g.L) / (2.0 * r)) + 3.0;
    const double a = amp(s, g.d);
    gen_directional(g, 1, a, 0.5, [&](int j, Vec& key, const std::vector<Vec>& dirs) {
        if ((j >= r1 && j < r1 + r) || (j >= r2 && j < r2 + r))
            for (int i = 0; i < g.d; ++i) key[i] += a * dirs[0][i];
    });
}

void gen_local(HeadGen& g) {
    constexpr double kPeak = 18.0;  // logit at distance 0
    const int F = g.d / 2;
    const double a = amp(kPeak, g.d) / std::sqrt(double(F));  // per-pair amplitude: sum over F pairs = peak
    std::vector<double> freq(F);
    for (int f = 0; f < F; ++f) freq[f] = std::pow(10000.0, -2.0 * f / g.d);
    Rng rk = stream(g.seed, g.hk, 1);
    // R(pos) applied to the all-`a` vector: pair f is (a cos(w_f pos), a sin(w_f pos)).
    auto rotated = [&](int pos, Rng& r, double noise) {
        Vec v(g.d);
        for (int f = 0; f < F; ++f) {
            v[2 * f] = a * std::cos(freq[f] * pos) + noise * r.normal();
            v[2 * f + 1] = a * std::sin(freq[f] * pos) + noise * r.normal();
        }
        return v;
    };
    for (int j = 0; j < g.L; ++j) put(g.k, g.hk, j, rotated(j, rk, 0.3));
    g.query_heads([&](Rng& r, int i) { return rotated(i, r, 0.3); });
}

SynthKind mix_kind(int h) {
    static const SynthKind cycle[] = {SynthKind::local,   SynthKind::sink,    SynthKind::retrieval,
                                      SynthKind::local,   SynthKind::bipolar, SynthKind::random};
    return cycle[h % 6];
}

}  // namespace

SynthKind parse_synth_kind(const std::string& name) {
    for (SynthKind k : all_synth_kinds())
        if (name == synth_kind_name(k)) return k;
    throw Error(TCA_ERROR_INVALID_ARGUMENT,
                "unknown synthetic kind '" + name + "' (sink, local, uniform, bipolar, retrieval, random, mix)");
}

const char* synth_kind_name(SynthKind k) {
    switch (k) {
        case SynthKind::sink: return "sink";
        case SynthKind::local: return "local";
        case SynthKind::uniform: return "uniform";
        case SynthKind::bipolar: return "bipolar";
        case SynthKind::retrieval: return "retrieval";
        case SynthKind::random: return "random";
        case SynthKind::mix: return "mix";
    }
    return "?";
}

std::vector<SynthKind> all_synth_kinds() {
    return {SynthKind::sink,   SynthKind::local,  SynthKind::uniform, SynthKind::bipolar,
            SynthKind::retrieval, SynthKind::random, SynthKind::mix};
}

void validate_synth_spec(const SynthSpec& s) {
    require(s.q_heads >= 1 && s.kv_heads >= 1 && s.q_heads % s.kv_heads == 0, TCA_ERROR_INVALID_ARGUMENT,
            "synth: query heads must be a positive multiple of KV heads");
    require(s.len >= 1 && s.dim >= 2 && s.dim % 2 == 0, TCA_ERROR_INVALID_ARGUMENT,
            "synth: length must be >= 1 and the head dim even");
}

SynthKind synth_head_kind(const SynthSpec& s, int h) { return s.kind == SynthKind::mix ? mix_kind(h) : s.kind; }

SynthData synthesize(const SynthSpec& s) {
    validate_synth_spec(s);
    SynthData out;
    out.q = HostTensor(s.q_heads, s.len, s.dim);
    out.k = HostTensor(s.kv_heads, s.len, s.dim);
    out.v = HostTensor(s.kv_heads, s.len, s.dim);
    const int group = s.q_heads / s.kv_heads;
    for (int h = 0; h < s.kv_heads; ++h) {
        const SynthKind kind = synth_head_kind(s, h);
        out.head_kinds.push_back(kind);
        HeadGen g{s, s.len, s.dim, out.q, out.k, h, group, s.seed};
        switch (kind) {
            case SynthKind::sink: gen_sink(g); break;
            case SynthKind::local: gen_local(g); break;
            case SynthKind::uniform: gen_uniform(g); break;
            case SynthKind::bipolar: gen_bipolar(g); break;
            case SynthKind::retrieval: gen_retrieval(g); break;
            case SynthKind::random: gen_random(g); break;
            case SynthKind::mix: break;
        }
        Rng rv = stream(s.seed, h, 4);
        for (int j = 0; j < s.len; ++j)
            for (int i = 0; i < s.dim; ++i) out.v.row(h, j)[i] = float(rv.normal());
    }
    return out;
}

}  // namespace tca::detail::method
