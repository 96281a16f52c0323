// Internal hooks into the OpenCL backend, for tests only (the public surface is backends.h).
#pragma once

#include <string>

#include "device/decode_tuning.h"
#include "device/device.h"

namespace tca::detail::opencl_testing {

// What the program cache did on one device since it was opened.
struct ProgramCacheStats {
    int built = 0;     // programs compiled from source
    int loaded = 0;    // programs created from a cached binary
    int stored = 0;    // binaries written to the cache
    int rejected = 0;  // cache entries found but unusable (corrupt, truncated, refused by the driver)
};

// Both throw TCA_ERROR_INVALID_ARGUMENT when `dev` is not an OpenCL device.
ProgramCacheStats cache_stats(Device& dev);
// Builds `source` with `options` exactly as a kernel program would be built (cache included).
void build_source(Device& dev, const std::string& source, const std::string& options);
// Frees the device's internal scratch buffers, so that later ops allocate them again as on a fresh
// device (built programs stay). Fault-injection tests reuse one device.
void release_scratch(Device& dev);
// Replaces the device's decode tuning row (device/decode_tuning.h), e.g. the GPU row on a CPU driver;
// returns the row it replaced.
DecodeTuning set_decode_tuning(Device& dev, const DecodeTuning& t);

}  // namespace tca::detail::opencl_testing
