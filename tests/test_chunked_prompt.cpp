// Chunked prompts (spec "Chunked prompt (streaming prefill)") on cpu and every OpenCL / Vulkan
// device, against an independent step-by-step host implementation of the spec section
// (chunked_reference.h, double precision): every chunk's outputs, G's positions exactly, the
// cache size after every chunk and its bound while a chunk is attended, then decode steps across
// compressions. And the spec's two identities: one chunk holding the whole prompt is dense, and
// when P - w is a multiple of b, G is the one-shot prefill's selection.
#include <cstring>
#include <numeric>

#include "chunked_reference.h"
#include "harness.h"
#include "method/chunked_session.h"
#include "method/profile.h"
#include "method/session.h"
#include "method/synth.h"

namespace tca::detail::test {
namespace {

using method::HostTensor;

class ChunkedTest : public ::testing::TestWithParam<std::string> {
protected:
    Device& dev() { return device(GetParam()); }
};

HostTensor rows(const HostTensor& x, int r0, int n) {
    HostTensor out(x.heads, n, x.dim);
    for (int h = 0; h < x.heads; ++h) std::memcpy(out.row(h, 0), x.row(h, r0), size_t(n) * x.dim * sizeof(float));
    return out;
}

std::vector<float> flat_row(const HostTensor& x, int r) { return rows(x, r, 1).data; }

std::vector<float> as_float(const std::vector<double>& x) { return std::vector<float>(x.begin(), x.end()); }

struct ChunkSetup {
    int hq = 4, hkv = 2, dim = 64, window = 64, block = 32, steps = 0;
    double keep = 0.3;
    DType kv = DType::f32;
    std::vector<int> chunks;
    method::SynthKind kind = method::SynthKind::mix;
    uint64_t seed = 3;
};

method::SynthData make_data(const ChunkSetup& s, int total) {
    method::SynthSpec spec;
    spec.kind = s.kind, spec.q_heads = s.hq, spec.kv_heads = s.hkv, spec.len = total, spec.dim = s.dim, spec.seed = s.seed;
    return method::synthesize(spec);
}

method::TcaParams params_of(const ChunkSetup& s) {
    method::TcaParams p;
    p.block = s.block, p.window = s.window;
    return p;
}

// Chunks (then decode steps) on `d` and on the reference, compared after every call.
void run_against_reference(Device& d, const ChunkSetup& s, const std::string& what) {
    const int prompt = std::accumulate(s.chunks.begin(), s.chunks.end(), 0), total = prompt + s.steps;
    const int max_chunk = *std::max_element(s.chunks.begin(), s.chunks.end());
    const auto x = make_data(s, total);
    // The reference reads K/V as the session stores them.
    std::vector<float> kr = x.k.data, vr = x.v.data;
    kr = round_to_format(s.kv, kr), vr = round_to_format(s.kv, vr);
    const auto prof = method::fixed_ratio_profile(params_of(s), {1, s.hq, s.hkv, s.dim}, s.keep);
    ChunkedReference ref(s.hq, s.hkv, s.dim, s.block, s.window, params_of(s).alpha, prof.layer_p(0), x.q.data.data(),
                         kr.data(), vr.data(), total);
    auto sess = method::make_chunked_tca_session(d, {s.hq, s.hkv, s.dim}, params_of(s), prof.layer_p(0), total, max_chunk, s.kv);
    auto expect_state = [&](const std::string& at) {
        const auto& acc = sess->account();
        const auto tr = sess->trace();
        const auto c = sess->contents();
        for (int h = 0; h < s.hkv; ++h) {
            ASSERT_EQ(tr.g_positions[h], ref.global(h)) << what << at << ": G of KV head " << h;
            EXPECT_EQ(acc.global[h], int(ref.global(h).size())) << what << at;
            EXPECT_EQ(acc.cached(h), int(ref.global(h).size()) + ref.uncompressed()) << what << at << ": cache size";
            std::vector<int> pos = ref.global(h);
            for (int j = ref.u(); j < ref.tokens(); ++j) pos.push_back(j);
            EXPECT_EQ(c.positions[h], pos) << what << at << ": cached positions";
        }
        EXPECT_EQ(sess->device_global_lengths(), acc.global) << what << at;
        EXPECT_EQ(acc.tokens_seen, ref.tokens()) << what << at;
    };
    int pos = 0;
    int64_t bound_total = 0;
    for (size_t ci = 0; ci < s.chunks.size(); ++ci) {
        const int c = s.chunks[ci];
        const std::string at = " chunk " + std::to_string(ci) + " [" + std::to_string(pos) + ", " + std::to_string(pos + c) + ")";
        const std::vector<int> g_before = sess->account().global;
        const auto o = sess->prefill(rows(x.q, pos, c), rows(x.k, pos, c), rows(x.v, pos, c));
        const auto o_ref = as_float(ref.chunk(pos + c));
        EXPECT_LE(nmse(o_ref, o.data), 1e-9) << what << at << ": outputs";
        pos += c;
        // The spec's bound, after the chunk and while it was attended (the session's peak).
        int64_t bound = 0;
        for (int h = 0; h < s.hkv; ++h) {
            EXPECT_LE(sess->account().cached(h), g_before[h] + (s.block - 1) + s.window + c) << what << at;
            bound += g_before[h] + (s.block - 1) + s.window + c;
        }
        bound_total = std::max(bound_total, bound);
        EXPECT_LE(sess->account().peak_tokens, bound_total) << what << at << ": peak";
        expect_state(at);
        if (::testing::Test::HasFatalFailure()) return;
    }
    int bad = 0;
    for (int t = prompt; t < total; ++t) {
        const auto o = sess->decode(flat_row(x.q, t).data(), flat_row(x.k, t).data(), flat_row(x.v, t).data());
        const auto o_ref = as_float(ref.decode());
        const double e = nmse(o_ref, o);
        if (!(e <= 1e-9) && bad++ < 3) ADD_FAILURE() << what << ": decode at " << t << " nmse " << e;
        for (int h = 0; h < s.hkv; ++h)
            ASSERT_EQ(sess->trace().g_positions[h], ref.global(h)) << what << ": G after decode at " << t;
    }
    EXPECT_EQ(bad, 0) << what;
    expect_state(" at the end");
}

// Chunks of 1, b - 1, b, 3b + 5 and longer than w, in an order that makes the compressions
// start at every kind of boundary; then decode across several compressions.
const std::vector<int> kVaried = {1, 31, 32, 101, 90, 1, 7, 32, 150, 31, 64};

TEST_P(ChunkedTest, MatchesStepByStepReferenceGroup1And4F32) {
    ChunkSetup s;
    s.chunks = kVaried, s.steps = 90;
    s.hq = 2, s.hkv = 2;
    run_against_reference(dev(), s, "group 1 f32:");
    s.hq = 8, s.hkv = 2;
    run_against_reference(dev(), s, "group 4 f32:");
}

TEST_P(ChunkedTest, MatchesStepByStepReferenceF16) {
    ChunkSetup s;
    s.chunks = kVaried, s.steps = 70, s.kv = DType::f16, s.dim = 128, s.seed = 8;
    s.hq = 8, s.hkv = 2;
    run_against_reference(dev(), s, "group 4 f16:");
    s.hq = 3, s.hkv = 3, s.chunks = {150, 3, 96, 40};
    run_against_reference(dev(), s, "group 1 f16:");
}

TEST_P(ChunkedTest, MatchesStepByStepReferenceBf16) {
    ChunkSetup s;
    s.chunks = kVaried, s.steps = 40, s.kv = DType::bf16, s.dim = 64, s.seed = 9;
    s.hq = 4, s.hkv = 2;
    run_against_reference(dev(), s, "group 2 bf16:");
}

TEST_P(ChunkedTest, EveryKindAndSingleTokenChunks) {
    for (auto kind : method::all_synth_kinds()) {
        ChunkSetup s;
        s.kind = kind, s.hq = 2, s.hkv = 1, s.window = 40, s.block = 16, s.steps = 40;
        s.chunks = std::vector<int>(70, 1);  // token by token: a compression after each full block
        s.chunks.push_back(45);
        run_against_reference(dev(), s, std::string(method::synth_kind_name(kind)) + ":");
    }
}

// Identity 1: one chunk holding the whole prompt is dense attention (one-shot dense session).
TEST_P(ChunkedTest, OneChunkIsDense) {
    for (int P : {50, 64, 300}) {
        ChunkSetup s;
        const auto x = make_data(s, P);
        const auto prof = method::fixed_ratio_profile(params_of(s), {1, s.hq, s.hkv, s.dim}, 0.2);
        auto chunked = method::make_chunked_tca_session(dev(), {s.hq, s.hkv, s.dim}, params_of(s), prof.layer_p(0), P, P);
        auto dense = method::make_dense_session(dev(), {s.hq, s.hkv, s.dim}, P);
        const auto a = chunked->prefill(x.q, x.k, x.v), b = dense->prefill(x.q, x.k, x.v);
        EXPECT_LE(nmse(b.data, a.data), 1e-10) << "P = " << P;
        // The prompt is in full blocks past the window compressed, the rest kept uncompressed.
        const int m = P > s.window ? (P - s.window) / s.block : 0;
        EXPECT_EQ(chunked->account().pending + chunked->account().ring, P - m * s.block) << "P = " << P;
    }
}

// Identity 2: P - w a multiple of b: G is exactly the one-shot prefill selection.
TEST_P(ChunkedTest, WholePromptChunkSelectsLikeOneShotPrefill) {
    for (auto kind : {method::SynthKind::mix, method::SynthKind::random}) {
        ChunkSetup s;
        s.kind = kind, s.hq = 8, s.hkv = 4;
        const int P = s.window + 7 * s.block;
        const auto x = make_data(s, P);
        const auto prof = method::fixed_ratio_profile(params_of(s), {1, s.hq, s.hkv, s.dim}, 0.3);
        auto chunked = method::make_chunked_tca_session(dev(), {s.hq, s.hkv, s.dim}, params_of(s), prof.layer_p(0), P, P);
        auto one_shot = method::make_tca_session(dev(), {s.hq, s.hkv, s.dim}, params_of(s), prof.layer_p(0), P);
        chunked->prefill(x.q, x.k, x.v);
        one_shot->prefill(x.q, x.k, x.v);
        EXPECT_EQ(chunked->trace().g_positions, one_shot->trace().prefill_kept) << method::synth_kind_name(kind);
        EXPECT_EQ(chunked->account().global, one_shot->account().global);
        EXPECT_EQ(chunked->account().ring, s.window);
        EXPECT_EQ(chunked->account().pending, 0);
    }
}

// Dense caches take chunks too: the same outputs as one dense prefill, then the same decode.
TEST_P(ChunkedTest, DenseChunksMatchOneShotDense) {
    ChunkSetup s;
    const std::vector<int> chunks = {1, 31, 100, 64, 5};
    const int P = std::accumulate(chunks.begin(), chunks.end(), 0), steps = 10;
    const auto x = make_data(s, P + steps);
    auto chunked = method::make_chunked_dense_session(dev(), {s.hq, s.hkv, s.dim}, P + steps, 100);
    auto dense = method::make_dense_session(dev(), {s.hq, s.hkv, s.dim}, P + steps);
    const auto whole = dense->prefill(rows(x.q, 0, P), rows(x.k, 0, P), rows(x.v, 0, P));
    int pos = 0;
    for (int c : chunks) {
        const auto o = chunked->prefill(rows(x.q, pos, c), rows(x.k, pos, c), rows(x.v, pos, c));
        std::vector<float> want;
        for (int h = 0; h < s.hq; ++h) want.insert(want.end(), whole.row(h, pos), whole.row(h, pos + c));
        EXPECT_LE(nmse(want, o.data), 1e-10) << "chunk at " << pos;
        pos += c;
        EXPECT_EQ(chunked->account().peak_tokens, int64_t(pos) * s.hkv);
    }
    for (int t = P; t < P + steps; ++t) {
        const auto a = chunked->decode(flat_row(x.q, t).data(), flat_row(x.k, t).data(), flat_row(x.v, t).data());
        const auto b = dense->decode(flat_row(x.q, t).data(), flat_row(x.k, t).data(), flat_row(x.v, t).data());
        EXPECT_LE(nmse(b, a), 1e-10) << "decode at " << t;
    }
}

// Refused calls change nothing: the session continues exactly as if they had not been made.
TEST_P(ChunkedTest, RefusedChunksChangeNothing) {
    ChunkSetup s;
    s.chunks = {40, 100, 20};
    const int total = 170;
    const auto x = make_data(s, total + 10);  // rows past max_tokens to offer
    const auto prof = method::fixed_ratio_profile(params_of(s), {1, s.hq, s.hkv, s.dim}, 0.3);
    auto sess = method::make_chunked_tca_session(dev(), {s.hq, s.hkv, s.dim}, params_of(s), prof.layer_p(0), total, 100);
    auto expect_refused = [&](auto&& call, const char* what) {
        const auto before = sess->account();
        try {
            call();
            ADD_FAILURE() << what << ": accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), TCA_ERROR_INVALID_ARGUMENT) << what << ": " << e.what();
        }
        EXPECT_EQ(sess->account().tokens_seen, before.tokens_seen) << what;
        EXPECT_EQ(sess->account().global, before.global) << what;
    };
    expect_refused([&] { sess->decode(flat_row(x.q, 0).data(), flat_row(x.k, 0).data(), flat_row(x.v, 0).data()); },
                   "decode before any chunk");
    sess->prefill(rows(x.q, 0, 40), rows(x.k, 0, 40), rows(x.v, 0, 40));
    expect_refused([&] { sess->prefill(rows(x.q, 40, 101), rows(x.k, 40, 101), rows(x.v, 40, 101)); }, "chunk > max_chunk");
    sess->prefill(rows(x.q, 40, 100), rows(x.k, 40, 100), rows(x.v, 40, 100));
    expect_refused([&] { sess->prefill(rows(x.q, 140, 31), rows(x.k, 140, 31), rows(x.v, 140, 31)); }, "past max_tokens");
    sess->decode(flat_row(x.q, 140).data(), flat_row(x.k, 140).data(), flat_row(x.v, 140).data());
    expect_refused([&] { sess->prefill(rows(x.q, 141, 2), rows(x.k, 141, 2), rows(x.v, 141, 2)); }, "chunk after decode");
}

std::vector<std::string> chunked_devices() {
    std::vector<std::string> d = devices_under_test();
    if (std::find(d.begin(), d.end(), "cpu") == d.end()) d.insert(d.begin(), "cpu");
    return d;
}

INSTANTIATE_TEST_SUITE_P(AllDevices, ChunkedTest, ::testing::ValuesIn(chunked_devices()),
                         [](const auto& info) { return safe_name(info.param); });

}  // namespace
}  // namespace tca::detail::test
