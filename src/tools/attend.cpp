// tca attend's work (tools.h): load, run a session over prompt + decode steps, write the files.
#include <fmt/core.h>

#include "core/dtype.h"
#include "io/atomic_file.h"
#include "io/npy.h"
#include "method/bound.h"
#include "method/chunked_session.h"
#include "method/profile.h"
#include "method/session.h"
#include "tools/attend_report.h"
#include "tools/host_tensors.h"
#include "tools/tools.h"

namespace tca::detail::tools {

namespace {

// Row t of every head, head-major: what a decode step takes.
std::vector<float> rows_at(const method::HostTensor& x, int t) {
    std::vector<float> r(size_t(x.heads) * x.dim);
    for (int h = 0; h < x.heads; ++h) std::copy(x.row(h, t), x.row(h, t) + x.dim, r.begin() + size_t(h) * x.dim);
    return r;
}

// The first P tokens in chunks of `chunk` (the last may be shorter); returns o [Hq, P, d].
method::HostTensor prefill_in_chunks(method::AttentionSession& s, const method::HostTensor& q, const method::HostTensor& k,
                                     const method::HostTensor& v, int P, int chunk) {
    method::HostTensor out(q.heads, P, q.dim);
    for (int s0 = 0; s0 < P; s0 += chunk) {
        const int c = std::min(chunk, P - s0);
        const auto o = s.prefill(slice_tokens(q, s0, c), slice_tokens(k, s0, c), slice_tokens(v, s0, c));
        for (int h = 0; h < q.heads; ++h) std::copy(o.row(h, 0), o.row(h, 0) + size_t(c) * q.dim, out.row(h, s0));
    }
    return out;
}

}  // namespace

void attend(const AttendRequest& o) {
    for (const auto* path : {&o.out, &o.selection, &o.stats})  // a bad output path fails before the work
        if (!path->empty()) io::check_output_path(*path);
    const auto q = load_tensor(o.q, "--q");
    auto k = load_tensor(o.k, "--k");
    auto v = load_tensor(o.v, "--v");
    require(k.heads == v.heads && k.tokens == v.tokens && k.dim == v.dim, TCA_ERROR_SHAPE_MISMATCH,
            fmt::format("--k [{}, {}, {}] and --v [{}, {}, {}] differ", k.heads, k.tokens, k.dim, v.heads, v.tokens, v.dim));
    require(q.tokens == k.tokens && q.dim == k.dim, TCA_ERROR_SHAPE_MISMATCH,
            fmt::format("--q [{}, {}, {}] does not match --k [{}, {}, {}] in tokens and head dim", q.heads, q.tokens, q.dim,
                        k.heads, k.tokens, k.dim));
    require(q.heads % k.heads == 0, TCA_ERROR_SHAPE_MISMATCH,
            fmt::format("{} query heads are not a multiple of {} KV heads", q.heads, k.heads));
    const int L = q.tokens, N = o.decode_steps;
    require(N >= 0 && N < L, TCA_ERROR_INVALID_ARGUMENT,
            fmt::format("--decode-steps {} must be in [0, {}): at least one prompt token", N, L));
    const int P = L - N;

    method::Profile profile;
    if (!o.dense) {
        profile = method::load_profile(o.profile);
        method::check_profile_shape(profile, q.heads, k.heads, q.dim);
    }
    auto dev = open_cli_device(o.device);
    const method::AttnShape shape{q.heads, k.heads, q.dim};
    // K/V stored in the asked format: the .npy's f32 values are converted by the spec's rule as
    // they go to the device (AttentionSession::prefill / decode).
    const DType kv = o.kv_format == "f16" ? DType::f16 : o.kv_format == "bf16" ? DType::bf16 : DType::f32;
    // The host copies take the stored values too, so the report's dense reference and bound see
    // exactly what the device attends (the format's own error is not TCA's).
    if (kv != DType::f32)
        for (auto* x : {&k, &v})
            for (float& e : x->data) e = float_from_16bit(kv, float_to_16bit(kv, e));
    std::unique_ptr<method::AttentionSession> session;
    if (o.chunk > 0)
        session = o.dense ? method::make_chunked_dense_session(*dev, shape, L, o.chunk, kv)
                          : method::make_chunked_tca_session(*dev, shape, profile.params, profile.layer_p(0), L, o.chunk, kv);
    else
        session = o.dense ? method::make_dense_session(*dev, shape, L, kv)
                          : method::make_tca_session(*dev, shape, profile.params, profile.layer_p(0), L, kv);

    method::HostTensor out = o.chunk > 0 ? prefill_in_chunks(*session, q, k, v, P, o.chunk)
                                         : session->prefill(slice_tokens(q, 0, P), slice_tokens(k, 0, P), slice_tokens(v, 0, P));
    out.tokens = L;
    out.data.resize(method::HostTensor::elements(q.heads, L, q.dim));
    // prefill() returned [Hq, P, d]; spread its heads out to make room for the decode rows.
    for (int h = q.heads - 1; h > 0; --h)
        std::copy_backward(out.data.begin() + size_t(h) * P * q.dim, out.data.begin() + size_t(h + 1) * P * q.dim,
                           out.data.begin() + (size_t(h) * L + P) * q.dim);
    for (int t = P; t < L; ++t) {
        const auto o_t = session->decode(rows_at(q, t).data(), rows_at(k, t).data(), rows_at(v, t).data());
        for (int h = 0; h < q.heads; ++h) std::copy(o_t.begin() + size_t(h) * q.dim, o_t.begin() + size_t(h + 1) * q.dim, out.row(h, t));
    }
    const auto& acc = session->account();
    const auto trace = session->trace();

    io::OutputBatch files;
    const auto o_bytes = tensor_npy_bytes(out);
    files.stage(o.out, o_bytes.data(), o_bytes.size());
    if (!o.selection.empty()) {
        const auto s = io::encode_npy(io::make_u8({k.heads, L}, selection_map(acc, trace, k.heads)));
        files.stage(o.selection, s.data(), s.size());
    }
    if (!o.stats.empty()) {
        // The bound needs the full softmax of every query: O(L^2 d) in double on the host.
        const auto qb = method::error_bound(q, k, v, out, trace);
        AttendInfo info{dev->info().name, o.dense ? "dense" : "tca", L, P, N,
                        o.dense ? 0 : profile.params.block, o.dense ? 0 : profile.params.window, o.chunk};
        files.stage(o.stats, stats_json(info, acc, method::summarize(qb, q.heads, L)));
    }
    files.commit();
    for (int h = 0; h < k.heads; ++h)
        fmt::print(stderr, "tca: kv head {}: {} of {} tokens cached ({:.1f}%)\n", h, acc.cached(h), L,
                   100.0 * acc.cached(h) / L);
}

}  // namespace tca::detail::tools
