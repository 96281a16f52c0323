#include "method/bound.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

#include "core/checked.h"
#include "core/error.h"

namespace tca::detail::method {

namespace {

// Runs f(item) for item in [0, n) on every hardware thread: the reference is O(T^2 d) in double.
template <typename F>
void parallel_for(int n, F f) {
    const int workers = std::max(1u, std::min(std::thread::hardware_concurrency(), 64u));
    std::atomic<int> next{0};
    std::vector<std::thread> pool;
    for (int w = 0; w < workers; ++w)
        pool.emplace_back([&] {
            for (int i; (i = next.fetch_add(1)) < n;) f(i);
        });
    for (auto& t : pool) t.join();
}

void check_shapes(const HostTensor& q, const HostTensor& k, const HostTensor& v) {
    require(k.heads == v.heads && k.tokens == v.tokens && k.dim == v.dim && q.dim == k.dim && q.tokens == k.tokens &&
                k.heads > 0 && q.heads % k.heads == 0,
            TCA_ERROR_SHAPE_MISMATCH, "error_bound: q, k, v shapes do not fit");
}

// Softmax probabilities of query (hq, i) over keys 0..i, in double.
void probabilities(const HostTensor& q, const HostTensor& k, int hq, int hk, int i, double scale, std::vector<double>& p) {
    p.resize(size_t(i) + 1);
    const float* qi = q.row(hq, i);
    double m = -1e300;
    for (int j = 0; j <= i; ++j) {
        const float* kj = k.row(hk, j);
        double acc = 0;
        for (int x = 0; x < q.dim; ++x) acc += double(qi[x]) * kj[x];
        m = std::max(m, p[j] = scale * acc);
    }
    double z = 0;
    for (double& x : p) z += (x = std::exp(x - m));
    for (double& x : p) x /= z;
}

double key_scale(int dim) { return double(1.0f / std::sqrt(float(dim))); }  // the devices' default, as float

}  // namespace

std::vector<QueryBound> error_bound(const HostTensor& q, const HostTensor& k, const HostTensor& v, const HostTensor& o,
                                    const AttentionTrace& trace) {
    check_shapes(q, k, v);
    require(o.heads == q.heads && o.tokens == q.tokens && o.dim == q.dim, TCA_ERROR_SHAPE_MISMATCH,
            "error_bound: output shape differs from q");
    require(trace.steps_recorded, TCA_ERROR_INVALID_ARGUMENT, "error_bound: the session ran without step tracing");
    require(trace.total_tokens() == q.tokens, TCA_ERROR_SHAPE_MISMATCH, "error_bound: trace covers another length");
    const int T = q.tokens, d = q.dim, group = q.heads / k.heads;
    const double scale = key_scale(d);
    // Prefix maxima of ||v_j||_1 per KV head.
    std::vector<std::vector<double>> vmax(k.heads, std::vector<double>(T));
    for (int h = 0; h < k.heads; ++h) {
        double m = 0;
        for (int j = 0; j < T; ++j) {
            double n1 = 0;
            for (int x = 0; x < d; ++x) n1 += std::fabs(v.row(h, j)[x]);
            vmax[h][j] = m = std::max(m, n1);
        }
    }
    std::vector<QueryBound> out(checked_product({q.heads, T}, "error-bound rows"));
    parallel_for(checked_narrow<int>(out.size(), "error-bound rows"), [&](int item) {
        const int hq = item / T, i = item % T, hk = hq / group;
        thread_local std::vector<double> p, od;
        thread_local std::vector<uint8_t> mask;
        probabilities(q, k, hq, hk, i, scale, p);
        trace.mask(hk, i, mask);
        od.assign(d, 0.0);
        double dropped = 0;
        for (int j = 0; j <= i; ++j) {
            if (!mask[j]) dropped += p[j];
            const float* vj = v.row(hk, j);
            for (int x = 0; x < d; ++x) od[x] += p[j] * vj[x];
        }
        QueryBound& r = out[item];
        r.gamma = dropped;
        r.vmax1 = vmax[hk][i];
        r.bound = 2 * r.gamma * r.vmax1;
        double l1 = 0, e2 = 0, n2 = 0;
        const float* oi = o.row(hq, i);
        for (int x = 0; x < d; ++x) {
            const double e = od[x] - oi[x];
            l1 += std::fabs(e);
            e2 += e * e;
            n2 += od[x] * od[x];
        }
        r.actual = l1;
        r.rel = std::sqrt(e2) / std::max(std::sqrt(n2), 1e-30);
    });
    return out;
}

std::vector<HeadBoundSummary> summarize(const std::vector<QueryBound>& qb, int q_heads, int tokens) {
    std::vector<HeadBoundSummary> out(q_heads);
    for (int h = 0; h < q_heads; ++h) {
        HeadBoundSummary& s = out[h];
        s.min_slack = 1e300;
        for (int i = 0; i < tokens; ++i) {
            const QueryBound& r = qb[size_t(h) * tokens + i];
            s.min_slack = std::min(s.min_slack, r.slack());
            s.max_gamma = std::max(s.max_gamma, r.gamma);
            s.mean_gamma += r.gamma / tokens;
            s.max_rel = std::max(s.max_rel, r.rel);
            s.mean_rel += r.rel / tokens;
            s.max_actual = std::max(s.max_actual, r.actual);
            if (r.bound > 0) s.max_tightness = std::max(s.max_tightness, r.actual / r.bound);
            if (r.actual > r.bound + kBoundFpSlack * r.vmax1) ++s.violations;
        }
    }
    return out;
}

HostTensor dense_reference(const HostTensor& q, const HostTensor& k, const HostTensor& v) {
    check_shapes(q, k, v);
    const int T = q.tokens, d = q.dim, group = q.heads / k.heads;
    const double scale = key_scale(d);
    HostTensor o(q.heads, T, d);
    parallel_for(checked_narrow<int>(checked_product({q.heads, T}, "reference rows"), "reference rows"), [&](int item) {
        const int hq = item / T, i = item % T, hk = hq / group;
        thread_local std::vector<double> p, od;
        probabilities(q, k, hq, hk, i, scale, p);
        od.assign(d, 0.0);
        for (int j = 0; j <= i; ++j)
            for (int x = 0; x < d; ++x) od[x] += p[j] * v.row(hk, j)[x];
        for (int x = 0; x < d; ++x) o.row(hq, i)[x] = float(od[x]);
    });
    return o;
}

}  // namespace tca::detail::method
