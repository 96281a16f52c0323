// C API for benchmarking: the build revision and the device roofline (see tca.h, "benchmarking
// support"). The measurements themselves live in the device layer (device/roofline.h).
#include <cstdio>
#include <string>

#include "api/capi_guard.h"
#include "api/handles.h"
#include "api/struct_size.h"
#include "device/roofline.h"

#ifndef TCA_GIT_REVISION
#define TCA_GIT_REVISION "unknown"
#endif

using namespace tca::detail;

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
        api::known_bytes(out, "out");  // before the measurement, which takes a while
        const Roofline r = measure_roofline(*ctx->device);
        tca_roofline v{};
        v.copy_gbps = r.copy_gbps;
        v.f32_gflops = r.f32_gflops;
        v.f16_gflops = r.f16_gflops;
        v.copy_bytes = r.copy_bytes;
        v.gemm_size = r.gemm_size;
        v.runs = r.runs;
        v.host_timed = r.host_timed ? 1 : 0;
        put(v.copy_engine, sizeof v.copy_engine, r.copy_engine);
        put(v.f32_engine, sizeof v.f32_engine, r.f32_engine);
        put(v.f16_engine, sizeof v.f16_engine, r.f16_engine);
        v.fma_f32_gflops = r.fma_f32_gflops;
        v.fma_f16_gflops = r.fma_f16_gflops;
        put(v.fma_engine, sizeof v.fma_engine, r.fma_engine);
        api::write_struct(out, v, "out");
    });
}

}  // extern "C"
