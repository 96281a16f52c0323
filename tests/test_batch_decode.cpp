// Many sequences at once (spec "Many sequences at once"; tca.h tca_cache_decode_batch): a batched
// decode step over caches of different lengths, modes and profiles returns exactly what separate
// tca_cache_decode calls return, bit for bit on every device, with caches in one pool or not; bad
// batches are refused and change no cache; pools account for their memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "harness.h"
#include "method/batch.h"
#include "method/cache_pool.h"
#include "method/device_util.h"
#include "method/profile.h"
#include "method/session.h"
#include "tca/tca.h"

using namespace tca::detail::test;

namespace {

constexpr int kHq = 4, kHkv = 2, kD = 64, kSteps = 40;

// One sequence: its prompt length, whether TCA (which profile) or dense, chunked or one-shot.
struct Seq {
    int prompt;
    int profile;  // -1 dense, else an index into the profiles
    int chunk;    // 0 one-shot, else the chunk length
};
const std::vector<Seq> kSeqs = {{100, 0, 0}, {45, 0, 0}, {70, -1, 0}, {90, 0, 32}, {120, 1, 0}, {64, -1, 16}};

// Rows [r0, r0 + n) of every head of a [heads, T, d] host array.
std::vector<float> rows(const std::vector<float>& x, int heads, int T, int r0, int n) {
    std::vector<float> r;
    for (int h = 0; h < heads; ++h)
        r.insert(r.end(), x.begin() + (size_t(h) * T + r0) * kD, x.begin() + (size_t(h) * T + r0 + n) * kD);
    return r;
}

struct Data {
    std::vector<std::vector<float>> q, k, v;  // per sequence, [heads, prompt + kSteps, d]
};

Data make_data() {
    Data d;
    for (size_t i = 0; i < kSeqs.size(); ++i) {
        const int T = kSeqs[i].prompt + kSteps;
        d.q.push_back(randn(size_t(kHq) * T * kD, uint32_t(100 + i)));
        d.k.push_back(randn(size_t(kHkv) * T * kD, uint32_t(200 + i)));
        d.v.push_back(randn(size_t(kHkv) * T * kD, uint32_t(300 + i)));
    }
    return d;
}

class Seqs {
public:
    explicit Seqs(const std::string& dev) {
        EXPECT_EQ(tca_context_create(dev.c_str(), &ctx), TCA_OK) << tca_last_error();
        tca_params p{sizeof(tca_params)};
        tca_params_init(&p);
        p.window = 32, p.block = 16;
        EXPECT_EQ(tca_profile_fixed(&p, 1, kHq, kHkv, kD, 0.3, &prof[0]), TCA_OK);
        p.window = 24, p.block = 8;
        EXPECT_EQ(tca_profile_fixed(&p, 1, kHq, kHkv, kD, 0.5, &prof[1]), TCA_OK);
    }
    ~Seqs() {
        for (auto* t : made) tca_tensor_destroy(t);
        for (auto* c : caches) tca_cache_destroy(c);
        tca_cache_pool_destroy(pool);
        for (auto* p : prof) tca_profile_destroy(p);
        tca_context_destroy(ctx);
    }
    tca_tensor* tensor(const std::vector<float>& x, int heads, int n) {
        tca_tensor* t = nullptr;
        EXPECT_EQ(tca_tensor_create(ctx, TCA_F32, heads, n, kD, &t), TCA_OK) << tca_last_error();
        EXPECT_EQ(tca_tensor_upload(t, x.data(), x.size() * 4), TCA_OK) << tca_last_error();
        made.push_back(t);
        return t;
    }
    // Caches for every sequence (in `pool` when pooled), prompts prefilled; returns the prompt outputs.
    std::vector<float> prefill(const Data& d, bool pooled) {
        if (pooled) { EXPECT_EQ(tca_cache_pool_create(ctx, 64u << 20, &pool), TCA_OK) << tca_last_error(); }
        std::vector<float> out;
        for (size_t i = 0; i < kSeqs.size(); ++i) {
            const Seq& s = kSeqs[i];
            const int T = s.prompt + kSteps;
            tca_cache_options o{sizeof o};
            tca_cache_options_init(&o);
            o.pool = pool;
            if (s.chunk) o.mode = TCA_CACHE_CHUNKED, o.max_chunk = s.chunk;
            tca_cache* c = nullptr;
            EXPECT_EQ(tca_cache_create_ex(ctx, s.profile < 0 ? nullptr : prof[s.profile], 0, kHq, kHkv, kD, TCA_F32, T, &o, &c),
                      TCA_OK)
                << tca_last_error();
            caches.push_back(c);
            const int step = s.chunk ? s.chunk : s.prompt;
            for (int r0 = 0; r0 < s.prompt; r0 += step) {
                const int n = std::min(step, s.prompt - r0);
                tca_tensor* o1 = tensor(std::vector<float>(size_t(kHq) * n * kD), kHq, n);
                EXPECT_EQ(tca_cache_prefill(c, tensor(rows(d.q[i], kHq, T, r0, n), kHq, n),
                                            tensor(rows(d.k[i], kHkv, T, r0, n), kHkv, n),
                                            tensor(rows(d.v[i], kHkv, T, r0, n), kHkv, n), o1),
                          TCA_OK)
                    << tca_last_error();
                std::vector<float> x(size_t(kHq) * n * kD);
                EXPECT_EQ(tca_tensor_download(o1, x.data(), x.size() * 4), TCA_OK);
                out.insert(out.end(), x.begin(), x.end());
            }
        }
        return out;
    }
    // Decode step s of every sequence: one batched call, or one call per cache.
    std::vector<float> step(const Data& d, int s, bool batched) {
        const int n = int(kSeqs.size());
        std::vector<float> qb, kb, vb, out;
        for (int i = 0; i < n; ++i) {
            const int T = kSeqs[size_t(i)].prompt + kSteps, t = kSeqs[size_t(i)].prompt + s;
            const auto qi = rows(d.q[size_t(i)], kHq, T, t, 1), ki = rows(d.k[size_t(i)], kHkv, T, t, 1),
                       vi = rows(d.v[size_t(i)], kHkv, T, t, 1);
            if (batched) {
                qb.insert(qb.end(), qi.begin(), qi.end());
                kb.insert(kb.end(), ki.begin(), ki.end());
                vb.insert(vb.end(), vi.begin(), vi.end());
                continue;
            }
            tca_tensor* o1 = tensor(std::vector<float>(size_t(kHq) * kD), kHq, 1);
            EXPECT_EQ(tca_cache_decode(caches[size_t(i)], tensor(qi, kHq, 1), tensor(ki, kHkv, 1), tensor(vi, kHkv, 1), o1), TCA_OK)
                << tca_last_error();
            std::vector<float> x(size_t(kHq) * kD);
            EXPECT_EQ(tca_tensor_download(o1, x.data(), x.size() * 4), TCA_OK);
            out.insert(out.end(), x.begin(), x.end());
        }
        if (batched) {
            tca_tensor* ob = tensor(std::vector<float>(size_t(n) * kHq * kD), n * kHq, 1);
            EXPECT_EQ(tca_cache_decode_batch(caches.data(), n, tensor(qb, n * kHq, 1), tensor(kb, n * kHkv, 1),
                                             tensor(vb, n * kHkv, 1), ob),
                      TCA_OK)
                << tca_last_error();
            out.resize(size_t(n) * kHq * kD);
            EXPECT_EQ(tca_tensor_download(ob, out.data(), out.size() * 4), TCA_OK);
        }
        return out;
    }
    // Every cache's size and kept positions, for comparing two runs' caches.
    std::vector<int64_t> state() {
        std::vector<int64_t> st;
        for (auto* c : caches) {
            uint64_t bytes = 0, dense = 0;
            int tokens = 0;
            EXPECT_EQ(tca_cache_size(c, &bytes, &dense, &tokens), TCA_OK);
            st.insert(st.end(), {int64_t(bytes), int64_t(dense), tokens});
            for (int h = 0; h < kHkv; ++h) {
                std::vector<int32_t> pos(1024);
                int count = 0;
                EXPECT_EQ(tca_cache_kept_positions(c, h, pos.data(), int(pos.size()), &count), TCA_OK);
                st.push_back(count);
                st.insert(st.end(), pos.begin(), pos.begin() + std::min<int>(count, 1024));
            }
        }
        return st;
    }
    tca_context* ctx = nullptr;
    tca_profile* prof[2] = {nullptr, nullptr};
    tca_cache_pool* pool = nullptr;
    std::vector<tca_cache*> caches;
    std::vector<tca_tensor*> made;
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

std::vector<std::string> all_devices() {
    std::vector<std::string> d = {"cpu"};
    for (const auto& x : devices_under_test()) d.push_back(x);
    return d;
}

}  // namespace

// Six sequences (TCA with two profiles, dense, chunked prompts; lengths 45..120) decode 40 steps,
// across compressions at different steps: batched in a pool, batched without one, and one call at
// a time give the same bits and the same caches.
TEST(BatchDecode, BitIdenticalToSeparateCallsOnEveryDevice) {
    const Data d = make_data();
    for (const auto& dev : all_devices()) {
        Seqs sep(dev), pooled(dev), own(dev);
        const auto p0 = sep.prefill(d, false);
        ASSERT_TRUE(same_bits(p0, pooled.prefill(d, true))) << dev;
        ASSERT_TRUE(same_bits(p0, own.prefill(d, false))) << dev;
        for (int s = 0; s < kSteps; ++s) {
            const auto ref = sep.step(d, s, false);
            ASSERT_TRUE(same_bits(ref, pooled.step(d, s, true))) << dev << " step " << s << " (pooled)";
            ASSERT_TRUE(same_bits(ref, own.step(d, s, true))) << dev << " step " << s << " (own memory)";
        }
        EXPECT_EQ(sep.state(), pooled.state()) << dev;
        EXPECT_EQ(sep.state(), own.state()) << dev;
        uint64_t used = 0, cap = 0;
        EXPECT_EQ(tca_cache_pool_usage(pooled.pool, &used, &cap), TCA_OK);
        EXPECT_GT(used, 0u);
        EXPECT_EQ(cap, 64u << 20);
    }
}

// A batch that cannot run (one cache full, another context's cache, a shape mismatch) changes no
// cache: the next good batch still matches separate calls.
TEST(BatchDecode, RefusedBatchesChangeNoCache) {
    const Data d = make_data();
    Seqs sep("cpu"), bat("cpu");
    sep.prefill(d, false);
    bat.prefill(d, true);
    for (int s = 0; s < 3; ++s) ASSERT_TRUE(same_bits(sep.step(d, s, false), bat.step(d, s, true)));
    const auto before = bat.state();
    // A cache that is full: its max_tokens is its prompt + 1, prefilled, decoded once.
    tca_cache* full = nullptr;
    ASSERT_EQ(tca_cache_create(bat.ctx, nullptr, 0, kHq, kHkv, kD, TCA_F32, 2, &full), TCA_OK);
    std::vector<float> one(size_t(kHq) * kD, 0.1f), kv(size_t(kHkv) * kD, 0.1f), two(size_t(kHq) * 2 * kD, 0.1f),
        kv2(size_t(kHkv) * 2 * kD, 0.1f);
    ASSERT_EQ(tca_cache_prefill(full, bat.tensor(two, kHq, 2), bat.tensor(kv2, kHkv, 2), bat.tensor(kv2, kHkv, 2),
                                bat.tensor(two, kHq, 2)),
              TCA_OK);
    std::vector<tca_cache*> cs = bat.caches;
    cs.push_back(full);
    const int n = int(cs.size());
    std::vector<float> qb(size_t(n) * kHq * kD, 0.2f), kb(size_t(n) * kHkv * kD, 0.2f);
    tca_tensor* ob = bat.tensor(qb, n * kHq, 1);
    EXPECT_EQ(tca_cache_decode_batch(cs.data(), n, bat.tensor(qb, n * kHq, 1), bat.tensor(kb, n * kHkv, 1),
                                     bat.tensor(kb, n * kHkv, 1), ob),
              TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tca_last_error()).find("capacity"), std::string::npos) << tca_last_error();
    // Another layer shape.
    tca_cache* other_shape = nullptr;
    ASSERT_EQ(tca_cache_create(bat.ctx, nullptr, 0, kHq, kHq, kD, TCA_F32, 8, &other_shape), TCA_OK);
    cs.back() = other_shape;
    EXPECT_EQ(tca_cache_decode_batch(cs.data(), n, bat.tensor(qb, n * kHq, 1), bat.tensor(kb, n * kHkv, 1),
                                     bat.tensor(kb, n * kHkv, 1), ob),
              TCA_ERROR_SHAPE_MISMATCH);
    EXPECT_EQ(bat.state(), before);
    for (int s = 3; s < 8; ++s) ASSERT_TRUE(same_bits(sep.step(d, s, false), bat.step(d, s, true))) << s;
    tca_cache_destroy(full);
    tca_cache_destroy(other_shape);
}

// A pool accounts for its caches' memory, refuses what does not fit, outlives its handle while
// caches use it, and a reset cache fits where it was.
TEST(BatchDecode, PoolsAccountRefuseAndOutliveTheirHandle) {
    tca_context* ctx = nullptr;
    ASSERT_EQ(tca_context_create("cpu", &ctx), TCA_OK);
    tca_cache_pool* pool = nullptr;
    ASSERT_EQ(tca_cache_pool_create(ctx, 1u << 20, &pool), TCA_OK);
    uint64_t used = 1, cap = 0;
    ASSERT_EQ(tca_cache_pool_usage(pool, &used, &cap), TCA_OK);
    EXPECT_EQ(used, 0u);
    EXPECT_EQ(cap, 1u << 20);
    tca_cache_options o{sizeof o};
    tca_cache_options_init(&o);
    o.pool = pool;
    tca_cache* a = nullptr;
    ASSERT_EQ(tca_cache_create_ex(ctx, nullptr, 0, kHq, kHkv, kD, TCA_F32, 256, &o, &a), TCA_OK) << tca_last_error();
    ASSERT_EQ(tca_cache_pool_usage(pool, &used, nullptr), TCA_OK);
    EXPECT_GE(used, uint64_t(2) * 256 * kHkv * kD * 4);  // K and V of 256 tokens
    const uint64_t one = used;
    // A cache bigger than what is left: out of memory, with the figures in the message.
    tca_cache* big = nullptr;
    EXPECT_EQ(tca_cache_create_ex(ctx, nullptr, 0, kHq, kHkv, kD, TCA_F32, 4096, &o, &big), TCA_ERROR_OUT_OF_MEMORY);
    EXPECT_NE(std::string(tca_last_error()).find("cache pool full"), std::string::npos) << tca_last_error();
    EXPECT_EQ(big, nullptr);
    ASSERT_EQ(tca_cache_pool_usage(pool, &used, nullptr), TCA_OK);
    EXPECT_EQ(used, one);  // the failed create gave back what it had taken
    // A pool of another context is refused.
    tca_context* other = nullptr;
    ASSERT_EQ(tca_context_create("cpu", &other), TCA_OK);
    EXPECT_EQ(tca_cache_create_ex(other, nullptr, 0, kHq, kHkv, kD, TCA_F32, 16, &o, &big), TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tca_last_error()).find("another context"), std::string::npos);
    tca_context_destroy(other);
    // Reset keeps the cache's footprint.
    EXPECT_EQ(tca_cache_reset(a), TCA_OK) << tca_last_error();
    ASSERT_EQ(tca_cache_pool_usage(pool, &used, nullptr), TCA_OK);
    EXPECT_EQ(used, one);
    // The handle goes first; the cache still works (its memory lives until it is destroyed).
    EXPECT_EQ(tca_cache_pool_destroy(pool), TCA_OK);
    std::vector<float> x(size_t(kHq) * 4 * kD, 0.5f), y(size_t(kHkv) * 4 * kD, 0.5f);
    tca_tensor *q = nullptr, *k = nullptr, *out = nullptr;
    ASSERT_EQ(tca_tensor_create(ctx, TCA_F32, kHq, 4, kD, &q), TCA_OK);
    ASSERT_EQ(tca_tensor_create(ctx, TCA_F32, kHkv, 4, kD, &k), TCA_OK);
    ASSERT_EQ(tca_tensor_create(ctx, TCA_F32, kHq, 4, kD, &out), TCA_OK);
    ASSERT_EQ(tca_tensor_upload(q, x.data(), x.size() * 4), TCA_OK);
    ASSERT_EQ(tca_tensor_upload(k, y.data(), y.size() * 4), TCA_OK);
    EXPECT_EQ(tca_cache_prefill(a, q, k, k, out), TCA_OK) << tca_last_error();
    EXPECT_EQ(tca_tensor_download(out, x.data(), x.size() * 4), TCA_OK);
    EXPECT_FLOAT_EQ(x[0], 0.5f);  // every value row is 0.5
    tca_cache_destroy(a);
    for (auto* t : {q, k, out}) tca_tensor_destroy(t);
    tca_context_destroy(ctx);
}

// On the GPU backends a batched step of caches in one pool runs one dispatch group per kernel
// family: one gather (the new tokens into the rings) and one decode for all eight sequences,
// where separate calls make eight of each; outputs stay bit-identical.
TEST(BatchDecode, PooledCachesRunOneDispatchPerKernel) {
    using namespace tca::detail;
    using namespace tca::detail::method;
    const int n = 8;
    TcaParams p;
    p.window = 32, p.block = 16;
    const Profile prof = fixed_ratio_profile(p, ModelShape{1, kHq, kHkv, kD}, 0.3);
    for (const auto& name : devices_under_test()) {
        Device& dev = device(name);
        CachePool pool(dev, 32u << 20);
        std::vector<std::unique_ptr<AttentionSession>> batched, single;
        for (int i = 0; i < n; ++i) {
            const int P = 60 + 7 * i;
            HostTensor q(kHq, P, kD), k(kHkv, P, kD), v(kHkv, P, kD);
            q.data = randn(q.data.size(), uint32_t(10 + i)), k.data = randn(k.data.size(), uint32_t(20 + i));
            v.data = randn(v.data.size(), uint32_t(30 + i));
            for (auto* set : {&batched, &single}) {
                Device& where = set == &batched ? static_cast<Device&>(pool) : dev;
                set->push_back(make_tca_session(where, {kHq, kHkv, kD}, p, prof.layer_p(0), P + 4));
                set->back()->set_step_trace(false);
                set->back()->prefill(q, k, v);
            }
        }
        const auto qh = randn(size_t(n) * kHq * kD, 7), kh = randn(size_t(n) * kHkv * kD, 8);
        HostTensor qhost(n * kHq, 1, kD), khost(n * kHkv, 1, kD);
        qhost.data = qh, khost.data = kh;
        const Tensor qb = upload_tensor(dev, qhost), kb = upload_tensor(dev, khost);
        const Tensor ob = alloc_tensor(dev, n * kHq, 1, kD), os = alloc_tensor(dev, n * kHq, 1, kD);
        auto rows = [](const Tensor& t, int i, int heads) {
            Tensor r = t;
            r.heads = heads, r.data.offset += size_t(i) * heads * t.head_stride * 4;
            return r;
        };
        std::vector<AttentionSession*> ss;
        std::vector<Tensor> qs, ks, obs;
        for (int i = 0; i < n; ++i) {
            ss.push_back(batched[size_t(i)].get());
            qs.push_back(rows(qb, i, kHq)), ks.push_back(rows(kb, i, kHkv)), obs.push_back(rows(ob, i, kHq));
        }
        dev.finish();
        dev.set_profiling(true);
        dev.take_timings();
        BatchDecode::run(dev, ss, qs, ks, ks, obs);
        auto count = [](const std::vector<OpTiming>& t, Op op) {
            return std::count_if(t.begin(), t.end(), [op](const OpTiming& x) { return x.op == op; });
        };
        const auto tb = dev.take_timings();
        for (int i = 0; i < n; ++i) single[size_t(i)]->decode_on_device(qs[size_t(i)], ks[size_t(i)], ks[size_t(i)], rows(os, i, kHq));
        const auto ts = dev.take_timings();
        dev.set_profiling(false);
        EXPECT_EQ(count(tb, Op::gather), 1) << name;
        EXPECT_EQ(count(tb, Op::decode), 1) << name;
        EXPECT_EQ(count(ts, Op::gather), n) << name;
        EXPECT_EQ(count(ts, Op::decode), n) << name;
        std::vector<float> a(size_t(n) * kHq * kD), b(a.size());
        dev.read(ob.data, a.data(), a.size() * 4);
        dev.read(os.data, b.data(), b.size() * 4);
        EXPECT_TRUE(same_bits(a, b)) << name;
    }
}
