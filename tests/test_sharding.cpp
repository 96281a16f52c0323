// Heads sharded across devices (issue 13 item 4): a calibrated profile sliced to each half of the
// KV heads (tca_profile_slice), each half's caches on its own context (opencl:0 and vulkan:0 where
// present), give exactly the unsharded cache's kept positions, prompt outputs and decode outputs for
// those heads on the same device, bit for bit, through prompt and decode steps with evictions.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <vector>

#include "harness.h"
#include "tca/tca.h"

namespace tca::detail::test {
namespace {

constexpr int kHq = 8, kHkv = 4, kG = kHq / kHkv, kP = 1024, kSteps = 40, kD = 64, kL = kP + kSteps;

struct Workload {
    std::vector<float> q, k, v;  // [heads, kL, d]
};

const Workload& workload() {
    static const Workload w = [] {
        Workload x;
        x.q.resize(size_t(kHq) * kL * kD), x.k.resize(size_t(kHkv) * kL * kD), x.v.resize(size_t(kHkv) * kL * kD);
        // "mix": a different structure per KV head (local, sink, retrieval, local), so calibration
        // gives the heads different budgets and a slice taken at the wrong heads shows.
        tca_synth_spec spec{sizeof(tca_synth_spec), "mix", kHq, kHkv, kL, kD, 11};
        EXPECT_EQ(tca_synth_workload(&spec, x.q.data(), x.q.size(), x.k.data(), x.k.size(), x.v.data(), x.v.size()),
                  TCA_OK)
            << tca_last_error();
        return x;
    }();
    return w;
}

// Rows [r0, r0 + n) of heads [h0, h0 + nh) of a [heads, kL, d] array, head-major.
std::vector<float> rows(const std::vector<float>& x, int h0, int nh, int r0, int n) {
    std::vector<float> out;
    for (int h = h0; h < h0 + nh; ++h)
        out.insert(out.end(), x.begin() + (size_t(h) * kL + r0) * kD, x.begin() + (size_t(h) * kL + r0 + n) * kD);
    return out;
}

struct HeadsRun {
    std::vector<float> prompt, decode;               // [q heads of the run, tokens, d]; decode step-major
    std::vector<std::vector<int32_t>> kept_prompt, kept_end;  // per KV head of the run
    uint64_t bytes = 0;
};

// The run of KV heads [kv0, kv0 + nkv) (and their query heads) on `dev` with `prof`, which must be
// made for exactly those heads; prompt and decode steps are separate calls so that two runners on
// two contexts can go step by step side by side, as a runtime's shards do.
class Runner {
public:
    Runner(const std::string& dev, const tca_profile* prof, int kv0, int nkv)
        : dev_(dev), kv0_(kv0), nkv_(nkv), hq_(nkv * kG), q0_(kv0 * kG) {
        EXPECT_EQ(tca_context_create(dev.c_str(), &ctx_), TCA_OK) << tca_last_error();
        if (ctx_) {
            EXPECT_EQ(tca_cache_create(ctx_, prof, 0, hq_, nkv_, kD, TCA_F32, kL, &cache_), TCA_OK) << tca_last_error();
        }
    }
    ~Runner() {
        for (auto* t : made_) tca_tensor_destroy(t);
        tca_cache_destroy(cache_);
        tca_context_destroy(ctx_);
    }
    void prompt() {
        const Workload& w = workload();
        tca_tensor* o = tensor(hq_, kP, {});
        EXPECT_EQ(tca_cache_prefill(cache_, tensor(hq_, kP, rows(w.q, q0_, hq_, 0, kP)),
                                    tensor(nkv_, kP, rows(w.k, kv0_, nkv_, 0, kP)),
                                    tensor(nkv_, kP, rows(w.v, kv0_, nkv_, 0, kP)), o),
                  TCA_OK)
            << dev_ << ": " << tca_last_error();
        r_.prompt.resize(size_t(hq_) * kP * kD);
        EXPECT_EQ(tca_tensor_download(o, r_.prompt.data(), r_.prompt.size() * 4), TCA_OK);
        r_.kept_prompt = kept();
    }
    void step(int s) {
        const Workload& w = workload();
        if (!o1_) o1_ = tensor(hq_, 1, {});
        EXPECT_EQ(tca_cache_decode(cache_, tensor(hq_, 1, rows(w.q, q0_, hq_, kP + s, 1)),
                                   tensor(nkv_, 1, rows(w.k, kv0_, nkv_, kP + s, 1)),
                                   tensor(nkv_, 1, rows(w.v, kv0_, nkv_, kP + s, 1)), o1_),
                  TCA_OK)
            << dev_ << ": " << tca_last_error();
        std::vector<float> out(size_t(hq_) * kD);
        EXPECT_EQ(tca_tensor_download(o1_, out.data(), out.size() * 4), TCA_OK);
        r_.decode.insert(r_.decode.end(), out.begin(), out.end());
    }
    HeadsRun finish() {
        r_.kept_end = kept();
        EXPECT_EQ(tca_cache_size(cache_, &r_.bytes, nullptr, nullptr), TCA_OK);
        return r_;
    }

private:
    tca_tensor* tensor(int heads, int n, const std::vector<float>& data) {
        tca_tensor* t = nullptr;
        EXPECT_EQ(tca_tensor_create(ctx_, TCA_F32, heads, n, kD, &t), TCA_OK) << tca_last_error();
        if (!data.empty()) {
            EXPECT_EQ(tca_tensor_upload(t, data.data(), data.size() * 4), TCA_OK) << tca_last_error();
        }
        made_.push_back(t);
        return t;
    }
    std::vector<std::vector<int32_t>> kept() {
        std::vector<std::vector<int32_t>> out(nkv_);
        for (int h = 0; h < nkv_; ++h) {
            int count = 0;
            EXPECT_EQ(tca_cache_kept_positions(cache_, h, nullptr, 0, &count), TCA_OK) << tca_last_error();
            out[h].resize(count);
            EXPECT_EQ(tca_cache_kept_positions(cache_, h, out[h].data(), count, &count), TCA_OK) << tca_last_error();
        }
        return out;
    }
    std::string dev_;
    int kv0_, nkv_, hq_, q0_;
    tca_context* ctx_ = nullptr;
    tca_cache* cache_ = nullptr;
    tca_tensor* o1_ = nullptr;
    std::vector<tca_tensor*> made_;
    HeadsRun r_;
};

HeadsRun run(const std::string& dev, const tca_profile* prof, int kv0, int nkv) {
    Runner r(dev, prof, kv0, nkv);
    r.prompt();
    for (int s = 0; s < kSteps; ++s) r.step(s);
    return r.finish();
}

// Query heads [q0, q0 + n) of a run over all heads, in the layout of a shard's run.
std::vector<float> heads_of(const std::vector<float>& x, int all_heads, int tokens_per_block, int blocks, int q0, int n) {
    std::vector<float> out;
    const size_t head = size_t(tokens_per_block) * kD;
    for (int b = 0; b < blocks; ++b)
        for (int h = q0; h < q0 + n; ++h) {
            const auto at = x.begin() + (size_t(b) * all_heads + h) * head;
            out.insert(out.end(), at, at + head);
        }
    return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

tca_profile* calibrated() {
    const Workload& w = workload();
    tca_context* ctx = nullptr;
    EXPECT_EQ(tca_context_create("cpu", &ctx), TCA_OK);
    tca_tensor *q = nullptr, *k = nullptr;
    EXPECT_EQ(tca_tensor_create(ctx, TCA_F32, kHq, kP, kD, &q), TCA_OK);
    EXPECT_EQ(tca_tensor_create(ctx, TCA_F32, kHkv, kP, kD, &k), TCA_OK);
    const auto qp = rows(w.q, 0, kHq, 0, kP), kp = rows(w.k, 0, kHkv, 0, kP);
    EXPECT_EQ(tca_tensor_upload(q, qp.data(), qp.size() * 4), TCA_OK);
    EXPECT_EQ(tca_tensor_upload(k, kp.data(), kp.size() * 4), TCA_OK);
    tca_params params{sizeof(tca_params)};
    tca_params_init(&params);
    params.window = 128, params.block = 32, params.tau = 0.9;
    tca_profile* prof = nullptr;
    const tca_tensor* qs[] = {q};
    const tca_tensor* ks[] = {k};
    EXPECT_EQ(tca_calibrate(ctx, &params, 1, qs, ks, &prof), TCA_OK) << tca_last_error();
    tca_tensor_destroy(q), tca_tensor_destroy(k);
    tca_context_destroy(ctx);
    return prof;
}

TEST(Sharding, HalfTheHeadsPerDeviceEqualTheUnshardedCacheBitForBit) {
    tca_profile* full = calibrated();
    ASSERT_NE(full, nullptr);
    std::set<double> ratios;
    for (int h = 0; h < kHkv; ++h) {
        double r = 0;
        ASSERT_EQ(tca_profile_keep_ratio(full, 0, h, &r), TCA_OK);
        ratios.insert(r);
    }
    ASSERT_GE(ratios.size(), 2u) << "the workload should give the heads different budgets";

    const int half = kHkv / 2;
    tca_profile* shard[2] = {nullptr, nullptr};
    for (int s = 0; s < 2; ++s) {
        ASSERT_EQ(tca_profile_slice(full, s * half, half, &shard[s]), TCA_OK) << tca_last_error();
        int layers = 0, hq = 0, hkv = 0, d = 0;
        ASSERT_EQ(tca_profile_shape(shard[s], &layers, &hq, &hkv, &d), TCA_OK);
        EXPECT_EQ(layers, 1);
        EXPECT_EQ(hq, half * kG);
        EXPECT_EQ(hkv, half);
        EXPECT_EQ(d, kD);
        for (int h = 0; h < half; ++h) {
            double a = 0, b = 0;
            ASSERT_EQ(tca_profile_keep_ratio(full, 0, s * half + h, &a), TCA_OK);
            ASSERT_EQ(tca_profile_keep_ratio(shard[s], 0, h, &b), TCA_OK);
            EXPECT_EQ(a, b) << "shard " << s << " head " << h;
        }
    }

    // Every device runs the whole model and each shard alone: the shard equals its heads of the whole.
    std::vector<std::string> devs = devices_under_test();
    devs.insert(devs.begin(), "cpu");
    std::map<std::string, HeadsRun> whole;
    auto expect_shard_of_whole = [&](const HeadsRun& part, const HeadsRun& all, int s, const std::string& where) {
        const int q0 = s * half * kG, nq = half * kG;
        EXPECT_TRUE(same_bits(part.prompt, heads_of(all.prompt, kHq, kP, 1, q0, nq))) << where << " shard " << s;
        EXPECT_TRUE(same_bits(part.decode, heads_of(all.decode, kHq, 1, kSteps, q0, nq))) << where << " shard " << s;
        for (int h = 0; h < half; ++h) {
            EXPECT_EQ(part.kept_prompt[h], all.kept_prompt[s * half + h]) << where << " shard " << s << " head " << h;
            EXPECT_EQ(part.kept_end[h], all.kept_end[s * half + h]) << where << " shard " << s << " head " << h;
        }
        EXPECT_FALSE(part.kept_prompt[0].empty()) << "the prompt must be longer than the window";
    };
    for (const std::string& dev : devs) {
        whole[dev] = run(dev, full, 0, kHkv);
        for (int s = 0; s < 2; ++s) expect_shard_of_whole(run(dev, shard[s], s * half, half), whole[dev], s, dev);
    }
    // The sharded placement: two contexts at once, opencl:0 and vulkan:0 where both are present,
    // each holding half the heads, stepped side by side.
    const std::string da = devs.size() > 2 ? devs[1] : "cpu", db = devs.size() > 2 ? devs[2] : devs.back();
    Runner ra_run(da, shard[0], 0, half), rb_run(db, shard[1], half, half);
    ra_run.prompt(), rb_run.prompt();
    for (int s = 0; s < kSteps; ++s) ra_run.step(s), rb_run.step(s);
    const HeadsRun ra = ra_run.finish(), rb = rb_run.finish();
    expect_shard_of_whole(ra, whole[da], 0, da + " beside " + db);
    expect_shard_of_whole(rb, whole[db], 1, db + " beside " + da);
    EXPECT_EQ(ra.bytes + rb.bytes, whole[da].bytes) << "the shards' caches hold what the whole one does";

    // A slice of a slice is the slice of the whole.
    tca_profile* inner = nullptr;
    ASSERT_EQ(tca_profile_slice(shard[1], 1, 1, &inner), TCA_OK);
    double a = 0, b = 0;
    ASSERT_EQ(tca_profile_keep_ratio(inner, 0, 0, &a), TCA_OK);
    ASSERT_EQ(tca_profile_keep_ratio(full, 0, kHkv - 1, &b), TCA_OK);
    EXPECT_EQ(a, b);
    // The shard's profile refuses the full model's tensors (its shape is the shard's).
    tca_context* ctx = nullptr;
    ASSERT_EQ(tca_context_create("cpu", &ctx), TCA_OK);
    tca_cache* cache = nullptr;
    EXPECT_EQ(tca_cache_create(ctx, shard[0], 0, kHq, kHkv, kD, TCA_F32, kL, &cache), TCA_ERROR_SHAPE_MISMATCH);
    EXPECT_EQ(cache, nullptr);
    tca_context_destroy(ctx);
    for (tca_profile* p : {full, shard[0], shard[1], inner}) tca_profile_destroy(p);
}

TEST(Sharding, SlicedProfilesSaveAndLoadAsOrdinaryProfiles) {
    tca_params params{sizeof(tca_params)};
    tca_params_init(&params);
    params.window = 64, params.block = 16;
    tca_profile *full = nullptr, *shard = nullptr, *back = nullptr;
    ASSERT_EQ(tca_profile_fixed(&params, 3, 8, 4, 64, 0.3, &full), TCA_OK);
    ASSERT_EQ(tca_profile_slice(full, 1, 3, &shard), TCA_OK);
    const std::string path = ::testing::TempDir() + "tca_shard_profile.json";
    ASSERT_EQ(tca_profile_save(shard, path.c_str()), TCA_OK) << tca_last_error();
    ASSERT_EQ(tca_profile_load(path.c_str(), &back), TCA_OK) << tca_last_error();
    int layers = 0, hq = 0, hkv = 0, d = 0;
    ASSERT_EQ(tca_profile_shape(back, &layers, &hq, &hkv, &d), TCA_OK);
    EXPECT_EQ(layers, 3);
    EXPECT_EQ(hq, 6);
    EXPECT_EQ(hkv, 3);
    EXPECT_EQ(d, 64);
    for (int l = 0; l < 3; ++l)
        for (int h = 0; h < 3; ++h) {
            double x = 0, y = 0;
            ASSERT_EQ(tca_profile_keep_ratio(full, l, h + 1, &x), TCA_OK);
            ASSERT_EQ(tca_profile_keep_ratio(back, l, h, &y), TCA_OK);
            EXPECT_EQ(x, y);
        }
    // The shard remembers the whole model (decode plans for its heads); a shard that cannot fit
    // the model it names is refused on load.
    {
        std::ifstream in(path);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        EXPECT_NE(text.find("\"model_kv_heads\": 4"), std::string::npos) << text.substr(0, 400);
        const size_t at = text.find("\"kv_head_begin\": 1");
        ASSERT_NE(at, std::string::npos);
        text.replace(at, std::strlen("\"kv_head_begin\": 1"), "\"kv_head_begin\": 2");
        const std::string bad_path = ::testing::TempDir() + "tca_shard_profile_bad.json";
        std::ofstream(bad_path) << text;
        tca_profile* bad = nullptr;
        EXPECT_EQ(tca_profile_load(bad_path.c_str(), &bad), TCA_ERROR_IO);
        EXPECT_NE(std::string(tca_last_error()).find("shard"), std::string::npos) << tca_last_error();
        EXPECT_EQ(bad, nullptr);
        std::remove(bad_path.c_str());
    }
    // Bad ranges change nothing and hand back no profile.
    tca_profile* none = reinterpret_cast<tca_profile*>(&params);
    EXPECT_EQ(tca_profile_slice(full, 2, 3, &none), TCA_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(none, nullptr);
    EXPECT_NE(std::string(tca_last_error()).find("4 KV heads"), std::string::npos) << tca_last_error();
    std::remove(path.c_str());
    for (tca_profile* p : {full, shard, back}) tca_profile_destroy(p);
}

}  // namespace
}  // namespace tca::detail::test
