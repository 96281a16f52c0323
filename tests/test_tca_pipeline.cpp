// The whole online phase on every OpenCL/Vulkan device against the CPU reference, as the C API and
// `tca attend` run it (method sessions over device ops):
//   * selection (score -> metric -> rank -> select) on every synthetic kind and on random data:
//     exactly the reference's kept set with float32 K/V; with float16 K/V, differences only at
//     near-ties (tests/selection_check.h states the rule, and a test shows the rule can fail);
//   * a prefill followed by 300 decode steps, compared step by step: every output row within
//     NMSE 1e-9 of the reference, the compact cache (positions and K/V bytes) identical after
//     every eviction;
//   * prompt lengths 1, 127, 128, 129, 4097 and 16384, and a window longer than the prompt.
#include <algorithm>
#include <cstring>

#include "harness.h"
#include "method/budget.h"
#include "method/device_util.h"
#include "method/profile.h"
#include "method/selection.h"
#include "method/session.h"
#include "method/synth.h"
#include "selection_check.h"

namespace tca::detail::test {
namespace {

using method::HostTensor;
using method::SynthKind;

method::SynthData synth(SynthKind kind, int hq, int hkv, int len, int dim, uint64_t seed = 5) {
    method::SynthSpec spec;
    spec.kind = kind, spec.q_heads = hq, spec.kv_heads = hkv, spec.len = len, spec.dim = dim, spec.seed = seed;
    return method::synthesize(spec);
}

// Rows [r0, r0 + n) of every head of x.
HostTensor rows(const HostTensor& x, int r0, int n) {
    HostTensor out(x.heads, n, x.dim);
    for (int h = 0; h < x.heads; ++h)
        std::memcpy(out.row(h, 0), x.row(h, r0), size_t(n) * x.dim * sizeof(float));
    return out;
}

std::vector<float> flat_rows(const HostTensor& x, int r) { return rows(x, r, 1).data; }

// ---- selection ---------------------------------------------------------------------------------

// One selection pass (spec Phase 2 steps 1-4) on a device, with everything read back.
struct SelectionRun {
    std::vector<float> s, h;            // [heads, L], [heads, n_blocks]
    std::vector<int32_t> order, idx, count;
    int n_blocks = 0, idx_stride = 0;
};

SelectionRun run_selection(Device& dev, const method::SynthData& x, DType kv, int window, int block, double keep) {
    const int L = x.k.tokens, hkv = x.k.heads, n_global = L - window;
    const Tensor q = method::upload_tensor(dev, x.q), k = method::upload_tensor(dev, x.k, kv);
    const method::BlockRanking r = method::rank_blocks(dev, q, k, n_global, block, 0.5f);
    method::TcaParams p;
    p.block = block, p.window = window;
    const method::Profile prof = method::fixed_ratio_profile(p, {1, x.q.heads, hkv, x.q.dim}, keep);
    const auto budgets = method::head_budgets(prof.keep_counts, prof.layer_p(0), r.n_blocks);
    method::Selection sel;
    method::select_tokens(dev, r, budgets, sel);
    // The metric values themselves, for the near-tie rule (rank_blocks keeps them internal).
    BufView h = method::alloc_zeros(dev, size_t(hkv) * r.n_blocks);
    MetricArgs ma;
    ma.s = r.s, ma.heads = hkv, ma.s_stride = r.s_stride, ma.n_global = n_global, ma.block = block, ma.alpha = 0.5f,
    ma.h = h;
    dev.metric(ma);
    SelectionRun out;
    out.n_blocks = r.n_blocks, out.idx_stride = sel.idx_stride;
    out.s = method::read_floats(dev, r.s, size_t(hkv) * r.s_stride);
    out.h = method::read_floats(dev, h, size_t(hkv) * r.n_blocks);
    out.order = method::read_ints(dev, r.order, size_t(hkv) * r.n_blocks);
    out.idx = method::read_ints(dev, sel.idx, size_t(hkv) * sel.idx_stride);
    out.count = method::read_ints(dev, sel.count, hkv);
    return out;
}

std::vector<int> kept_of(const SelectionRun& r, int h) {
    return std::vector<int>(r.idx.begin() + size_t(h) * r.idx_stride, r.idx.begin() + size_t(h) * r.idx_stride + r.count[h]);
}

// The near-tie view of head h: reference importances and metrics, the device's order and set.
HeadSelection near_tie_view(const SelectionRun& ref, const SelectionRun& got, const std::vector<int>& budget, int h,
                            int L, int n_global, int block) {
    HeadSelection v;
    v.s.assign(ref.s.begin() + size_t(h) * L, ref.s.begin() + size_t(h) * L + n_global);
    v.h.assign(ref.h.begin() + size_t(h) * ref.n_blocks, ref.h.begin() + size_t(h + 1) * ref.n_blocks);
    v.budget = budget;
    v.order.assign(got.order.begin() + size_t(h) * got.n_blocks, got.order.begin() + size_t(h + 1) * got.n_blocks);
    v.kept = kept_of(got, h);
    v.block = block;
    return v;
}

class PipelineTest : public ::testing::TestWithParam<std::string> {
protected:
    Device& dev() { return device(GetParam()); }
};

std::vector<SynthKind> kinds_and_random() { return method::all_synth_kinds(); }  // includes random and mix

TEST_P(PipelineTest, SelectionEqualsReferenceOnEveryKindF32) {
    const int window = 256, block = 128;
    for (SynthKind kind : kinds_and_random()) {
        for (int L : {4097, 16384}) {
            if (L == 16384 && kind != SynthKind::mix && kind != SynthKind::random) continue;  // keep the suite short
            const auto x = synth(kind, 4, 2, L, 64);
            const SelectionRun ref = run_selection(reference(), x, DType::f32, window, block, 0.25);
            const SelectionRun got = run_selection(dev(), x, DType::f32, window, block, 0.25);
            const std::string what = std::string(method::synth_kind_name(kind)) + " L=" + std::to_string(L);
            method::TcaParams p;
            p.block = block, p.window = window;
            const auto prof = method::fixed_ratio_profile(p, {1, 4, 2, 64}, 0.25);
            for (int h = 0; h < 2; ++h) {
                // The block order may differ only between blocks whose metrics tie within float
                // rounding (flat heads), and each block keeps the top-t its rank's budget says.
                const auto budget = method::budget_vector(prof.keep_counts, prof.head(0, h).p, ref.n_blocks);
                EXPECT_EQ(check_near_tie_selection(near_tie_view(ref, got, budget, h, L, L - window, block), 1e-5), "")
                    << what << " head " << h << ": block order";
                // Where the order is the reference's, the kept sets are identical.
                const auto order = [&](const SelectionRun& r) {
                    return std::vector<int>(r.order.begin() + size_t(h) * r.n_blocks, r.order.begin() + size_t(h + 1) * r.n_blocks);
                };
                if (order(ref) == order(got)) {
                    EXPECT_EQ(kept_of(ref, h), kept_of(got, h)) << what << " head " << h;
                } else {
                    EXPECT_EQ(kind, SynthKind::uniform) << what << " head " << h << ": only flat heads may reorder blocks";
                }
            }
        }
    }
}

TEST_P(PipelineTest, Fp16SelectionDiffersOnlyAtNearTies) {
    const int window = 128, block = 64, L = 4097, n_global = L - window;
    for (SynthKind kind : kinds_and_random()) {
        auto x = synth(kind, 4, 2, L, 64, 9);
        // Plant exact and near ties: copies of earlier keys, some nudged by one half-precision ulp.
        for (int h = 0; h < 2; ++h)
            for (int t = 200; t < n_global; t += 97) {
                std::memcpy(x.k.row(h, t), x.k.row(h, t - 3), size_t(x.k.dim) * sizeof(float));
                if (t % 2) x.k.row(h, t)[0] = std::nextafter(x.k.row(h, t)[0], 10.f) * (1.f + 1.f / 1024.f);
            }
        const SelectionRun ref = run_selection(reference(), x, DType::f16, window, block, 0.25);
        const SelectionRun got = run_selection(dev(), x, DType::f16, window, block, 0.25);
        method::TcaParams p;
        p.block = block, p.window = window;
        const auto prof = method::fixed_ratio_profile(p, {1, 4, 2, 64}, 0.25);
        for (int h = 0; h < 2; ++h) {
            const auto budget = method::budget_vector(prof.keep_counts, prof.head(0, h).p, ref.n_blocks);
            const std::string err =
                check_near_tie_selection(near_tie_view(ref, got, budget, h, L, n_global, block), 1e-4);
            EXPECT_EQ(err, "") << method::synth_kind_name(kind) << " head " << h;
            // The reference agrees with itself under the rule (the checker accepts a correct selection).
            EXPECT_EQ(check_near_tie_selection(near_tie_view(ref, ref, budget, h, L, n_global, block), 0.0), "");
        }
    }
}

// The rule is not vacuous: a swap of two clearly different tokens, or of two clearly different
// blocks, is reported.
TEST(NearTieRule, RejectsRealDifferences) {
    HeadSelection v;
    v.block = 4;
    v.s = {0.1f, 0.4f, 0.3f, 0.2f, 0.05f, 0.05f, 0.01f, 0.02f};
    v.h = {1.0f, 0.5f};
    v.budget = {2, 1};
    v.order = {0, 1};
    v.kept = {1, 2, 4};  // block 0 keeps its top 2; block 1 keeps one of its tied top tokens
    EXPECT_EQ(check_near_tie_selection(v, 1e-4), "");
    v.kept = {1, 2, 5};  // the other token of the tie: still fine
    EXPECT_EQ(check_near_tie_selection(v, 1e-4), "");
    v.kept = {0, 1, 4};  // block 0 drops 0.3 but keeps 0.1
    EXPECT_NE(check_near_tie_selection(v, 1e-4), "");
    v.kept = {1, 2, 4};
    v.order = {1, 0};  // block 1 (h 0.5) ranked above block 0 (h 1.0)
    EXPECT_NE(check_near_tie_selection(v, 1e-4), "");
    v.order = {0, 1};
    v.kept = {1, 4};  // block 0 keeps fewer than its budget
    EXPECT_NE(check_near_tie_selection(v, 1e-4), "");
}

// ---- prefill + decode ----------------------------------------------------------------------------

struct SessionSetup {
    int hq = 4, hkv = 2, dim = 64, prompt = 1000, steps = 300, window = 128, block = 64;
    double keep = 0.3;
    DType kv = DType::f32;
};

std::unique_ptr<method::AttentionSession> make_session(Device& d, const SessionSetup& s) {
    method::TcaParams p;
    p.block = s.block, p.window = s.window;
    const auto prof = method::fixed_ratio_profile(p, {1, s.hq, s.hkv, s.dim}, s.keep);
    return method::make_tca_session(d, {s.hq, s.hkv, s.dim}, p, prof.layer_p(0), s.prompt + s.steps, s.kv);
}

void expect_same_contents(method::AttentionSession& ref, method::AttentionSession& got, const std::string& what) {
    const method::CacheContents a = ref.contents(), b = got.contents();
    ASSERT_EQ(a.positions.size(), b.positions.size()) << what;
    for (size_t h = 0; h < a.positions.size(); ++h) {
        EXPECT_EQ(a.positions[h], b.positions[h]) << what << " head " << h << ": cached positions";
        EXPECT_TRUE(a.k_rows[h] == b.k_rows[h]) << what << " head " << h << ": cached K bytes";
        EXPECT_TRUE(a.v_rows[h] == b.v_rows[h]) << what << " head " << h << ": cached V bytes";
    }
}

// Runs prefill + decode on the reference and the device side by side; returns the worst NMSE.
void run_side_by_side(Device& d, const method::SynthData& x, const SessionSetup& s, const std::string& what) {
    auto ref = make_session(reference(), s), got = make_session(d, s);
    const HostTensor q = rows(x.q, 0, s.prompt), k = rows(x.k, 0, s.prompt), v = rows(x.v, 0, s.prompt);
    const HostTensor o_ref = ref->prefill(q, k, v), o_got = got->prefill(q, k, v);
    EXPECT_LE(nmse(o_ref.data, o_got.data), 1e-9) << what << ": prefill";
    EXPECT_EQ(ref->trace().prefill_kept, got->trace().prefill_kept) << what << ": prefill selection";
    expect_same_contents(*ref, *got, what + " after prefill");
    int bad_steps = 0;
    std::vector<int> global_before = ref->account().global;
    for (int step = 0; step < s.steps; ++step) {
        const int pos = s.prompt + step;
        const auto qs = flat_rows(x.q, pos), ks = flat_rows(x.k, pos), vs = flat_rows(x.v, pos);
        const auto a = ref->decode(qs.data(), ks.data(), vs.data());
        const auto b = got->decode(qs.data(), ks.data(), vs.data());
        const double e = nmse(a, b);
        if (!(e <= 1e-9) && bad_steps++ < 3) ADD_FAILURE() << what << ": decode step " << step << " nmse " << e;
        // An eviction just moved the pending block's survivors into G: the caches must agree.
        if (ref->account().global != global_before) {
            expect_same_contents(*ref, *got, what + " after the eviction at step " + std::to_string(step));
            global_before = ref->account().global;
        }
    }
    EXPECT_EQ(bad_steps, 0) << what;
    expect_same_contents(*ref, *got, what + " at the end");
    EXPECT_EQ(ref->device_global_lengths(), got->device_global_lengths()) << what;
    const auto tr = ref->trace(), tg = got->trace();
    EXPECT_EQ(tr.g_positions, tg.g_positions) << what;
    EXPECT_EQ(tr.step_n2, tg.step_n2) << what;
}

// 300 steps on the mix kind with six KV heads: one head each of local, sink, retrieval, local,
// bipolar and random, so every structure goes through several evictions; uniform (the kind mix
// leaves out) gets its own shorter run.
TEST_P(PipelineTest, PrefillAnd300DecodeStepsMatchReferenceOnEveryKind) {
    SessionSetup s;
    s.hq = 12, s.hkv = 6, s.prompt = 600;
    run_side_by_side(dev(), synth(SynthKind::mix, s.hq, s.hkv, s.prompt + s.steps, s.dim), s, "mix");
    SessionSetup u;
    u.hq = 2, u.hkv = 1, u.prompt = 600, u.steps = 140;
    run_side_by_side(dev(), synth(SynthKind::uniform, u.hq, u.hkv, u.prompt + u.steps, u.dim), u, "uniform");
}

TEST_P(PipelineTest, Fp16PrefillAndDecodeMatchReference) {
    SessionSetup s;
    s.kv = DType::f16, s.prompt = 600, s.steps = 100, s.dim = 128;
    const auto x = synth(SynthKind::mix, s.hq, s.hkv, s.prompt + s.steps, s.dim);
    run_side_by_side(dev(), x, s, "mix f16");
}

TEST_P(PipelineTest, Bf16PrefillAndDecodeMatchReference) {
    SessionSetup s;
    s.kv = DType::bf16, s.prompt = 600, s.steps = 60, s.dim = 64;
    const auto x = synth(SynthKind::mix, s.hq, s.hkv, s.prompt + s.steps, s.dim);
    run_side_by_side(dev(), x, s, "mix bf16");
}

TEST_P(PipelineTest, EdgeLengthsAndLongWindow) {
    for (int prompt : {1, 127, 128, 129, 4097}) {
        SessionSetup s;
        s.prompt = prompt, s.steps = 40, s.window = 64, s.block = 32, s.hq = 4, s.hkv = 2;
        const auto x = synth(SynthKind::mix, s.hq, s.hkv, s.prompt + s.steps, s.dim, 11);
        run_side_by_side(dev(), x, s, "prompt " + std::to_string(prompt));
    }
    SessionSetup s;  // the window is longer than the prompt: dense prefill, then compression starts
    s.prompt = 300, s.steps = 250, s.window = 400, s.block = 32, s.hq = 2, s.hkv = 1;
    const auto x = synth(SynthKind::sink, s.hq, s.hkv, s.prompt + s.steps, s.dim, 12);
    run_side_by_side(dev(), x, s, "window > prompt");
}

// A 16384-token prompt: one query head, a sparse budget (the reference's double-precision sparse
// prefill and the CPU drivers bound what the suite can afford here).
TEST_P(PipelineTest, Prompt16384) {
    SessionSetup s;
    s.prompt = 16384, s.steps = 4, s.window = 256, s.block = 128, s.hq = 1, s.hkv = 1, s.keep = 0.05;
    const auto x = synth(SynthKind::sink, s.hq, s.hkv, s.prompt + s.steps, s.dim, 13);
    run_side_by_side(dev(), x, s, "prompt 16384");
}

TEST_P(PipelineTest, RepeatedRunsAreBitwiseIdentical) {
    SessionSetup s;
    s.steps = 80;
    const auto x = synth(SynthKind::bipolar, s.hq, s.hkv, s.prompt + s.steps, s.dim, 21);
    std::vector<float> outs[2];
    for (auto& o : outs) {
        auto sess = make_session(dev(), s);
        o = sess->prefill(rows(x.q, 0, s.prompt), rows(x.k, 0, s.prompt), rows(x.v, 0, s.prompt)).data;
        for (int step = 0; step < s.steps; ++step) {
            const int pos = s.prompt + step;
            const auto r = sess->decode(flat_rows(x.q, pos).data(), flat_rows(x.k, pos).data(), flat_rows(x.v, pos).data());
            o.insert(o.end(), r.begin(), r.end());
        }
    }
    ASSERT_EQ(outs[0].size(), outs[1].size());
    EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * sizeof(float)), 0);
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(PipelineTest);
INSTANTIATE_TEST_SUITE_P(AllDevices, PipelineTest, ::testing::ValuesIn(devices_under_test()),
                         [](const auto& info) { return safe_name(info.param); });

}  // namespace
}  // namespace tca::detail::test
