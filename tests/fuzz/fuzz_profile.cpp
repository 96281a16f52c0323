// libFuzzer harness: the profile loader (JSON text -> validated Profile). An accepted profile has
// one head per (layer, KV head), each naming an existing candidate, and saves and loads again
// to the same profile.
#include <cstdint>
#include <string>

#include "fuzz_common.h"
#include "method/profile.h"

using namespace tca::detail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    method::Profile p;
    try {
        p = method::profile_from_json(text, "fuzz.json");
    } catch (const Error& e) {
        fuzz::rejected(e, {TCA_ERROR_IO});
        return 0;
    }
    fuzz::accepted();
    if (p.heads.size() != size_t(p.shape.layers) * size_t(p.shape.kv_heads)) fuzz::broken("head count != layers x KV heads");
    for (int l = 0; l < p.shape.layers; ++l) {
        const auto lp = p.layer_p(l);
        if (lp.size() != size_t(p.shape.kv_heads)) fuzz::broken("layer_p size");
        for (int h = 0; h < p.shape.kv_heads; ++h) {
            const auto& hd = p.head(l, h);
            if (hd.layer != l || hd.kv_head != h) fuzz::broken("head stored in the wrong slot");
            if (hd.candidate < 0 || size_t(hd.candidate) >= p.candidates.size()) fuzz::broken("head names no candidate");
        }
    }
    try {
        const method::Profile q = method::profile_from_json(method::profile_to_json(p), "round trip");
        if (q.heads.size() != p.heads.size() || q.candidates.size() != p.candidates.size() || q.params.block != p.params.block ||
            q.params.window != p.params.window || q.params.tau != p.params.tau)
            fuzz::broken("round trip changed the profile");
        for (size_t i = 0; i < p.heads.size(); ++i)
            if (q.heads[i].p != p.heads[i].p || q.heads[i].candidate != p.heads[i].candidate)
                fuzz::broken("round trip changed a head");
    } catch (const Error& e) {
        std::fprintf(stderr, "fuzz: a saved profile does not load: %s\n", e.what());
        fuzz::broken("round trip rejected");
    }
    return 0;
}
