// OpenCL backend: tile and work-group sizes per device class.
#include "backends/opencl/cl_tuning.h"

#include <vector>

#include "core/error.h"
#include "device/tuning.h"

namespace tca::detail::opencl {

namespace {

// The first row of the device's class whose local-memory minimum the device meets wins; a class
// with no matching row (a vendor the table does not name) falls back to the generic GPU rows, and
// anything else to the default row.
struct TuningRow {
    DeviceClass cls;
    cl_ulong min_local;
    Tuning t;
};

// Field order: prefill_bq, prefill_bk, score_wg, score_chunk, reduce_wg, rank_wg, decode (see Tuning).
constexpr Tuning kGpuLargeLocal = {64, 32, 128, 2048, 128, 128, kDecodeGpuRow};
constexpr Tuning kGpu = {32, 16, 128, 2048, 128, 128, kDecodeGpuRow};
constexpr Tuning kDefault = {32, 16, 64, 2048, 64, 64, DecodeTuning{}};

const TuningRow kTuning[] = {
    // CPU drivers (PoCL): local memory is ordinary cached memory, so bigger tiles amortise the
    // per-tile barriers; few compute units, so few decode splits.
    {DeviceClass::cpu_driver, 0, {128, 64, 64, 4096, 64, 64, kDecodeCpuRow}},
    // NVIDIA reports 48 KiB of local memory: the smaller tiles.
    {DeviceClass::nvidia, 64 * 1024, kGpuLargeLocal},
    {DeviceClass::nvidia, 0, kGpu},
    // AMD and Intel GPUs have 64 KiB: key tiles of 32 rows fit beside the query tile.
    {DeviceClass::amd, 64 * 1024, kGpuLargeLocal},
    {DeviceClass::amd, 0, kGpu},
    {DeviceClass::intel, 64 * 1024, kGpuLargeLocal},
    {DeviceClass::intel, 0, kGpu},
    {DeviceClass::gpu, 64 * 1024, kGpuLargeLocal},
    {DeviceClass::gpu, 0, kGpu},
};

const Tuning& row_for(DeviceClass cls, cl_ulong local_mem) {
    for (const auto& row : kTuning)
        if (row.cls == cls && local_mem >= row.min_local) return row.t;
    if (cls == DeviceClass::nvidia || cls == DeviceClass::amd || cls == DeviceClass::intel) return row_for(DeviceClass::gpu, local_mem);
    return kDefault;
}

}  // namespace

Tuning choose_tuning(const DeviceInfo& info, cl_ulong local_mem, size_t max_wg, const std::string& overrides) {
    Tuning t = row_for(classify_device(info), local_mem);
    apply_tuning_overrides(overrides, "opencl",
                           {{"prefill_bq", &t.prefill_bq, 1, 1024, true},
                            {"prefill_bk", &t.prefill_bk, 4, 256, true},
                            {"decode_wg", &t.decode.wg, 1, 1024, true},
                            {"decode_tpr", &t.decode.tpr, 0, 1024, false},
                            {"decode_tile", &t.decode.tile, 1, 4096, true},
                            {"decode_min_keys", &t.decode.min_keys, 1, 1 << 20, false},
                            {"wgs_per_cu", &t.decode.wgs_per_cu, 1, 64, false},
                            {"score_wg", &t.score_wg, 1, 1024, true},
                            {"score_chunk", &t.score_chunk, 1, 1 << 16, false},
                            {"reduce_wg", &t.reduce_wg, 1, 1024, true},
                            {"rank_wg", &t.rank_wg, 1, 1024, true}});
    require(t.score_chunk % t.score_wg == 0, TCA_ERROR_INVALID_ARGUMENT,
            "TCA_TUNING: opencl score_chunk (" + std::to_string(t.score_chunk) + ") must be a multiple of score_wg (" +
                std::to_string(t.score_wg) + ")");
    for (int* wg : {&t.prefill_bq, &t.decode.wg, &t.score_wg, &t.reduce_wg, &t.rank_wg})
        while (size_t(*wg) > max_wg && *wg > 1) *wg /= 2;  // sizes are powers of two
    return t;
}

}  // namespace tca::detail::opencl
