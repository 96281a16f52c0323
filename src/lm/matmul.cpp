#include "lm/matmul.h"

#include <algorithm>
#include <thread>
#include <vector>

namespace tca::detail::lm {

namespace {

constexpr int kMR = 6, kNR = 16;
constexpr int kPanel = 128;  // columns of W^T per panel: in * 128 * 4 bytes (<= 512 KB for in <= 1024)

// GCC vector extensions: 8 floats, loaded unaligned. In the AVX2 clone one ymm register; in the
// default clone GCC splits it into two SSE registers.
typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));

// y[r][j] = sum_k x[r][k] * wt[k][j] for r < MR, j < 16 (one micro-tile); accumulators stay in
// registers for the whole k loop.
template <int MR>
__attribute__((always_inline)) inline void tile(const float* x, int ldx, const float* wt, int ldw, float* y, int ldy,
                                                int K) {
    v8 acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = v8{};
    for (int k = 0; k < K; ++k) {
        const float* w = wt + size_t(k) * ldw;
        const v8 w0 = *reinterpret_cast<const v8u*>(w), w1 = *reinterpret_cast<const v8u*>(w + 8);
        for (int r = 0; r < MR; ++r) {
            const float a = x[size_t(r) * ldx + k];
            acc[r][0] += a * w0;
            acc[r][1] += a * w1;
        }
    }
    for (int r = 0; r < MR; ++r) {
        *reinterpret_cast<v8u*>(y + size_t(r) * ldy) = acc[r][0];
        *reinterpret_cast<v8u*>(y + size_t(r) * ldy + 8) = acc[r][1];
    }
}

// Rows [r0, r1) of y. On x86-64 (GCC, glibc ifunc) compiled twice and the loader picks the
// AVX2+FMA clone on CPUs that have it; elsewhere compiled once for the build's target.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define TCA_LM_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define TCA_LM_CLONES
#endif
TCA_LM_CLONES
void rows(const float* x, const Linear& w, float* y, int r0, int r1) {
    const int K = w.in, N = w.out;
    const int full = N / kNR * kNR;
    for (int p0 = 0; p0 < full; p0 += kPanel) {
        const int p1 = std::min(full, p0 + kPanel);
        int r = r0;
        for (; r + kMR <= r1; r += kMR)
            for (int n = p0; n < p1; n += kNR)
                tile<kMR>(x + size_t(r) * K, K, w.wt.data() + n, N, y + size_t(r) * N + n, N, K);
        for (; r < r1; ++r)
            for (int n = p0; n < p1; n += kNR)
                tile<1>(x + size_t(r) * K, K, w.wt.data() + n, N, y + size_t(r) * N + n, N, K);
    }
    // Columns past the last full micro-tile (out not a multiple of 16).
    for (int r = r0; r < r1; ++r)
        for (int n = full; n < N; ++n) {
            float s = 0;
            for (int k = 0; k < K; ++k) s += x[size_t(r) * K + k] * w.wt[size_t(k) * N + n];
            y[size_t(r) * N + n] = s;
        }
}

}  // namespace

int default_threads() {
    const unsigned n = std::thread::hardware_concurrency();
    return int(std::clamp(n, 1u, 8u));
}

void matmul(const float* x, int T, const Linear& w, float* y, int threads) {
    if (threads <= 0) threads = default_threads();
    // Below a few hundred rows a thread costs more than it saves.
    threads = std::max(1, std::min(threads, T / 64));
    if (threads == 1) return rows(x, w, y, 0, T);
    std::vector<std::thread> pool;
    const int chunk = (T + threads - 1) / threads;
    for (int t = 1; t < threads; ++t) {
        const int r0 = std::min(T, t * chunk), r1 = std::min(T, (t + 1) * chunk);
        if (r0 < r1) pool.emplace_back(rows, x, std::cref(w), y, r0, r1);
    }
    rows(x, w, y, 0, std::min(T, chunk));
    for (auto& th : pool) th.join();
}

}  // namespace tca::detail::lm
