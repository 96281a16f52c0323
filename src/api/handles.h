// What the C API's opaque handles are. Each carries a magic number so a stale or foreign
// pointer is rejected with a message instead of crashing.
#pragma once

#include <functional>
#include <memory>

#include "core/finite.h"
#include "core/range.h"
#include "device/device.h"

struct tca_context {
    static constexpr uint32_t kMagic = 0x7ca0c7e1;
    uint32_t magic = kMagic;
    std::unique_ptr<tca::detail::Device> device;
    tca_call_stats last_stats{};
    // Made on the caller's OpenCL / Vulkan objects: each call ends by handing its work to the
    // caller's queue (tca.h, "zero-copy interop", for the synchronisation this gives).
    bool external = false;
    // last_stats.kept_tokens of a cache call, read from the device only when the stats are asked for.
    std::function<int64_t()> kept_reader;
    // Brackets one API call: drops stale timings before, turns the op records into last_stats after,
    // and hands the call's work to the device (library-made contexts: without waiting).
    void begin_call();
    void end_call(int64_t kept_tokens);
    void end_call(std::function<int64_t()> kept_tokens);
};

struct tca_tensor {
    static constexpr uint32_t kMagic = 0x7ca07e50;
    uint32_t magic = kMagic;
    tca_context* ctx = nullptr;
    tca::detail::Tensor t;
    // Bound on the L2 norm of every row of the data, for the range checks of attention calls
    // (core/range.h). Tensors of tca_tensor_create are `tracked`: uploads and the calls that write
    // them keep the bound; a wrapped tensor's memory is the caller's, so its bound stays unknown.
    double row_norm = tca::detail::kNormUnknown;
    bool tracked = false;
    // After an attention call wrote this tensor with values bounded by v (an output's rows are
    // softmax averages of value rows).
    void wrote_output(double v) {
        if (tracked) row_norm = tca::detail::output_norm(v);
    }
};

namespace tca::detail {

// Validate a handle (and that a tensor belongs to ctx); throw Error otherwise.
tca_context* check_ctx(tca_context* ctx);
const tca_tensor* check_tensor(const tca_context* ctx, const tca_tensor* t, const char* what);

}  // namespace tca::detail
