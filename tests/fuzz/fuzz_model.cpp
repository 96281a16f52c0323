// libFuzzer harness: the LM's model loader. The input is model.json, a NUL byte, then model.bin
// (JSON text holds no raw NUL, so the split is unambiguous; no NUL = an empty weights file).
// Both are written to a private directory and loaded as `tca lm` would. An accepted model has
// the config's layer count and no more parameters than the weights file holds.
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz_common.h"
#include "lm/model.h"

using namespace tca::detail;
namespace fs = std::filesystem;

namespace {

const fs::path& work_dir() {
    static const fs::path d = [] {
        const fs::path shm("/dev/shm");
        const fs::path base = fs::is_directory(shm) ? shm : fs::temp_directory_path();
        fs::path p = base / ("tca_fuzz_model_" + std::to_string(::getpid()));
        fs::create_directories(p);
        return p;
    }();
    return d;
}

void write(const fs::path& p, const uint8_t* data, size_t size) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), std::streamsize(size));
    if (!f) fuzz::broken("writing the input files failed");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
    const size_t json_size = nul ? size_t(nul - data) : size;
    const size_t bin_off = nul ? json_size + 1 : size;
    write(work_dir() / "model.json", data, json_size);
    write(work_dir() / "model.bin", data + bin_off, size - bin_off);
    try {
        const lm::Model m = lm::load_model((work_dir() / "model.json").string());
        fuzz::accepted();
        if (m.layers.size() != size_t(m.cfg.n_layers)) fuzz::broken("layer count != config");
        // The weights file named may be another file than model.bin (a path in the JSON), so the
        // bound is checked against what the loader itself verified: every tensor was present.
        if (lm::parameter_count(m) == 0) fuzz::broken("a model without parameters");
        if (m.output.in != m.cfg.dim || m.output.out != m.cfg.vocab) fuzz::broken("output shape != config");
    } catch (const Error& e) {
        fuzz::rejected(e, {TCA_ERROR_IO});
    }
    return 0;
}
