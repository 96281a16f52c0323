// tca synth: writes a synthetic workload (q.npy, k.npy, v.npy) of a given kind, made by the public
// API's generators (tca.h, "synthetic workloads").
#include <filesystem>
#include <tuple>
#include <fmt/core.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "core/checked.h"
#include "io/atomic_file.h"
#include "io/npy.h"
#include "tca/tca.hpp"

namespace tca::detail::cli {

void register_synth(CLI::App& app) {
    auto* cmd = app.add_subcommand("synth", "Write a synthetic attention workload: q.npy [Hq, L, d], k.npy and v.npy [Hkv, L, d]");
    struct Opts {
        std::string kind, out_dir;
        int heads = 4, kv_heads = 2, len = 4096, dim = 64;
        uint64_t seed = 1;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("--kind", o->kind, "sink, local, uniform, bipolar, retrieval, random or mix")->required();
    cmd->add_option("--heads", o->heads, "query heads")->capture_default_str()->check(positive_int());
    cmd->add_option("--kv-heads", o->kv_heads, "KV heads (divides --heads)")->capture_default_str()->check(positive_int());
    cmd->add_option("--len", o->len, "tokens L")->capture_default_str()->check(positive_int());
    cmd->add_option("--dim", o->dim, "head dimension d")->capture_default_str()->check(positive_int());
    cmd->add_option("--seed", o->seed, "RNG seed (output is deterministic in it)")
        ->capture_default_str()
        ->check(integer_in(0, std::numeric_limits<uint64_t>::max()));
    cmd->add_option("--out-dir", o->out_dir, "directory for q.npy, k.npy, v.npy (created if missing)")->required();
    cmd->callback([o] {
        tca_synth_spec s{};
        s.struct_size = sizeof s;
        s.kind = o->kind.c_str();
        s.q_heads = o->heads, s.kv_heads = o->kv_heads, s.tokens = o->len, s.head_dim = o->dim, s.seed = o->seed;
        const char* kind = nullptr;
        tca::check(tca_synth_head_kind(&s, 0, &kind));  // the kind and the shape, before any allocation
        std::vector<float> q(checked_product({s.q_heads, s.tokens, s.head_dim}, "q"));
        std::vector<float> k(checked_product({s.kv_heads, s.tokens, s.head_dim}, "k")), v(k.size());
        tca::check(tca_synth_workload(&s, q.data(), q.size(), k.data(), k.size(), v.data(), v.size()));
        std::error_code ec;
        std::filesystem::create_directories(o->out_dir, ec);
        if (ec) throw Error(TCA_ERROR_IO, "cannot create " + o->out_dir + ": " + ec.message());
        io::OutputBatch out;
        const auto dir = std::filesystem::path(o->out_dir);
        for (auto [name, heads, t] : {std::tuple{"q.npy", s.q_heads, &q}, {"k.npy", s.kv_heads, &k}, {"v.npy", s.kv_heads, &v}}) {
            const auto bytes = io::encode_npy(io::make_f32({heads, s.tokens, s.head_dim}, *t));
            out.stage((dir / name).string(), bytes.data(), bytes.size());
        }
        out.commit();
        std::string kinds;
        for (int h = 0; h < s.kv_heads; ++h) {
            tca::check(tca_synth_head_kind(&s, h, &kind));
            kinds += std::string(kinds.empty() ? "" : ",") + kind;
        }
        fmt::print(stderr, "tca: wrote {}/{{q,k,v}}.npy: {} q heads, {} kv heads ({}), L {}, d {}, seed {}\n", o->out_dir,
                   s.q_heads, s.kv_heads, kinds, s.tokens, s.head_dim, s.seed);
    });
}

}  // namespace tca::detail::cli
