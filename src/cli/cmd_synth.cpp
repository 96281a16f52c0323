// tca synth: writes a synthetic workload (q.npy, k.npy, v.npy) of a given kind (method/synth.h).
#include <filesystem>
#include <fmt/core.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "io/atomic_file.h"
#include "method/synth.h"

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
        method::SynthSpec s;
        s.kind = method::parse_synth_kind(o->kind);
        s.q_heads = o->heads, s.kv_heads = o->kv_heads, s.len = o->len, s.dim = o->dim, s.seed = o->seed;
        const auto data = method::synthesize(s);
        std::error_code ec;
        std::filesystem::create_directories(o->out_dir, ec);
        if (ec) throw Error(TCA_ERROR_IO, "cannot create " + o->out_dir + ": " + ec.message());
        io::OutputBatch out;
        const auto dir = std::filesystem::path(o->out_dir);
        for (auto [name, t] : {std::pair{"q.npy", &data.q}, {"k.npy", &data.k}, {"v.npy", &data.v}}) {
            const auto bytes = tensor_npy_bytes(*t);
            out.stage((dir / name).string(), bytes.data(), bytes.size());
        }
        out.commit();
        std::string kinds;
        for (auto k : data.head_kinds) kinds += std::string(kinds.empty() ? "" : ",") + method::synth_kind_name(k);
        fmt::print(stderr, "tca: wrote {}/{{q,k,v}}.npy: {} q heads, {} kv heads ({}), L {}, d {}, seed {}\n", o->out_dir,
                   s.q_heads, s.kv_heads, kinds, s.len, s.dim, s.seed);
    });
}

}  // namespace tca::detail::cli
