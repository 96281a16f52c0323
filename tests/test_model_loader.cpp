// The LM's model loader (src/lm/model.cpp) against hostile files: a configuration that claims a
// huge model must fail at once, before anything is built from it; integers must be integers in
// range; every wrong type and every path that is not a regular file is TCA_ERROR_IO naming it.
// (tests/test_lm.cpp covers the ordinary broken files and the forward pass.)
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "lm/model.h"

namespace tca::detail {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path temp_dir(const std::string& name) {
    const fs::path d = fs::temp_directory_path() / ("tca_test_model_loader_" + std::to_string(::getpid())) / name;
    fs::create_directories(d);
    return d;
}

// The smallest valid model: D = 8, one layer, 2 query heads / 1 KV head of 4, F = 8. Weights are
// zero except a recognisable first element of tok_emb (half 1.0).
struct Small {
    json doc;
    std::vector<unsigned char> bin;
};

Small small_model() {
    const int D = 8, qd = 8, kvd = 4, F = 8;
    std::vector<std::pair<std::string, std::vector<int64_t>>> t = {{"tok_emb", {256, D}}};
    const std::string p = "layers.0.";
    t.push_back({p + "attn_norm", {D}});
    t.push_back({p + "wq", {qd, D}});
    t.push_back({p + "wk", {kvd, D}});
    t.push_back({p + "wv", {kvd, D}});
    t.push_back({p + "wo", {D, qd}});
    t.push_back({p + "ffn_norm", {D}});
    t.push_back({p + "w1", {F, D}});
    t.push_back({p + "w2", {D, F}});
    t.push_back({p + "w3", {F, D}});
    t.push_back({"norm", {D}});
    t.push_back({"output", {256, D}});
    Small m;
    json tensors = json::array();
    int64_t off = 0;
    for (const auto& [name, shape] : t) {
        tensors.push_back({{"name", name}, {"shape", shape}, {"offset", off}});
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        off += 2 * n;
    }
    m.bin.assign(size_t(off), 0);
    m.bin[1] = 0x3c;  // tok_emb[0] = 1.0
    m.doc = {{"format", "tca-lm"},
             {"version", 1},
             {"config",
              {{"vocab", 256},
               {"dim", D},
               {"n_layers", 1},
               {"n_heads", 2},
               {"n_kv_heads", 1},
               {"head_dim", 4},
               {"ffn_dim", F},
               {"norm_eps", 1e-5},
               {"rope_theta", 10000.0},
               {"train_context", 64}}},
             {"weights", "model.bin"},
             {"dtype", "f16"},
             {"tensors", tensors}};
    return m;
}

void write_file(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }
void write_file(const fs::path& p, const std::vector<unsigned char>& b) {
    std::ofstream f(p, std::ios::binary);
    f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

struct Outcome {
    bool loaded = false;
    tca_status code = TCA_OK;
    std::string message;
    double seconds = 0;
};

// Writes the model (after `edit`) into its own directory and loads it.
Outcome load_edited(const std::string& name, const std::function<void(Small&)>& edit) {
    Small m = small_model();
    if (edit) edit(m);
    const fs::path dir = temp_dir(name);
    write_file(dir / "model.json", m.doc.dump());
    write_file(dir / "model.bin", m.bin);
    Outcome o;
    const auto t0 = std::chrono::steady_clock::now();
    try {
        lm::load_model((dir / "model.json").string());
        o.loaded = true;
    } catch (const Error& e) {
        o.code = e.code();
        o.message = e.what();
    } catch (const std::exception& e) {  // anything else is the bug this file guards against
        o.code = TCA_ERROR_INTERNAL;
        o.message = std::string("escaped as std::exception: ") + e.what();
    }
    o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fs::remove_all(dir);
    return o;
}

void expect_io(const std::string& name, const std::function<void(Small&)>& edit, const std::string& needle) {
    const Outcome o = load_edited(name, edit);
    EXPECT_FALSE(o.loaded) << name << ": loaded";
    EXPECT_EQ(o.code, TCA_ERROR_IO) << name << ": " << o.message;
    EXPECT_NE(o.message.find(needle), std::string::npos) << name << ": '" << o.message << "' lacks '" << needle << "'";
}

TEST(ModelLoader, SmallModelLoads) {
    const Outcome o = load_edited("good", nullptr);
    ASSERT_TRUE(o.loaded) << o.message;
    Small m = small_model();
    const fs::path dir = temp_dir("good2");
    write_file(dir / "model.json", m.doc.dump());
    write_file(dir / "model.bin", m.bin);
    const lm::Model model = lm::load_model((dir / "model.json").string());
    EXPECT_EQ(model.cfg.n_layers, 1);
    EXPECT_EQ(model.tok_emb[0], 1.0f);
    EXPECT_EQ(lm::parameter_count(model), m.bin.size() / 2);
    fs::remove_all(dir);
}

// Issue 11: a 5 KB model.json with "n_layers": 16777216 built millions of tensor names before
// looking at the weights; memory passed 4 GB and the run never ended. Now the configuration is
// checked first, in range and against the weights file's size.
TEST(ModelLoader, HugeConfigurationFailsFast) {
    struct Case {
        const char* key;
        int64_t value;
        const char* needle;
    };
    const Case cases[] = {
        {"n_layers", 16777216, "config.n_layers must be an integer in [1, "},
        {"n_layers", 4000, "needs"},  // in range, but the 9 KB weights file cannot hold it
        {"dim", 65536, "needs"},
        {"dim", int64_t(1) << 40, "config.dim must be an integer"},
        {"ffn_dim", 1 << 20, "needs"},
        {"head_dim", 1024, "needs"},
        {"n_heads", 1 << 24, "config.n_heads must be an integer"},
        {"train_context", int64_t(1) << 31, "config.train_context must be an integer"},
    };
    for (const Case& c : cases) {
        const std::string name = fmt::format("{}_{}", c.key, c.value);
        const Outcome o = load_edited(name, [&](Small& m) {
            m.doc["config"][c.key] = c.value;
            if (std::string(c.key) == "n_heads") m.doc["config"]["n_kv_heads"] = 1;
        });
        EXPECT_FALSE(o.loaded) << name;
        EXPECT_EQ(o.code, TCA_ERROR_IO) << name << ": " << o.message;
        EXPECT_NE(o.message.find(c.needle), std::string::npos) << name << ": " << o.message;
        EXPECT_LT(o.seconds, 2.0) << name << " must fail before building anything";
    }
    // The size message says what the config needs and what the file has.
    const Outcome o = load_edited("layers_size", [](Small& m) { m.doc["config"]["n_layers"] = 4000; });
    EXPECT_NE(o.message.find("model.bin: is 9008 bytes"), std::string::npos) << o.message;
}

// get<int> would have turned 4294967297 into 1 and 1.5 into 1; a config number far outside float
// (norm_eps 1e300) converted with undefined behaviour.
TEST(ModelLoader, IntegersMustBeIntegersInRange) {
    const uint64_t two32 = uint64_t(1) << 32;
    expect_io("layers_wrap", [&](Small& m) { m.doc["config"]["n_layers"] = two32 + 1; }, "config.n_layers");
    expect_io("layers_float", [](Small& m) { m.doc["config"]["n_layers"] = 1.5; }, "config.n_layers");
    expect_io("dim_float", [](Small& m) { m.doc["config"]["dim"] = 8.0; }, "config.dim");
    expect_io("dim_negative", [](Small& m) { m.doc["config"]["dim"] = -8; }, "config.dim");
    expect_io("kv_huge", [](Small& m) { m.doc["config"]["n_kv_heads"] = 18446744073709551615ull; }, "config.n_kv_heads");
    expect_io("version_float", [](Small& m) { m.doc["version"] = 1.0; }, "unsupported version 1.0");
    expect_io("version_wrap", [&](Small& m) { m.doc["version"] = two32 + 1; }, "unsupported version 4294967297");
    expect_io("eps_huge", [](Small& m) { m.doc["config"]["norm_eps"] = 1e300; }, "config.norm_eps");
    expect_io("theta_huge", [](Small& m) { m.doc["config"]["rope_theta"] = 1e300; }, "config.rope_theta");
    // An offset near 2^63 made the error message's end offset overflow (signed, undefined).
    expect_io("offset_huge", [](Small& m) { m.doc["tensors"][0]["offset"] = 9223372036854775806ll; }, "ends at byte");
    expect_io("offset_unsigned", [](Small& m) { m.doc["tensors"][0]["offset"] = 18446744073709551614ull; }, "bad offset");
    expect_io("offset_float", [](Small& m) { m.doc["tensors"][0]["offset"] = 0.0; }, "lacks name, shape or offset");
}

// A field of the wrong JSON type made nlohmann throw its type_error out of the loader.
TEST(ModelLoader, WrongTypesAreIoErrors) {
    expect_io("format_number", [](Small& m) { m.doc["format"] = 5; }, "not a tca-lm model file");
    expect_io("dtype_number", [](Small& m) { m.doc["dtype"] = 16; }, "\"dtype\" must be \"f16\"");
    expect_io("dtype_missing", [](Small& m) { m.doc.erase("dtype"); }, "\"dtype\" must be \"f16\"");
    expect_io("config_array", [](Small& m) { m.doc["config"] = json::array(); }, "\"config\" object is missing");
    expect_io("weights_number", [](Small& m) { m.doc["weights"] = 3; }, "\"weights\"");
    expect_io("tensors_object", [](Small& m) { m.doc["tensors"] = json::object(); }, "\"tensors\" list is missing");
    expect_io("shape_string", [](Small& m) { m.doc["tensors"][0]["shape"] = "256x8"; }, "lacks name, shape or offset");
    expect_io("name_number", [](Small& m) { m.doc["tensors"][0]["name"] = 0; }, "lacks name, shape or offset");
}

// A number the JSON library cannot hold is a bad file, not an exception of the library.
TEST(ModelLoader, NumberOverflowIsAnIoError) {
    const fs::path dir = temp_dir("overflow");
    Small m = small_model();
    m.doc["config"]["rope_theta"] = 12345.0;
    std::string text = m.doc.dump();
    text.replace(text.find("12345.0"), 7, "1e400");
    write_file(dir / "model.json", text);
    write_file(dir / "model.bin", m.bin);
    try {
        lm::load_model((dir / "model.json").string());
        ADD_FAILURE() << "loaded";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_IO);
        EXPECT_NE(std::string(e.what()).find("model.json"), std::string::npos) << e.what();
    }
    fs::remove_all(dir);
}

// A directory, FIFO or device as model.json or as the weights: TCA_ERROR_IO at once. /dev/zero
// as the weights was read until memory ran out; a FIFO blocked forever.
TEST(ModelLoader, RejectsPathsThatAreNotRegularFiles) {
    const fs::path dir = temp_dir("special");
    const fs::path fifo = dir / "fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    for (const auto& [path, needle] : std::vector<std::pair<std::string, std::string>>{
             {dir.string(), "is a directory"}, {fifo.string(), "is a FIFO"}, {"/dev/zero", "is a character device"}}) {
        if (!fs::exists(path)) continue;
        try {
            lm::load_model(path);
            ADD_FAILURE() << path << " loaded as model.json";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), TCA_ERROR_IO) << e.what();
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    }
    expect_io("weights_dir", [](Small& m) { m.doc["weights"] = "."; }, "is a directory");
    expect_io("weights_zero", [](Small& m) { m.doc["weights"] = "/dev/zero"; }, "/dev/zero: is a character device");
    expect_io("weights_fifo", [&](Small& m) { m.doc["weights"] = fifo.string(); }, "is a FIFO");
    fs::remove_all(dir);
}

// A weights file far larger than the config needs (here 8 GiB, sparse) is not read whole: each
// tensor is read where it lies.
TEST(ModelLoader, ReadsOnlyTheTensorsOfALargeWeightsFile) {
    const fs::path dir = temp_dir("large");
    const Small m = small_model();
    write_file(dir / "model.json", m.doc.dump());
    write_file(dir / "model.bin", m.bin);
    fs::resize_file(dir / "model.bin", uint64_t(8) << 30);
    const auto t0 = std::chrono::steady_clock::now();
    const lm::Model model = lm::load_model((dir / "model.json").string());
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
    EXPECT_EQ(model.tok_emb[0], 1.0f);
    fs::remove_all(dir);
}

}  // namespace
}  // namespace tca::detail
