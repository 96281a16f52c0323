// The tools layer: what the CLI's `attend` and `calibrate` sub-commands do, behind plain request
// structs. The CLI parses flags into these and calls them; it includes nothing of the library's
// internals (scripts/check-layers). This library (tca_tools, linked by the CLI only, never part
// of libtca) is the one place above the public API that still drives the method layer directly:
// host-tensor sessions, the cache account and the error bound, which the C API does not expose.
#pragma once

#include <string>

namespace tca::detail::tools {

// tca attend: TCA (with a profile) or dense attention over Q/K/V .npy files, optionally decoding
// the last decode_steps tokens one at a time; writes out (and selection, stats when given).
struct AttendRequest {
    std::string q, k, v, profile, device, out, selection, stats;
    bool dense = false;
    int decode_steps = 0;
    int chunk = 0;  // > 0: the prompt goes in chunks of this many tokens (a chunked cache)
    std::string kv_format = "f32";  // K/V storage: f32, f16, bf16
};
void attend(const AttendRequest& r);

// tca calibrate: spec Phase 1 on one layer's Q and K; writes the profile JSON to out.
struct CalibrateRequest {
    std::string q, k, out, device;
    int block = 0, window = 0;  // tca_params_init's defaults are what the CLI starts from
    double tau = 0, alpha = 0;
};
void calibrate(const CalibrateRequest& r);

}  // namespace tca::detail::tools
