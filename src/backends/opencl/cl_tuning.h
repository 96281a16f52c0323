// Private header of the OpenCL backend: the tuning table (cl_tuning.cpp), one row per device class
// (device/tuning.h), chosen when a context is created.
#pragma once

#include <CL/cl.h>

#include <cstddef>
#include <string>

#include "device/decode_tuning.h"
#include "device/device.h"

namespace tca::detail::opencl {

struct Tuning {
    int prefill_bq;       // query rows per work-group, one per work-item (also colsum's keys per group)
    int prefill_bk;       // keys per local-memory tile; lowered further when local memory is short
    int score_wg;         // work-items per importance-score chunk
    int score_chunk;      // keys per importance-score chunk (multiple of score_wg)
    int reduce_wg;        // metric and select work-groups (power of two)
    int rank_wg;          // block-ranking work-groups
    DecodeTuning decode;  // decode layout and split-K (device/decode_tuning.h)
};

// The row for `info`'s device class with `local_mem` bytes of local memory, then the TCA_TUNING
// items for OpenCL (`overrides`), then work-group sizes halved to the device's `max_wg`.
// Throws TCA_ERROR_INVALID_ARGUMENT for a bad override.
Tuning choose_tuning(const DeviceInfo& info, cl_ulong local_mem, size_t max_wg, const std::string& overrides);

}  // namespace tca::detail::opencl
