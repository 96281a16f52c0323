// Profile JSON: round trip, and every kind of bad file rejected with a message that says why.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "method/candidates.h"
#include "method/profile.h"
#include "method_fixtures.h"

namespace tca::detail::method {
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

// Issue 11: get<int> converted silently (version 4294967297 loaded as 1, block 2^32 + 32 as 32,
// window 1e20 with undefined behaviour). Every integer must be a JSON integer in its range, and
// the message names the field.
TEST(Profile, IntegersMustBeIntegersInRange) {
    using nlohmann::json;
    const json good = json::parse(profile_to_json(small_profile()));
    struct Case {
        std::function<void(json&)> edit;
        const char* field;
    };
    const uint64_t two32 = uint64_t(1) << 32;
    const Case cases[] = {
        {[&](json& j) { j["version"] = two32 + 1; }, "'version'"},
        {[](json& j) { j["version"] = 1.5; }, "'version'"},
        {[](json& j) { j["version"] = 1.0; }, "'version'"},
        {[&](json& j) { j["model"]["layers"] = two32 + 1; }, "'layers'"},
        {[](json& j) { j["model"]["kv_heads"] = -2; }, "'kv_heads'"},
        {[](json& j) { j["model"]["head_dim"] = 32.5; }, "'head_dim'"},
        {[&](json& j) { j["params"]["block"] = two32 + 16; }, "'block'"},
        {[](json& j) { j["params"]["window"] = 1e20; }, "'window'"},
        {[](json& j) { j["params"]["window"] = -32; }, "'window'"},
        {[&](json& j) { j["params"]["n_lognormal"] = two32 + 14; }, "'n_lognormal'"},
        {[](json& j) { j["calibration_tokens"] = -1; }, "'calibration_tokens'"},
        {[](json& j) { j["calibration_tokens"] = 18446744073709551615ull; }, "'calibration_tokens'"},
        {[&](json& j) { j["candidates"]["keep_counts"][0] = two32 + 1; }, "'keep_counts[0]'"},
        {[&](json& j) { j["heads"][1]["layer"] = two32; }, "'layer'"},
        {[](json& j) { j["heads"][0]["candidate"] = 0.5; }, "'candidate'"},
        {[](json& j) { j["heads"][0]["kept_tokens"] = -5; }, "'kept_tokens'"},
        {[](json& j) { j["heads"][0]["global_tokens"] = 3e9; }, "'global_tokens'"},
    };
    for (const Case& c : cases) {
        json j = good;
        c.edit(j);
        const std::string msg = error_of(j.dump());
        EXPECT_NE(msg.find(c.field), std::string::npos) << c.field << " in " << j.dump().substr(0, 80) << ": '" << msg << "'";
    }
    // A head cannot keep more global tokens than there are.
    json j = good;
    j["heads"][0]["kept_tokens"] = int(j["heads"][0]["global_tokens"]) + 1;
    EXPECT_NE(error_of(j.dump()).find("global tokens"), std::string::npos);
}

// A number the JSON library cannot hold (1e400) threw its out_of_range, which the C API reported
// as TCA_ERROR_INTERNAL ("a bug in libtca"); it is a bad file.
TEST(Profile, NumberOverflowIsAnIoError) {
    nlohmann::json j = nlohmann::json::parse(profile_to_json(small_profile()));
    j["params"]["tau"] = 12345.0;
    for (const char* huge : {"1e400", "-1e400"}) {
        std::string text = j.dump();
        const size_t at = text.find("12345.0");
        ASSERT_NE(at, std::string::npos);
        text.replace(at, 7, huge);
        try {
            profile_from_json(text, "p.json");
            ADD_FAILURE() << huge << " loaded";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), TCA_ERROR_IO) << e.what();
            EXPECT_NE(std::string(e.what()).find("p.json"), std::string::npos) << e.what();
        } catch (const std::exception& e) {
            ADD_FAILURE() << huge << ": escaped as " << e.what();
        }
    }
}

// A directory, a FIFO or a device node given as a profile: TCA_ERROR_IO with a message naming the
// path, through the loader and the C API, at once (a FIFO used to block forever).
TEST(Profile, LoadRejectsPathsThatAreNotRegularFiles) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("tca_test_profile_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path fifo = dir / "fifo.json";
    fs::remove(fifo);
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const std::pair<std::string, std::string> cases[] = {
        {dir.string(), "is a directory"}, {fifo.string(), "is a FIFO"}, {"/dev/zero", "is a character device"}};
    for (const auto& [path, needle] : cases) {
        if (!fs::exists(path)) continue;
        try {
            load_profile(path);
            ADD_FAILURE() << path << " loaded";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), TCA_ERROR_IO) << path;
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
        tca_profile* p = nullptr;
        EXPECT_EQ(tca_profile_load(path.c_str(), &p), TCA_ERROR_IO) << path;
        EXPECT_EQ(p, nullptr);
        EXPECT_NE(std::string(tca_last_error()).find(path), std::string::npos) << tca_last_error();
    }
    // And a good profile still loads from a file.
    const fs::path good = dir / "good.json";
    std::ofstream(good) << profile_to_json(small_profile());
    EXPECT_EQ(load_profile(good.string()).heads.size(), 2u);
    fs::remove_all(dir);
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
}  // namespace tca::detail::method
