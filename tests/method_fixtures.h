// Shared helpers of the method tests: the reference device and small calibrated workloads.
#pragma once

#include "device/registry.h"
#include "method/calibrate.h"
#include "method/synth.h"

namespace tca::detail::method::test {

inline Device& cpu() {
    static auto dev = open_device("cpu");
    return *dev;
}

inline SynthData workload(SynthKind kind, int hq, int hkv, int L, int d, uint64_t seed) {
    SynthSpec s;
    s.kind = kind, s.q_heads = hq, s.kv_heads = hkv, s.len = L, s.dim = d, s.seed = seed;
    return synthesize(s);
}

// A profile calibrated on its own seed (held out from the data it is later used on).
inline Profile calibrated(SynthKind kind, int hq, int hkv, int L, int d, const TcaParams& p, uint64_t seed) {
    const auto w = workload(kind, hq, hkv, L, d, seed);
    return calibrate(cpu(), p, {w.q}, {w.k});
}

}  // namespace tca::detail::method::test
