// Chunked caches through the C API (tca_cache_create_ex, TCA_CACHE_CHUNKED): chunks of any length
// up to max_chunk, then decode; every refused call (a chunk too long, past max_tokens, after
// decode; decode first; a second prompt on a one-shot cache) fails with its status and message
// and changes nothing; sizes, peak and kept positions; reset keeps the mode.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "harness.h"
#include "tca/tca.h"

namespace {

struct CApiChunked : ::testing::TestWithParam<std::string> {
    void SetUp() override {
        ASSERT_EQ(tca_context_create(GetParam().c_str(), &ctx), TCA_OK) << tca_last_error();
        tca_params p{sizeof(tca_params)};
        tca_params_init(&p);
        p.window = 16, p.block = 8;
        ASSERT_EQ(tca_profile_fixed(&p, 1, 4, 2, 32, 0.25, &prof), TCA_OK);
    }
    void TearDown() override {
        for (auto* t : tensors) tca_tensor_destroy(t);
        tca_profile_destroy(prof);
        tca_context_destroy(ctx);
    }
    tca_tensor* make(int h, int l, uint32_t seed) {
        tca_tensor* t = nullptr;
        EXPECT_EQ(tca_tensor_create(ctx, TCA_F32, h, l, 32, &t), TCA_OK);
        const auto x = tca::detail::test::randn(size_t(h) * l * 32, seed, 0.5f);
        EXPECT_EQ(tca_tensor_upload(t, x.data(), x.size() * 4), TCA_OK);
        tensors.push_back(t);
        return t;
    }
    tca_cache* chunked(const tca_profile* p, int max_tokens, int max_chunk) {
        tca_cache_options o{sizeof o};
        EXPECT_EQ(tca_cache_options_init(&o), TCA_OK);
        EXPECT_EQ(o.mode, TCA_CACHE_ONE_SHOT);
        o.mode = TCA_CACHE_CHUNKED, o.max_chunk = max_chunk;
        tca_cache* c = nullptr;
        EXPECT_EQ(tca_cache_create_ex(ctx, p, 0, 4, 2, 32, TCA_F32, max_tokens, &o, &c), TCA_OK) << tca_last_error();
        return c;
    }
    // Feeds a chunk of n tokens; returns the status.
    tca_status chunk(tca_cache* c, int n, uint32_t seed) {
        return tca_cache_prefill(c, make(4, n, seed), make(2, n, seed + 1), make(2, n, seed + 2), make(4, n, 0));
    }
    tca_status step(tca_cache* c, uint32_t seed) {
        return tca_cache_decode(c, make(4, 1, seed), make(2, 1, seed + 1), make(2, 1, seed + 2), make(4, 1, 0));
    }
    static int tokens(tca_cache* c) {
        int t = -1;
        EXPECT_EQ(tca_cache_size(c, nullptr, nullptr, &t), TCA_OK);
        return t;
    }
    static uint64_t held(tca_cache* c) {
        uint64_t b = 0;
        EXPECT_EQ(tca_cache_size(c, &b, nullptr, nullptr), TCA_OK);
        return b;
    }
    void expect_refused(tca_status s, const char* needle, tca_cache* c, int tokens_before, uint64_t held_before) {
        EXPECT_EQ(s, TCA_ERROR_INVALID_ARGUMENT);
        EXPECT_NE(std::string(tca_last_error()).find(needle), std::string::npos) << tca_last_error();
        EXPECT_EQ(tokens(c), tokens_before) << needle;
        EXPECT_EQ(held(c), held_before) << needle;
    }

    tca_context* ctx = nullptr;
    tca_profile* prof = nullptr;
    std::vector<tca_tensor*> tensors;
};

TEST_P(CApiChunked, ChunksThenDecodeAndEveryRefusal) {
    tca_cache* c = chunked(prof, 100, 20);
    const uint64_t row = 2 * 32 * 4;  // K + V bytes of one token of one KV head
    expect_refused(step(c, 1), "decode before", c, 0, 0);
    int seen = 0;
    uint64_t peak_bound = 0;
    for (int n : {1, 7, 8, 20, 13}) {
        ASSERT_EQ(chunk(c, n, 10 + seen), TCA_OK) << tca_last_error();
        seen += n;
        EXPECT_EQ(tokens(c), seen);
        std::vector<int32_t> pos(64);
        int kept[2] = {0, 0};
        for (int h = 0; h < 2; ++h) {
            ASSERT_EQ(tca_cache_kept_positions(c, h, pos.data(), 64, &kept[h]), TCA_OK);
            for (int i = 1; i < kept[h]; ++i) EXPECT_LT(pos[i - 1], pos[i]) << "ascending";
            if (kept[h] > 0) EXPECT_LT(pos[kept[h] - 1], seen - 16) << "G holds only tokens that left the window";
        }
        // |G| + the uncompressed tokens; never more than |G| + (b - 1) + w + chunk.
        EXPECT_LE(held(c), (kept[0] + kept[1] + 2 * (7 + 16 + n)) * row);
        peak_bound = std::max<uint64_t>(peak_bound, (kept[0] + kept[1] + 2 * (7 + 16 + n)) * row);
    }
    uint64_t peak = 0, dense = 0;
    ASSERT_EQ(tca_cache_peak_size(c, &peak, &dense), TCA_OK);
    EXPECT_GE(peak, held(c));
    EXPECT_EQ(dense, uint64_t(seen) * 2 * row);
    EXPECT_LT(peak, dense) << "chunked TCA bounds what the prompt holds";
    const uint64_t h0 = held(c);
    expect_refused(chunk(c, 21, 90), "max_chunk", c, seen, h0);
    ASSERT_EQ(step(c, 91), TCA_OK) << tca_last_error();
    {
        // held() first: arguments are evaluated in an unspecified order, and a successful call after
        // the refused one would replace tca_last_error().
        const uint64_t h = held(c);
        expect_refused(chunk(c, 2, 92), "decoding", c, seen + 1, h);
    }
    for (int i = 0; i < 30; ++i) ASSERT_EQ(step(c, 100 + 3 * i), TCA_OK) << tca_last_error();
    // Reset keeps the mode: chunks again, and a chunk past max_tokens is refused.
    ASSERT_EQ(tca_cache_reset(c), TCA_OK);
    for (int i = 0; i < 4; ++i) ASSERT_EQ(chunk(c, 20, 200 + 3 * i), TCA_OK) << tca_last_error();
    ASSERT_EQ(chunk(c, 19, 220), TCA_OK) << tca_last_error();
    {
        // held() first: arguments are evaluated in an unspecified order, and a successful call after
        // the refused one would replace tca_last_error().
        const uint64_t h = held(c);
        expect_refused(chunk(c, 2, 230), "max_tokens", c, 99, h);
    }
    ASSERT_EQ(chunk(c, 1, 240), TCA_OK) << tca_last_error();
    tca_cache_destroy(c);
}

TEST_P(CApiChunked, DenseChunkedCacheAndOneShotCaches) {
    tca_cache* d = chunked(nullptr, 64, 16);
    ASSERT_EQ(chunk(d, 16, 1), TCA_OK);
    ASSERT_EQ(chunk(d, 5, 2), TCA_OK);
    uint64_t peak = 0, dense = 0;
    ASSERT_EQ(tca_cache_peak_size(d, &peak, &dense), TCA_OK);
    EXPECT_EQ(peak, dense);
    EXPECT_EQ(held(d), dense);
    int n = -1;
    ASSERT_EQ(tca_cache_kept_positions(d, 0, nullptr, 0, &n), TCA_OK);
    EXPECT_EQ(n, 0) << "a dense cache selects nothing";
    tca_cache_destroy(d);
    // NULL options and mode one-shot: exactly tca_cache_create, a second prompt is refused.
    tca_cache_options o{sizeof o, TCA_CACHE_ONE_SHOT, 0};
    const tca_cache_options* opts[] = {nullptr, &o};
    for (const tca_cache_options* opt : opts) {
        tca_cache* c = nullptr;
        ASSERT_EQ(tca_cache_create_ex(ctx, prof, 0, 4, 2, 32, TCA_F32, 64, opt, &c), TCA_OK);
        ASSERT_EQ(chunk(c, 30, 3), TCA_OK);
        {
            // held() first: arguments are evaluated in an unspecified order, and a successful call after
            // the refused one would replace tca_last_error().
            const uint64_t h = held(c);
            expect_refused(chunk(c, 4, 4), "already holds a prompt", c, 30, h);
        }
        uint64_t p1 = 0;
        ASSERT_EQ(tca_cache_peak_size(c, &p1, nullptr), TCA_OK);
        EXPECT_EQ(p1, held(c)) << "a one-shot cache's peak is what it holds";
        tca_cache_destroy(c);
    }
}

std::vector<std::string> devices() {
    std::vector<std::string> d = tca::detail::test::devices_under_test();
    if (std::find(d.begin(), d.end(), "cpu") == d.end()) d.insert(d.begin(), "cpu");
    return d;
}

INSTANTIATE_TEST_SUITE_P(AllDevices, CApiChunked, ::testing::ValuesIn(devices()),
                         [](const auto& info) { return tca::detail::test::safe_name(info.param); });

}  // namespace
