// C API for benchmarking: the build revision and the device roofline (see tca.h, "benchmarking
// support"). The measurements themselves live in the device layer (device/roofline.h).
#include <cstdio>
#include <string>

#include "api/capi_guard.h"
#include "api/handles.h"
#include "device/roofline.h"

#ifndef TCA_GIT_REVISION
#define TCA_GIT_REVISION "unknown"
#endif

using namespace tca;

namespace {

void put(char* dst, size_t size, const std::string& s) { std::snprintf(dst, size, "%s", s.c_str()); }

}  // namespace

extern "C" {

TCA_API const char* tca_build_revision(void) {
    static const char* rev = sizeof(TCA_GIT_REVISION) > 1 ? TCA_GIT_REVISION : "unknown";
    return rev;
}

TCA_API tca_status tca_device_roofline(tca_context* ctx, tca_roofline* out) {
    return api::guarded([&] {
        check_ctx(ctx);
        require(out != nullptr, TCA_ERROR_INVALID_ARGUMENT, "out is null");
        require(out->struct_size >= sizeof(tca_roofline), TCA_ERROR_INVALID_ARGUMENT,
                "out->struct_size must be set to sizeof(tca_roofline)");
        const Roofline r = measure_roofline(*ctx->device);
        const size_t size = out->struct_size;
        *out = tca_roofline{};
        out->struct_size = size;
        out->copy_gbps = r.copy_gbps;
        out->f32_gflops = r.f32_gflops;
        out->f16_gflops = r.f16_gflops;
        out->copy_bytes = r.copy_bytes;
        out->gemm_size = r.gemm_size;
        out->runs = r.runs;
        out->host_timed = r.host_timed ? 1 : 0;
        put(out->copy_engine, sizeof out->copy_engine, r.copy_engine);
        put(out->f32_engine, sizeof out->f32_engine, r.f32_engine);
        put(out->f16_engine, sizeof out->f16_engine, r.f16_engine);
    });
}

}  // extern "C"
