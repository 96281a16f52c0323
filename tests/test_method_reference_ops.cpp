// The CPU reference backend is the ground truth every GPU kernel is compared with, so it is
// checked here on its own: each op on a tiny case against an independent, naive formula
// (or a hand-computed value) written from the op's documentation in device.h.
#include <gtest/gtest.h>

#include <cmath>

#include "device/registry.h"
#include "method/device_util.h"

namespace tca::detail::method {
namespace {

Device& cpu() {
    static auto dev = open_device("cpu");
    return *dev;
}

// softmax(x) in double.
std::vector<double> softmax(const std::vector<double>& x) {
    double m = -1e300, z = 0;
    for (double v : x) m = std::max(m, v);
    std::vector<double> p;
    for (double v : x) z += std::exp(v - m);
    for (double v : x) p.push_back(std::exp(v - m) / z);
    return p;
}

double dot4(const float* a, const float* b) { return double(a[0]) * b[0] + double(a[1]) * b[1] + double(a[2]) * b[2] + double(a[3]) * b[3]; }

// A 1-head tensor of L rows of dim 4 with simple values: row j = (j, 1, -j/2, 0.25) scaled.
HostTensor simple(int heads, int L, float scale, float shift) {
    HostTensor t(heads, L, 4);
    for (int h = 0; h < heads; ++h)
        for (int j = 0; j < L; ++j) {
            float* r = t.row(h, j);
            r[0] = scale * (j + shift + h), r[1] = 1.0f - 0.5f * h, r[2] = -0.5f * scale * j, r[3] = 0.25f * (j % 3);
        }
    return t;
}

// Naive attention of query row (hq, i) over the given key rows of KV head hk.
std::vector<double> naive_attend(const HostTensor& q, int hq, int i, const HostTensor& k, const HostTensor& v, int hk,
                                 const std::vector<int>& keys) {
    std::vector<double> logits;
    for (int j : keys) logits.push_back(0.5 * dot4(q.row(hq, i), k.row(hk, j)));  // scale 1/sqrt(4)
    const auto p = softmax(logits);
    std::vector<double> o(4, 0.0);
    for (size_t r = 0; r < keys.size(); ++r)
        for (int x = 0; x < 4; ++x) o[x] += p[r] * v.row(hk, keys[r])[x];
    return o;
}

TEST(ReferenceOps, DensePrefillIsCausalSoftmax) {
    const HostTensor q = simple(2, 5, 0.3f, 0.f), k = simple(1, 5, -0.2f, 1.f), v = simple(1, 5, 1.f, 2.f);
    PrefillArgs a;
    a.q = upload_tensor(cpu(), q), a.k = upload_tensor(cpu(), k), a.v = upload_tensor(cpu(), v);
    a.o = alloc_tensor(cpu(), 2, 5, 4);
    cpu().prefill(a);
    const HostTensor o = download_tensor(cpu(), a.o);
    for (int hq = 0; hq < 2; ++hq)
        for (int i = 0; i < 5; ++i) {
            std::vector<int> keys;
            for (int j = 0; j <= i; ++j) keys.push_back(j);
            const auto e = naive_attend(q, hq, i, k, v, 0, keys);
            for (int x = 0; x < 4; ++x) EXPECT_NEAR(o.row(hq, i)[x], e[x], 1e-6) << hq << " " << i;
        }
    // Hand value: row 0 attends only to key 0, so o = v_0 exactly.
    for (int x = 0; x < 4; ++x) EXPECT_EQ(o.row(0, 0)[x], v.row(0, 0)[x]);
}

TEST(ReferenceOps, SparsePrefillAttendsKeptPlusWindow) {
    const int L = 7, w = 2;
    const HostTensor q = simple(1, L, 0.4f, 0.f), k = simple(1, L, 0.3f, -2.f), v = simple(1, L, 1.f, 0.f);
    PrefillArgs a;
    a.q = upload_tensor(cpu(), q), a.k = upload_tensor(cpu(), k), a.v = upload_tensor(cpu(), v);
    a.o = alloc_tensor(cpu(), 1, L, 4);
    a.window = w;
    a.kept_idx = alloc_ints(cpu(), {0, 2, 3, 99});  // stride 4, count 3: entry 99 is never read
    a.kept_count = alloc_ints(cpu(), {3});
    a.kept_stride = 4;
    cpu().prefill(a);
    const HostTensor o = download_tensor(cpu(), a.o);
    // Hand-derived attended sets: kept index <= p - w, plus (p - w, p].
    const std::vector<std::vector<int>> sets = {{0}, {0, 1}, {0, 1, 2}, {0, 2, 3}, {0, 2, 3, 4}, {0, 2, 3, 4, 5}, {0, 2, 3, 5, 6}};
    for (int i = 0; i < L; ++i) {
        const auto e = naive_attend(q, 0, i, k, v, 0, sets[i]);
        for (int x = 0; x < 4; ++x) EXPECT_NEAR(o.row(0, i)[x], e[x], 1e-6) << "row " << i;
    }
}

TEST(ReferenceOps, DecodeIsOneSoftmaxOverBothSegmentsWithProbs) {
    const HostTensor q = simple(2, 1, 0.7f, 1.f);  // two query heads, one KV head (group 2)
    const HostTensor k1 = simple(1, 3, 0.2f, 0.f), v1 = simple(1, 3, 1.f, 0.f);
    const HostTensor k2 = simple(1, 4, -0.3f, 3.f), v2 = simple(1, 4, 2.f, 1.f);
    DecodeArgs a;
    a.q = upload_tensor(cpu(), q), a.o = alloc_tensor(cpu(), 2, 1, 4);
    a.k1 = upload_tensor(cpu(), k1), a.v1 = upload_tensor(cpu(), v1), a.n1 = 3;
    a.k2 = upload_tensor(cpu(), k2), a.v2 = upload_tensor(cpu(), v2), a.n2 = alloc_ints(cpu(), {2});  // rows 0, 1 of seg 2
    a.probs = alloc_zeros(cpu(), 2), a.probs_n = 2;
    cpu().decode(a);
    const HostTensor o = download_tensor(cpu(), a.o);
    const auto probs = read_floats(cpu(), a.probs, 2);
    double mean_p[2] = {0, 0};
    for (int hq = 0; hq < 2; ++hq) {
        std::vector<double> logits;
        for (int j = 0; j < 3; ++j) logits.push_back(0.5 * dot4(q.row(hq, 0), k1.row(0, j)));
        for (int j = 0; j < 2; ++j) logits.push_back(0.5 * dot4(q.row(hq, 0), k2.row(0, j)));
        const auto p = softmax(logits);
        for (int x = 0; x < 4; ++x) {
            double e = 0;
            for (int j = 0; j < 3; ++j) e += p[j] * v1.row(0, j)[x];
            for (int j = 0; j < 2; ++j) e += p[3 + j] * v2.row(0, j)[x];
            EXPECT_NEAR(o.row(hq, 0)[x], e, 1e-6);
        }
        mean_p[0] += p[0] / 2, mean_p[1] += p[1] / 2;
    }
    EXPECT_NEAR(probs[0], mean_p[0], 1e-7);
    EXPECT_NEAR(probs[1], mean_p[1], 1e-7);
}

TEST(ReferenceOps, ScoreIsGroupMeanOfLastRowSoftmax) {
    const HostTensor q = simple(2, 3, 0.5f, 0.f), k = simple(1, 5, 0.25f, 1.f);
    ScoreArgs a;
    a.q = upload_tensor(cpu(), q), a.q_row = 2, a.k = upload_tensor(cpu(), k), a.n_keys = 4;  // keys 0..3 only
    a.s = alloc_zeros(cpu(), 6), a.s_stride = 6;
    cpu().score(a);
    const auto s = read_floats(cpu(), a.s, 6);
    std::vector<double> mean(4, 0.0);
    for (int hq = 0; hq < 2; ++hq) {
        std::vector<double> logits;
        for (int j = 0; j < 4; ++j) logits.push_back(0.5 * dot4(q.row(hq, 2), k.row(0, j)));
        const auto p = softmax(logits);
        for (int j = 0; j < 4; ++j) mean[j] += p[j] / 2;
    }
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(s[j], mean[j], 1e-7);
    EXPECT_EQ(s[4], 0.f) << "entries past n_keys are not written";
}

TEST(ReferenceOps, MetricHandValues) {
    // Blocks of 2 over n_global = 5: [0.5, 0.5], [1, 0], [0, 0], [0.2] (partial).
    MetricArgs a;
    a.s = alloc_ints(cpu(), {});
    std::vector<float> s = {0.5f, 0.5f, 1.f, 0.f, 0.f, 0.f, 0.2f, 9.f};  // 9 is past n_global
    a.s = BufView{cpu().alloc(s.size() * 4), 0};
    cpu().write(a.s, s.data(), s.size() * 4);
    a.heads = 1, a.s_stride = 8, a.n_global = 7, a.block = 2, a.alpha = 0.5f;
    a.h = alloc_zeros(cpu(), 4);
    cpu().metric(a);
    const auto h = read_floats(cpu(), a.h, 4);
    EXPECT_NEAR(h[0], 0.5 * 1.0 + 0.5 * (1 - 0.5 / 1.0), 1e-7);  // flat pair: 0.75
    EXPECT_NEAR(h[1], 0.5 * 1.0 + 0.5 * 0.0, 1e-7);              // one-hot: 0.5
    EXPECT_NEAR(h[2], 0.0, 1e-7);                                // empty mass: flat term defined 0
    EXPECT_NEAR(h[3], 0.5 * 0.2 + 0.5 * 0.0, 1e-7);              // single token
}

TEST(ReferenceOps, RankSortsDescendingTiesToLowerBlock) {
    RankArgs a;
    std::vector<float> h = {1.f, 3.f, 3.f, 0.f, 3.f};
    a.h = BufView{cpu().alloc(20), 0};
    cpu().write(a.h, h.data(), 20);
    a.heads = 1, a.n_blocks = 5, a.order = alloc_zeros(cpu(), 5);
    cpu().rank(a);
    EXPECT_EQ(read_ints(cpu(), a.order, 5), (std::vector<int32_t>{1, 2, 4, 0, 3}));
}

TEST(ReferenceOps, SelectKeepsTopTPerBlockTiesToLowerIndex) {
    // Two blocks of 4 and a partial block of 2; order = (2, 0, 1), budgets by rank (3, 2, 1).
    std::vector<float> s = {0.1f, 0.3f, 0.3f, 0.2f, /**/ 0.5f, 0.5f, 0.1f, 0.5f, /**/ 0.05f, 0.06f};
    SelectArgs a;
    a.s = BufView{cpu().alloc(s.size() * 4), 0};
    cpu().write(a.s, s.data(), s.size() * 4);
    a.heads = 1, a.s_stride = 10, a.n_global = 10, a.block = 4;
    a.order = alloc_ints(cpu(), {2, 0, 1});
    a.budget = alloc_ints(cpu(), {3, 2, 1});
    a.idx = alloc_zeros(cpu(), 10), a.idx_stride = 10, a.count = alloc_zeros(cpu(), 1);
    cpu().select(a);
    // Block 2 (rank 0, budget 3, size 2): both. Block 0 (budget 2): tokens 1, 2 (0.3 tie: both).
    // Block 1 (budget 1): three tokens at 0.5, the lowest index (4) wins.
    EXPECT_EQ(read_ints(cpu(), a.count, 1)[0], 5);
    EXPECT_EQ(read_ints(cpu(), a.idx, 5), (std::vector<int32_t>{1, 2, 4, 8, 9}));
}

TEST(ReferenceOps, GatherAppendsWithPositions) {
    const HostTensor src = simple(2, 6, 1.f, 0.f);
    GatherArgs a;
    a.src_k = upload_tensor(cpu(), src), a.src_v = upload_tensor(cpu(), src);
    a.dst_k = alloc_tensor(cpu(), 2, 8, 4), a.dst_v = alloc_tensor(cpu(), 2, 8, 4);
    a.src_row0 = 1;
    a.idx = alloc_ints(cpu(), {0, 4, 9, /**/ 2, 9, 9}), a.idx_stride = 3;
    a.count = alloc_ints(cpu(), {2, 1});
    BufView len = alloc_ints(cpu(), {3, 0});
    a.dst_off = len, a.dst_len = len;  // append in place
    a.pos_out = alloc_zeros(cpu(), 16), a.pos_stride = 8, a.pos_base = 100;
    cpu().gather(a);
    EXPECT_EQ(read_ints(cpu(), len, 2), (std::vector<int32_t>{5, 1}));
    const HostTensor d = download_tensor(cpu(), a.dst_k);
    const auto pos = read_ints(cpu(), a.pos_out, 16);
    // Head 0: src rows 1 and 5 land at 3 and 4; head 1: src row 3 lands at 0.
    for (int x = 0; x < 4; ++x) {
        EXPECT_EQ(d.row(0, 3)[x], src.row(0, 1)[x]);
        EXPECT_EQ(d.row(0, 4)[x], src.row(0, 5)[x]);
        EXPECT_EQ(d.row(1, 0)[x], src.row(1, 3)[x]);
    }
    EXPECT_EQ(pos[3], 101);
    EXPECT_EQ(pos[4], 105);
    EXPECT_EQ(pos[8], 103);
}

TEST(ReferenceOps, ColsumIsMeanReceivedAttention) {
    const int L = 5;
    const HostTensor q = simple(2, L, 0.6f, 0.f), k = simple(1, L, 0.4f, 1.f);
    ColsumArgs a;
    a.q = upload_tensor(cpu(), q), a.k = upload_tensor(cpu(), k), a.c = alloc_zeros(cpu(), L), a.c_stride = L;
    cpu().colsum(a);
    const auto c = read_floats(cpu(), a.c, L);
    std::vector<double> expect(L, 0.0);
    for (int hq = 0; hq < 2; ++hq)
        for (int i = 0; i < L; ++i) {
            std::vector<double> logits;
            for (int j = 0; j <= i; ++j) logits.push_back(0.5 * dot4(q.row(hq, i), k.row(0, j)));
            const auto p = softmax(logits);
            for (int j = 0; j <= i; ++j) expect[j] += p[j] / (2.0 * (L - j));
        }
    for (int j = 0; j < L; ++j) EXPECT_NEAR(c[j], expect[j], 1e-7) << j;
    EXPECT_NEAR(c[L - 1] * 2, 0.0 + expect[L - 1] * 2, 1e-7);
}

}  // namespace
}  // namespace tca::detail::method
