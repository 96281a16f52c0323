// Offline calibration (spec Phase 1): one forward pass over a calibration sequence per layer
// gives, per KV head, the sparsest candidate that still covers tau of the attention mass.
#pragma once

#include <vector>

#include "device/device.h"
#include "method/host_tensor.h"
#include "method/profile.h"

namespace tca::detail::method {

// Everything calibration measured for one KV head: per candidate, the tokens its selection kept
// and the covered mass a_i; and the choice.
struct HeadCalibration {
    std::vector<int> kept;        // per candidate: |S_i| (global tokens kept)
    std::vector<double> covered;  // per candidate: a_i
    int chosen = 0;
    bool valid = true;  // false: no candidate met tau (only possible without the dense candidate)
};

// Spec Phase 1 step 4: among candidates with covered >= tau the one with the fewest kept tokens,
// ties to the lower candidate index (the sparser end of the grid). If none is valid, the one with
// the largest covered mass (ties: lower index) and valid = false.
int choose_candidate(const std::vector<int>& kept, const std::vector<double>& covered, double tau, bool* valid = nullptr);

// Covered mass of spec step 3: sum of c over (kept ∪ [n_global, L)) / sum of all c, in double.
// Both sums run in index order so that keeping everything gives exactly 1.
double covered_mass(const std::vector<float>& c, int n_global, const std::vector<int>& kept);

// One layer: q [Hq, L, d], k [Hkv, L, d]. Requires L > params.window (there must be tokens to
// select from). The device runs colsum (c_k), then the selection of every candidate.
std::vector<HeadCalibration> calibrate_layer(Device& dev, const TcaParams& params, const std::vector<Candidate>& grid,
                                             const HostTensor& q, const HostTensor& k);

// Whole profile over layers (q[l], k[l] are that layer's calibration tensors).
Profile calibrate(Device& dev, const TcaParams& params, const std::vector<HostTensor>& q, const std::vector<HostTensor>& k);

// The mean-received-attention statistic c [Hkv][L] (colsum op) of one layer.
std::vector<std::vector<float>> received_attention(Device& dev, const HostTensor& q, const HostTensor& k);

}  // namespace tca::detail::method
