// A C++ program using libtca through find_package(tca) and the RAII header.
#include <tca/tca.hpp>

#include <cstdio>
#include <vector>

int main() {
    for (const auto& d : tca::devices()) std::printf("  %-10s %s\n", d.name, d.device);
    tca::Context ctx("cpu");  // the reference backend: available everywhere
    const int hq = 2, hkv = 1, len = 64, dim = 64;
    tca::Tensor q(ctx, TCA_F32, hq, len, dim), k(ctx, TCA_F32, hkv, len, dim), o(ctx, TCA_F32, hq, len, dim);
    std::vector<float> qd(size_t(hq) * len * dim, 0.01f), kd(size_t(hkv) * len * dim);
    for (size_t i = 0; i < kd.size(); ++i) kd[i] = float(i % 7) - 3.f;
    q.upload(qd.data(), qd.size() * 4);
    k.upload(kd.data(), kd.size() * 4);
    tca::dense_prefill(ctx, q, k, k, o);
    try {
        tca::dense_decode(ctx, q, k, k, len, o);  // q has 64 rows: decode wants one
        return 1;
    } catch (const tca::Exception& e) {
        std::printf("expected error: %s\n", e.what());
    }
    std::printf("ok\n");
    return 0;
}
