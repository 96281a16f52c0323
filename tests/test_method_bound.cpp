// The spec's error bound ||o_i - o~_i||_1 <= 2 gamma_i max_j ||v_j||_1 for every query of a TCA
// prefill on every synthetic kind, and an example showing the bound is tight.
#include <gtest/gtest.h>

#include "method/bound.h"
#include "method/device_util.h"
#include "method/session.h"
#include "method_fixtures.h"

namespace tca::detail::method {
namespace {

using test::cpu;

TEST(Bound, HoldsForEveryQueryOnEveryKind) {
    TcaParams p;
    p.block = 32, p.window = 96;
    for (SynthKind kind : all_synth_kinds()) {
        const Profile prof = test::calibrated(kind, 4, 2, 700, 64, p, 51);
        const auto w = test::workload(kind, 4, 2, 700, 64, 52);
        auto s = make_tca_session(cpu(), {4, 2, 64}, p, prof.layer_p(0), 700);
        const HostTensor o = s->prefill(w.q, w.k, w.v);
        const auto qb = error_bound(w.q, w.k, w.v, o, s->trace());
        int violations = 0, dropped = 0;
        for (const auto& x : qb) {
            violations += x.actual > x.bound + kBoundFpSlack * x.vmax1;
            dropped += x.gamma > 0;
        }
        EXPECT_EQ(violations, 0) << synth_kind_name(kind);
        EXPECT_GT(dropped, 0) << synth_kind_name(kind) << ": nothing dropped, the check would be empty";
    }
}

TEST(Bound, IsTightOnAnAdversarialExample) {
    // q = 0: uniform attention. L = 4, window 2, nothing kept: query 3 drops keys 0 and 1,
    // gamma = 1/2. V: dropped keys carry -u, attended ones +u, so dense o = 0 and sparse o = u:
    // ||o - o~||_1 = ||u||_1 = 2 * gamma * max ||v||_1, the bound exactly.
    HostTensor q(1, 4, 4), k(1, 4, 4), v(1, 4, 4);
    const float u[4] = {1.f, -2.f, 0.5f, 3.f};
    for (int j = 0; j < 4; ++j)
        for (int x = 0; x < 4; ++x) k.row(0, j)[x] = float(j + x), v.row(0, j)[x] = (j < 2 ? -1.f : 1.f) * u[x];
    PrefillArgs a;
    a.q = upload_tensor(cpu(), q), a.k = upload_tensor(cpu(), k), a.v = upload_tensor(cpu(), v);
    a.o = alloc_tensor(cpu(), 1, 4, 4);
    a.window = 2, a.kept_idx = alloc_zeros(cpu(), 1), a.kept_count = alloc_ints(cpu(), {0}), a.kept_stride = 1;
    cpu().prefill(a);
    AttentionTrace tr;
    tr.dense = false, tr.prompt = 4, tr.window = 2, tr.prefill_kept = {{}};
    const auto qb = error_bound(q, k, v, download_tensor(cpu(), a.o), tr);
    const QueryBound& last = qb[3];
    EXPECT_NEAR(last.gamma, 0.5, 1e-12);
    EXPECT_NEAR(last.bound, 6.5, 1e-9);
    EXPECT_GE(last.actual, 0.5 * last.bound) << "within 2x of the bound";
    EXPECT_LE(last.actual, last.bound + kBoundFpSlack * last.vmax1);
}

TEST(Bound, DetectsAWrongOutput) {
    // The check must be able to fail: perturb one output row of a sparse run past its bound.
    TcaParams p;
    p.block = 32, p.window = 64;
    const Profile prof = test::calibrated(SynthKind::sink, 2, 1, 400, 32, p, 53);
    const auto w = test::workload(SynthKind::sink, 2, 1, 400, 32, 54);
    auto s = make_tca_session(cpu(), {2, 1, 32}, p, prof.layer_p(0), 400);
    HostTensor o = s->prefill(w.q, w.k, w.v);
    const auto tr = s->trace();
    auto qb = error_bound(w.q, w.k, w.v, o, tr);
    o.row(1, 399)[0] += float(qb[399 + 400].bound + 0.1);
    qb = error_bound(w.q, w.k, w.v, o, tr);
    EXPECT_GT(qb[399 + 400].actual, qb[399 + 400].bound);
    EXPECT_EQ(summarize(qb, 2, 400)[1].violations, 1);
}

}  // namespace
}  // namespace tca::detail::method
