// C API for synthetic workloads (tca.h, "synthetic workloads"): the generators of method/synth.h
// behind a versioned spec, so the CLI, the benchmark and users make the same data the same way.
#include <cstring>
#include <string>

#include "api/capi_guard.h"
#include "api/struct_size.h"
#include "core/checked.h"
#include "method/synth.h"

using namespace tca::detail;

namespace {

method::SynthSpec to_spec(const tca_synth_spec* in) {
    const tca_synth_spec s = api::read_struct(in, "spec");
    require(s.kind != nullptr, TCA_ERROR_INVALID_ARGUMENT, "spec->kind is null");
    method::SynthSpec out;
    out.kind = method::parse_synth_kind(s.kind);
    out.q_heads = s.q_heads, out.kv_heads = s.kv_heads, out.len = s.tokens, out.dim = s.head_dim, out.seed = s.seed;
    method::validate_synth_spec(out);
    return out;
}

void check_count(size_t count, int heads, const method::SynthSpec& s, const float* p, const char* what) {
    require(p != nullptr, TCA_ERROR_INVALID_ARGUMENT, std::string(what) + " is null");
    const size_t n = checked_product({heads, s.len, s.dim}, what);
    require(count == n, TCA_ERROR_SHAPE_MISMATCH,
            std::string(what) + "_count is " + std::to_string(count) + ", not the " + std::to_string(n) + " elements of [" +
                std::to_string(heads) + ", " + std::to_string(s.len) + ", " + std::to_string(s.dim) + "]");
}

}  // namespace

extern "C" {

TCA_API tca_status tca_synth_workload(const tca_synth_spec* spec, float* q, size_t q_count, float* k, size_t k_count,
                                      float* v, size_t v_count) {
    return api::guarded([&] {
        const method::SynthSpec s = to_spec(spec);
        // Every argument is checked before anything is generated or written.
        check_count(q_count, s.q_heads, s, q, "q");
        check_count(k_count, s.kv_heads, s, k, "k");
        check_count(v_count, s.kv_heads, s, v, "v");
        const method::SynthData d = method::synthesize(s);
        std::memcpy(q, d.q.data.data(), q_count * sizeof(float));
        std::memcpy(k, d.k.data.data(), k_count * sizeof(float));
        std::memcpy(v, d.v.data.data(), v_count * sizeof(float));
    });
}

TCA_API tca_status tca_synth_head_kind(const tca_synth_spec* spec, int kv_head, const char** kind) {
    return api::guarded([&] {
        const method::SynthSpec s = to_spec(spec);
        require(kind != nullptr, TCA_ERROR_INVALID_ARGUMENT, "kind is null");
        require(kv_head >= 0 && kv_head < s.kv_heads, TCA_ERROR_INVALID_ARGUMENT,
                "kv_head " + std::to_string(kv_head) + " is not in [0, " + std::to_string(s.kv_heads) + ")");
        *kind = method::synth_kind_name(method::synth_head_kind(s, kv_head));
    });
}

}  // extern "C"
