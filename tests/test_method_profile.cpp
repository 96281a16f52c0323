// Profile JSON: round trip, and every kind of bad file rejected with a message that says why.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "method/candidates.h"
#include "method/profile.h"
#include "method_fixtures.h"

namespace tca::method {
namespace {

const Profile& small_profile() {
    static const Profile p = [] {
        TcaParams params;
        params.block = 16, params.window = 32;
        return test::calibrated(SynthKind::mix, 4, 2, 200, 32, params, 61);
    }();
    return p;
}

std::string error_of(const std::string& text) {
    try {
        profile_from_json(text, "p.json");
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_IO) << e.what();
        return e.what();
    }
    return "";
}

TEST(Profile, RoundTrips) {
    const Profile& a = small_profile();
    const Profile b = profile_from_json(profile_to_json(a), "rt");
    EXPECT_EQ(b.shape.q_heads, 4);
    EXPECT_EQ(b.shape.kv_heads, 2);
    EXPECT_EQ(b.params.block, 16);
    EXPECT_EQ(b.params.window, 32);
    EXPECT_EQ(b.candidates.size(), a.candidates.size());
    ASSERT_EQ(b.heads.size(), 2u);
    for (int h = 0; h < 2; ++h) {
        EXPECT_EQ(b.head(0, h).candidate, a.head(0, h).candidate);
        EXPECT_EQ(b.head(0, h).p, a.head(0, h).p);
        EXPECT_EQ(b.head(0, h).kept_tokens, a.head(0, h).kept_tokens);
    }
}

TEST(Profile, RejectsBadFiles) {
    using nlohmann::json;
    const json good = json::parse(profile_to_json(small_profile()));
    auto with = [&](auto edit) {
        json j = good;
        edit(j);
        return error_of(j.dump());
    };
    EXPECT_NE(error_of("{not json").find("not valid JSON"), std::string::npos);
    EXPECT_NE(with([](json& j) { j["format"] = "other"; }).find("format"), std::string::npos);
    EXPECT_NE(with([](json& j) { j["version"] = 2; }).find("version 2"), std::string::npos);
    EXPECT_NE(with([](json& j) { j.erase("model"); }).find("layers"), std::string::npos);
    EXPECT_NE(with([](json& j) { j["params"]["block"] = 24; }).find("power of two"), std::string::npos);
    EXPECT_NE(with([](json& j) { j["params"]["tau"] = 1.5; }).find("tau"), std::string::npos);
    EXPECT_NE(with([](json& j) { j["heads"].erase(1); }).find("head entries"), std::string::npos);
    EXPECT_NE(with([](json& j) { j["heads"][1]["kv_head"] = 0; }).find("duplicate"), std::string::npos);
    EXPECT_NE(with([](json& j) { j["heads"][0]["candidate"] = 99; }).find("missing candidate"), std::string::npos);
    EXPECT_NE(with([](json& j) { j["heads"][0]["p"][0] = 0.5; }).find("does not match"), std::string::npos);
    EXPECT_NE(with([](json& j) { j["candidates"]["list"][0]["p"][0] = 2.0; }).find("sum"), std::string::npos);
    EXPECT_NE(with([](json& j) { j["heads"][0]["keep_ratio"] = "high"; }).find("wrong type"), std::string::npos);
}

TEST(Profile, ShapeCheck) {
    const Profile& p = small_profile();
    EXPECT_NO_THROW(check_profile_shape(p, 4, 2, 32));
    for (auto [hq, hkv, d] : {std::tuple{4, 1, 32}, {8, 2, 32}, {4, 2, 64}}) {
        try {
            check_profile_shape(p, hq, hkv, d);
            ADD_FAILURE() << "accepted another shape";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), TCA_ERROR_SHAPE_MISMATCH);
        }
    }
}

// A fixed budget is exact, not snapped to the calibration grid (where 0.25 and 0.35 are the same
// point at b = 128), and the profile that carries it saves and loads like a calibrated one.
TEST(Profile, FixedRatioIsExactAndRoundTrips) {
    TcaParams params;  // b = 128
    const ModelShape shape{2, 4, 2, 64};
    double previous = 0;
    for (double r : {0.02, 0.1, 0.25, 0.35, 0.5, 0.9}) {
        const Profile p = fixed_ratio_profile(params, shape, r);
        ASSERT_EQ(p.heads.size(), 4u);
        for (const auto& h : p.heads) {
            EXPECT_NEAR(h.keep_ratio, r, 1e-9) << r;
            EXPECT_NEAR(mean_keep(p.keep_counts, h.p) / params.block, r, 1e-9) << r;
        }
        EXPECT_GT(p.heads[0].keep_ratio, previous);
        previous = p.heads[0].keep_ratio;
        const Profile back = profile_from_json(profile_to_json(p), "fixed");
        EXPECT_EQ(back.head(1, 1).p, p.head(1, 1).p);
        EXPECT_EQ(back.head(1, 1).candidate, int(back.candidates.size()) - 1);
    }
    // Below one token per block (the floor) the sparsest reachable budget; 1 is the dense one.
    const Profile floor = fixed_ratio_profile(params, shape, 1e-4);
    EXPECT_NEAR(floor.heads[0].keep_ratio, 1.0 / params.block, 1e-6);
    const Profile dense = fixed_ratio_profile(params, shape, 1.0);
    EXPECT_DOUBLE_EQ(dense.heads[0].keep_ratio, 1.0);
    EXPECT_EQ(decode_keep(dense.keep_counts, dense.heads[0].p), params.block);
}

}  // namespace
}  // namespace tca::method
