// tca calibrate's work (tools.h): spec Phase 1 on one layer's Q and K, the profile written atomically.
#include <fmt/core.h>

#include "io/atomic_file.h"
#include "method/calibrate.h"
#include "tools/host_tensors.h"
#include "tools/tools.h"

namespace tca::detail::tools {

void calibrate(const CalibrateRequest& r) {
    method::TcaParams params;
    params.block = r.block, params.window = r.window, params.tau = r.tau, params.alpha = r.alpha;
    method::validate_params(params);  // bad flags fail before any file or device work
    io::check_output_path(r.out);
    const auto q = load_tensor(r.q, "--q");
    const auto k = load_tensor(r.k, "--k");
    require(q.tokens == k.tokens && q.dim == k.dim, TCA_ERROR_SHAPE_MISMATCH,
            fmt::format("--q is [{}, {}, {}] but --k is [{}, {}, {}]: token count and head dim must match", q.heads,
                        q.tokens, q.dim, k.heads, k.tokens, k.dim));
    require(q.heads % k.heads == 0, TCA_ERROR_SHAPE_MISMATCH,
            fmt::format("{} query heads are not a multiple of {} KV heads", q.heads, k.heads));
    require(k.tokens > params.window, TCA_ERROR_INVALID_ARGUMENT,
            fmt::format("window {} is not shorter than the calibration sequence ({} tokens): nothing to select; "
                        "pass a smaller --window or a longer sequence",
                        params.window, k.tokens));
    auto dev = open_cli_device(r.device);
    const auto profile = method::calibrate(*dev, params, {q}, {k});
    const std::string text = method::profile_to_json(profile);
    io::write_file_atomic(r.out, text.data(), text.size());
    for (const auto& h : profile.heads)
        fmt::print(stderr, "tca: kv head {}: candidate {} (mean keep {:.1f}/{}), covered {:.4f}, kept {}/{} ({:.1f}%)\n",
                   h.kv_head, h.candidate, method::mean_keep(profile.keep_counts, h.p), params.block,
                   h.covered_mass, h.kept_tokens, h.global_tokens, 100 * h.keep_ratio);
}

}  // namespace tca::detail::tools
