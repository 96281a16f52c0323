// An independent, step-by-step implementation of the spec's "Chunked prompt (streaming prefill)"
// section and of its decode section, in plain host code and double precision, written from the
// spec text alone (it calls nothing of src/method): what the chunked sessions are tested against.
#pragma once

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace tca::detail::test {

class ChunkedReference {
public:
    // p[h]: the distribution of KV head h over the keep counts K = {1, 2, 4, .., b}.
    // q: [hq][pos][d], k/v: [hkv][pos][d] of every position the run will see (positions are
    // looked up as the run reaches them).
    ChunkedReference(int hq, int hkv, int dim, int block, int window, double alpha, std::vector<std::vector<double>> p,
                     const float* q, const float* k, const float* v, int total)
        : hq_(hq), hkv_(hkv), d_(dim), b_(block), w_(window), alpha_(alpha), p_(std::move(p)), q_(q), k_(k), v_(v),
          total_(total), g_(size_t(hkv)) {
        for (int x = 1; x <= block; x *= 2) K_.push_back(x);
    }

    // Chunk [s, e) with s = tokens(): returns o [hq][e - s][d].
    std::vector<double> chunk(int e) {
        const int s = n_;
        std::vector<double> o(size_t(hq_) * (e - s) * d_);
        std::vector<std::vector<double>> last(static_cast<size_t>(hkv_));  // group-mean probabilities of query e - 1
        for (int h = 0; h < hq_; ++h)
            for (int i = s; i < e; ++i) {
                const int kh = h / (hq_ / hkv_);
                std::vector<int> keys = g_[kh];
                for (int j = u_; j <= i; ++j) keys.push_back(j);
                std::vector<double> prob;
                attend(h, i, keys, &o[(size_t(h) * (e - s) + (i - s)) * d_], prob);
                if (i == e - 1) add_group(last[kh], keys, prob);
            }
        n_ = e;
        // Compression: the full blocks of [u, e - w).
        const int r = e - w_, m = r > u_ ? (r - u_) / b_ : 0;
        if (m > 0) {
            for (int h = 0; h < hkv_; ++h) {
                const std::vector<double>& s_all = last[h];  // indexed like keys: G, then u..e-1
                const size_t g0 = g_[h].size();
                std::vector<double> sc(size_t(m) * b_);
                for (int j = 0; j < m * b_; ++j) sc[j] = s_all[g0 + j];
                compress_blocks(h, sc, m, budgets(p_[h], m));
            }
            u_ += m * b_;
        }
        return o;
    }

    // Decode of position t = tokens(): returns o [hq][d].
    std::vector<double> decode() {
        const int t = n_;
        std::vector<double> o(size_t(hq_) * d_);
        std::vector<std::vector<double>> probs(static_cast<size_t>(hkv_));
        for (int h = 0; h < hq_; ++h) {
            const int kh = h / (hq_ / hkv_);
            std::vector<int> keys = g_[kh];
            for (int j = u_; j <= t; ++j) keys.push_back(j);
            std::vector<double> prob;
            attend(h, t, keys, &o[size_t(h) * d_], prob);
            add_group(probs[kh], keys, prob);
        }
        n_ = t + 1;
        // Pending = the uncompressed tokens before the ring (the last w); compressed at b tokens.
        if (n_ - w_ - u_ == b_) {
            for (int h = 0; h < hkv_; ++h) {
                const size_t g0 = g_[h].size();
                std::vector<double> sc(probs[h].begin() + std::ptrdiff_t(g0), probs[h].begin() + std::ptrdiff_t(g0 + b_));
                double mean = 0;
                for (size_t i = 0; i < K_.size(); ++i) mean += K_[i] * p_[h][i];
                const int t_dec = std::max(1, int(std::floor(mean + 1e-9)));
                keep_top(h, sc, 0, std::min(t_dec, b_));
            }
            u_ += b_;
        }
        return o;
    }

    int tokens() const { return n_; }
    int u() const { return u_; }
    const std::vector<int>& global(int h) const { return g_[h]; }
    int uncompressed() const { return n_ - u_; }

    // The spec's budgets over m blocks by rank: C_k = floor(m * sum_{k' >= k} p_k' + 0.5).
    std::vector<int> budgets(const std::vector<double>& p, int m) const {
        std::vector<int> psi(static_cast<size_t>(m), 0);
        int prev = 0;
        double tail = 0;
        for (int i = int(K_.size()) - 1; i >= 0; --i) {
            tail += p[i];
            const int c = i == 0 ? m : std::min(m, std::max(prev, int(std::floor(m * tail + 0.5))));
            for (int rk = prev; rk < c; ++rk) psi[rk] = K_[i];
            prev = c;
        }
        return psi;
    }

private:
    // Softmax over exactly `keys` (scale 1/sqrt(d)) of query (h, i); writes o, returns the probs.
    void attend(int h, int i, const std::vector<int>& keys, double* o, std::vector<double>& prob) const {
        const int kh = h / (hq_ / hkv_);
        const float* qi = q_ + (size_t(h) * total_ + i) * d_;
        const double scale = 1.0 / std::sqrt(double(d_));
        prob.assign(keys.size(), 0);
        double mx = -1e300;
        for (size_t r = 0; r < keys.size(); ++r) {
            const float* kj = k_ + (size_t(kh) * total_ + keys[r]) * d_;
            double dot = 0;
            for (int x = 0; x < d_; ++x) dot += double(qi[x]) * kj[x];
            prob[r] = dot * scale;
            mx = std::max(mx, prob[r]);
        }
        double sum = 0;
        for (double& x : prob) sum += (x = std::exp(x - mx));
        for (int x = 0; x < d_; ++x) o[x] = 0;
        for (size_t r = 0; r < keys.size(); ++r) {
            prob[r] /= sum;
            const float* vj = v_ + (size_t(kh) * total_ + keys[r]) * d_;
            for (int x = 0; x < d_; ++x) o[x] += prob[r] * vj[x];
        }
    }

    void add_group(std::vector<double>& acc, const std::vector<int>& keys, const std::vector<double>& prob) const {
        acc.resize(keys.size(), 0);
        const double g = double(hq_ / hkv_);
        for (size_t r = 0; r < keys.size(); ++r) acc[r] += prob[r] / g;
    }

    // m blocks of b scores (positions u .. u + m b - 1): metric, rank (ties: lower block), budgets.
    void compress_blocks(int h, const std::vector<double>& sc, int m, const std::vector<int>& psi) {
        std::vector<double> metric(static_cast<size_t>(m));
        for (int j = 0; j < m; ++j) {
            double s1 = 0, s2 = 0;
            for (int x = 0; x < b_; ++x) s1 += sc[size_t(j) * b_ + x], s2 += sc[size_t(j) * b_ + x] * sc[size_t(j) * b_ + x];
            metric[j] = (1 - alpha_) * s1 + alpha_ * (s1 > 0 ? 1 - s2 / (s1 * s1) : 0);
        }
        std::vector<int> order(static_cast<size_t>(m));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int a, int c) { return metric[a] > metric[c]; });
        std::vector<int> kept;
        for (int rk = 0; rk < m; ++rk) {
            const int j = order[rk];
            std::vector<double> blk(sc.begin() + std::ptrdiff_t(j) * b_, sc.begin() + std::ptrdiff_t(j + 1) * b_);
            for (int x : top(blk, psi[rk])) kept.push_back(u_ + j * b_ + x);
        }
        std::sort(kept.begin(), kept.end());
        g_[h].insert(g_[h].end(), kept.begin(), kept.end());
    }

    void keep_top(int h, const std::vector<double>& sc, int block, int t) {
        std::vector<int> kept;
        for (int x : top(sc, t)) kept.push_back(u_ + block * b_ + x);
        std::sort(kept.begin(), kept.end());
        g_[h].insert(g_[h].end(), kept.begin(), kept.end());
    }

    // Indices of the t largest (ties: lower index first).
    static std::vector<int> top(const std::vector<double>& s, int t) {
        std::vector<int> idx(s.size());
        std::iota(idx.begin(), idx.end(), 0);
        std::stable_sort(idx.begin(), idx.end(), [&](int a, int c) { return s[a] > s[c]; });
        idx.resize(size_t(std::min<int>(t, int(s.size()))));
        return idx;
    }

    int hq_, hkv_, d_, b_, w_;
    double alpha_;
    std::vector<std::vector<double>> p_;
    const float *q_, *k_, *v_;
    int total_;
    std::vector<int> K_;
    std::vector<std::vector<int>> g_;  // G's positions per KV head, in append order
    int n_ = 0, u_ = 0;
};

}  // namespace tca::detail::test
