// The device's own roofline, measured with the probe ops: Device::stream_copy (bandwidth),
// Device::fma_probe (the compute peak: register-resident multiply-adds) and Device::gemm (a
// reference line only: a tuned GEMM's rate, which is below the peak and no limit). The rates a
// benchmark compares its achieved GB/s and GFLOP/s with. Knows no attention.
#pragma once

#include <string>

#include "device/device.h"

namespace tca::detail {

struct Roofline {
    double copy_gbps = 0;    // (bytes read + bytes written) / s / 1e9, best of `runs`
    double f32_gflops = 0;   // 2 M N K / s / 1e9, best of `runs`
    double f16_gflops = 0;   // 0 when gemm_supported(f16) is false
    double fma_f32_gflops = 0;  // multiply-add peak: 2 * items * iters * chains / s / 1e9, best of `runs`
    double fma_f16_gflops = 0;  // 0 when fma_supported(f16) is false
    uint32_t fma_items = 0, fma_iters = 0;
    size_t copy_bytes = 0;   // bytes copied per run
    int gemm_size = 0;       // M = N = K
    int runs = 0;
    bool host_timed = false;  // the reference backend: host clock, host code
    std::string copy_engine, f32_engine, f16_engine, fma_engine;
};

// Sizes follow the device type: large enough to leave the caches and fill the device, small
// enough to take well under a second on a CPU driver. Profiling is left as it was found.
Roofline measure_roofline(Device& dev);

}  // namespace tca::detail
