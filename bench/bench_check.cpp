#include "bench_check.h"

#include <algorithm>
#include <cmath>

namespace tca::detail::bench {

double nmse(const std::vector<float>& ref, const std::vector<float>& x) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        num += (double(ref[i]) - x[i]) * (double(ref[i]) - x[i]);
        den += double(ref[i]) * ref[i];
    }
    return den > 0 ? num / den : num;
}

std::pair<double, double> rel_l1(const std::vector<float>& ref, const std::vector<float>& x, const CaseShape& s, int row0) {
    double sum = 0, worst = 0;
    size_t n = 0;
    for (int h = 0; h < s.hq; ++h)
        for (int t = std::max(0, row0); t < s.L; ++t) {
            const size_t o = (size_t(h) * s.L + t) * s.d;
            double num = 0, den = 0;
            for (int i = 0; i < s.d; ++i) {
                num += std::fabs(double(ref[o + i]) - x[o + i]);
                den += std::fabs(double(ref[o + i]));
            }
            const double e = den > 0 ? num / den : num;
            sum += e, worst = std::max(worst, e), ++n;
        }
    return {n ? sum / double(n) : 0.0, worst};
}

double attended_fraction(const std::vector<std::vector<int>>& kept, const CaseShape& s) {
    const double L = s.L, w = s.window;
    // Local part: query p sees min(p + 1, w) keys of its window.
    const double wl = std::min(L, w);
    const double local = wl * (wl + 1) / 2 + (L - wl) * w;
    const double dense = L * (L + 1) / 2;
    double sum = 0;
    for (const auto& g : kept) {
        double global = 0;  // kept token j is seen by the queries p >= j + w
        for (int j : g) global += std::max(0.0, L - j - w);
        sum += (local + global) / dense;
    }
    return kept.empty() ? 1.0 : sum / double(kept.size());
}

BoundRows bound_rows(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                     const CaseShape& s, int rows) {
    BoundRows b;
    if (s.L <= s.window || rows <= 0) return b;
    for (int r = 0; r < rows; ++r) {  // evenly spread over [window, L-1], the last row included
        const int p = s.window + int((int64_t(s.L - 1 - s.window) * (r + 1)) / rows);
        if (b.pos.empty() || b.pos.back() != p) b.pos.push_back(p);
    }
    const int group = s.hq / s.hkv;
    const double scale = 1.0 / std::sqrt(double(s.d));
    for (int p : b.pos)
        for (int h = 0; h < s.hq; ++h) {
            const int hk = h / group;
            const float* qr = &q[(size_t(h) * s.L + p) * s.d];
            std::vector<double> l(size_t(p) + 1);
            double m = -1e300, vmax = 0;
            for (int j = 0; j <= p; ++j) {
                const float* kr = &k[(size_t(hk) * s.L + j) * s.d];
                const float* vr = &v[(size_t(hk) * s.L + j) * s.d];
                double dot = 0, v1 = 0;
                for (int i = 0; i < s.d; ++i) dot += double(qr[i]) * kr[i], v1 += std::fabs(double(vr[i]));
                l[j] = dot * scale;
                m = std::max(m, l[j]);
                vmax = std::max(vmax, v1);
            }
            double z = 0;
            for (double& x : l) z += (x = std::exp(x - m));
            for (double& x : l) x /= z;
            b.probs.push_back(std::move(l));
            b.vmax1.push_back(vmax);
        }
    return b;
}

BoundCheck check_bound(const BoundRows& b, const std::vector<std::vector<int>>& kept, const std::vector<float>& dense_o,
                       const std::vector<float>& tca_o, const CaseShape& s) {
    BoundCheck c;
    const int group = s.hq / s.hkv;
    bool first = true;
    for (size_t r = 0; r < b.pos.size(); ++r) {
        const int p = b.pos[r];
        for (int h = 0; h < s.hq; ++h) {
            const auto& pr = b.probs[r * size_t(s.hq) + size_t(h)];
            // Attended: the local window (p - w, p] and kept tokens j <= p - w.
            double seen = 0;
            for (int j = std::max(0, p - s.window + 1); j <= p; ++j) seen += pr[j];
            for (int j : kept[size_t(h / group)]) {
                if (j > p - s.window) break;
                seen += pr[j];
            }
            const double gamma = std::max(0.0, 1.0 - seen);
            const size_t o = (size_t(h) * s.L + p) * s.d;
            double err = 0;
            for (int i = 0; i < s.d; ++i) err += std::fabs(double(dense_o[o + i]) - tca_o[o + i]);
            const double vmax = b.vmax1[r * size_t(s.hq) + size_t(h)];
            const double slack = 2 * gamma - (vmax > 0 ? err / vmax : 0);
            c.worst_slack = first ? slack : std::min(c.worst_slack, slack);
            first = false;
            if (gamma > 1e-12 && vmax > 0) c.max_use = std::max(c.max_use, err / (2 * gamma * vmax));
            ++c.rows;
        }
    }
    return c;
}

}  // namespace tca::detail::bench
