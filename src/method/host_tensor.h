// A [heads, tokens, dim] float32 tensor in host memory, contiguous: what the method's public
// functions take and return (files, synthetic workloads, outputs).
#pragma once

#include <cstddef>
#include <vector>

#include "core/checked.h"

namespace tca::detail::method {

struct HostTensor {
    int heads = 0, tokens = 0, dim = 0;
    std::vector<float> data;

    HostTensor() = default;
    HostTensor(int h, int t, int d) : heads(h), tokens(t), dim(d), data(elements(h, t, d), 0.f) {}

    // heads * tokens * dim, checked (a wrapped count would make row() write past data).
    static size_t elements(int h, int t, int d) { return checked_product({h, t, d}, "host tensor elements"); }

    float* row(int h, int t) { return data.data() + (size_t(h) * tokens + t) * dim; }
    const float* row(int h, int t) const { return data.data() + (size_t(h) * tokens + t) * dim; }
};

}  // namespace tca::detail::method
