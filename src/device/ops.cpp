// Names and stages of the ops (device.h).
#include "device/device.h"

namespace tca::detail {

const char* op_name(Op op) {
    switch (op) {
        case Op::attend_dense: return "attend_dense";
        case Op::attend_sparse: return "attend_sparse";
        case Op::decode: return "decode";
        case Op::score: return "score";
        case Op::metric: return "metric";
        case Op::sort: return "sort";
        case Op::select: return "select";
        case Op::gather: return "gather";
        case Op::colsum: return "colsum";
        case Op::copy: return "copy";
        case Op::gemm: return "gemm";
        case Op::fma: return "fma";
    }
    return "?";
}

Stage stage_of(Op op) {
    switch (op) {
        case Op::attend_dense:
        case Op::attend_sparse:
        case Op::decode: return Stage::attend;
        case Op::score: return Stage::score;
        case Op::metric: return Stage::metric;
        case Op::sort: return Stage::sort;
        case Op::select: return Stage::select;
        // KV compaction, calibration and the roofline probes are not stages of the method's calls.
        case Op::gather:
        case Op::colsum:
        case Op::copy:
        case Op::gemm:
        case Op::fma: return Stage::other;
    }
    return Stage::other;
}

const char* stage_name(Stage s) {
    switch (s) {
        case Stage::score: return "score";
        case Stage::metric: return "metric";
        case Stage::sort: return "sort";
        case Stage::select: return "select";
        case Stage::attend: return "attend";
        case Stage::other: return "other";
    }
    return "other";
}

}  // namespace tca::detail
