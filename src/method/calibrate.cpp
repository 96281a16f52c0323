#include "core/checked.h"
#include "method/calibrate.h"

#include "core/range.h"
#include "method/device_util.h"
#include "method/selection.h"

namespace tca::detail::method {

int choose_candidate(const std::vector<int>& kept, const std::vector<double>& covered, double tau, bool* valid) {
    int best = -1;
    for (int i = 0; i < int(kept.size()); ++i)
        if (covered[i] >= tau && (best < 0 || kept[i] < kept[best])) best = i;
    if (valid) *valid = best >= 0;
    if (best >= 0) return best;
    best = 0;
    for (int i = 1; i < int(kept.size()); ++i)
        if (covered[i] > covered[best]) best = i;
    return best;
}

double covered_mass(const std::vector<float>& c, int n_global, const std::vector<int>& kept) {
    std::vector<uint8_t> in(c.size(), 0);
    for (int j : kept) in[j] = 1;
    for (size_t j = n_global; j < c.size(); ++j) in[j] = 1;
    double total = 0, cov = 0;
    for (size_t j = 0; j < c.size(); ++j) {
        total += c[j];
        if (in[j]) cov += c[j];
    }
    return total > 0 ? cov / total : 1.0;
}

namespace {

// Calibration's scores (colsum, importance) at the default scale must stay in range (tca.h).
double norm_of(const HostTensor& x) { return max_row_norm(x.data.data(), x.data.size() / size_t(std::max(1, x.dim)), x.dim); }
void check_range(const HostTensor& q, const HostTensor& k) {
    check_attention_range("calibrate", 0.f, q.dim, norm_of(q), norm_of(k), kNormUnknown);
}

std::vector<std::vector<float>> colsum_on_device(Device& dev, const Tensor& q, const Tensor& k) {
    const int L = k.tokens;
    const size_t n = checked_product({k.heads, L}, "received-attention elements");
    BufView c = alloc_zero_rows(dev, k.heads, size_t(L));
    ColsumArgs ca;
    ca.q = q, ca.k = k, ca.c = c, ca.c_stride = L;
    dev.colsum(ca);
    const auto flat = read_floats(dev, c, n);
    std::vector<std::vector<float>> out;
    for (int h = 0; h < k.heads; ++h) out.emplace_back(flat.begin() + size_t(h) * L, flat.begin() + size_t(h + 1) * L);
    return out;
}

}  // namespace

std::vector<std::vector<float>> received_attention(Device& dev, const HostTensor& q, const HostTensor& k) {
    check_range(q, k);
    return colsum_on_device(dev, upload_tensor(dev, q, DType::f32, k.heads > 0 ? q.heads / k.heads : 1),
                            upload_tensor(dev, k));
}

std::vector<HeadCalibration> calibrate_layer(Device& dev, const TcaParams& params, const std::vector<Candidate>& grid,
                                             const HostTensor& q, const HostTensor& k) {
    validate_params(params);
    const int L = k.tokens, H = k.heads;
    require(q.tokens == L && q.dim == k.dim && q.heads % H == 0, TCA_ERROR_SHAPE_MISMATCH,
            "calibration q and k shapes do not fit");
    require(L > params.window, TCA_ERROR_INVALID_ARGUMENT,
            "window " + std::to_string(params.window) + " covers the whole calibration sequence of " + std::to_string(L) +
                " tokens: nothing to select; use a longer sequence or a smaller --window");
    const int n_global = L - params.window;
    check_range(q, k);
    const Tensor qd = upload_tensor(dev, q, DType::f32, q.heads / H), kd = upload_tensor(dev, k);
    const auto c = colsum_on_device(dev, qd, kd);
    const BlockRanking r = rank_blocks(dev, qd, kd, n_global, params.block, float(params.alpha));
    const std::vector<int> K = keep_counts(params.block);
    std::vector<HeadCalibration> out(H);
    Selection sel;
    for (const Candidate& cand : grid) {
        // The same candidate for every head in one select call: the op is per head anyway.
        select_tokens(dev, r, head_budgets(K, std::vector<std::vector<double>>(H, cand.p), r.n_blocks), sel);
        const auto counts = read_ints(dev, sel.count, H);
        const auto idx = read_ints(dev, sel.idx, checked_product({H, sel.idx_stride}, "kept index elements"));
        for (int h = 0; h < H; ++h) {
            const std::vector<int> kept(idx.begin() + size_t(h) * sel.idx_stride,
                                        idx.begin() + size_t(h) * sel.idx_stride + counts[h]);
            out[h].kept.push_back(counts[h]);
            out[h].covered.push_back(covered_mass(c[h], n_global, kept));
        }
    }
    for (auto& hc : out) hc.chosen = choose_candidate(hc.kept, hc.covered, params.tau, &hc.valid);
    return out;
}

Profile calibrate(Device& dev, const TcaParams& params, const std::vector<HostTensor>& q, const std::vector<HostTensor>& k) {
    require(!q.empty() && q.size() == k.size(), TCA_ERROR_INVALID_ARGUMENT, "calibrate: one q and one k per layer");
    Profile p;
    p.params = params;
    p.shape = {int(q.size()), q[0].heads, k[0].heads, k[0].dim};
    p.calibration_tokens = k[0].tokens;
    p.keep_counts = keep_counts(params.block);
    p.candidates = candidate_grid(params);
    for (size_t l = 0; l < q.size(); ++l) check_range(q[l], k[l]);  // every layer before any work
    for (int l = 0; l < int(q.size()); ++l) {
        require(q[l].heads == p.shape.q_heads && k[l].heads == p.shape.kv_heads && k[l].dim == p.shape.head_dim,
                TCA_ERROR_SHAPE_MISMATCH, "calibrate: layers differ in shape");
        const auto hc = calibrate_layer(dev, params, p.candidates, q[l], k[l]);
        for (int h = 0; h < p.shape.kv_heads; ++h) {
            HeadProfile hp;
            hp.layer = l, hp.kv_head = h, hp.candidate = hc[h].chosen;
            hp.p = p.candidates[hp.candidate].p;
            hp.covered_mass = hc[h].covered[hp.candidate];
            hp.kept_tokens = hc[h].kept[hp.candidate];
            hp.global_tokens = k[l].tokens - params.window;
            hp.keep_ratio = double(hp.kept_tokens) / hp.global_tokens;
            p.heads.push_back(std::move(hp));
        }
    }
    return p;
}

}  // namespace tca::detail::method
