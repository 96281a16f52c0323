// The float32 matmul of the LM's linear layers, on the host: y[T, out] = x[T, in] W^T with W kept
// transposed ([in, out], see Linear). Register-blocked (6 rows x 16 columns per micro-kernel, the
// classic shape that fits AVX2's 16 registers), panel-blocked over columns so a panel of W^T stays
// in L2 while every row tile of x streams past it, and split over threads by rows. An AVX2+FMA
// clone is picked at run time where the CPU has it; otherwise plain SSE2 code runs.
#pragma once

#include "lm/model.h"

namespace tca::detail::lm {

// x: [T, w.in] row-major; y: [T, w.out] row-major (overwritten). threads <= 0: one per core.
void matmul(const float* x, int T, const Linear& w, float* y, int threads = 0);

// Threads matmul uses by default: the hardware's, at most 8.
int default_threads();

}  // namespace tca::detail::lm
