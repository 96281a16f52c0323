#include "tools/host_tensors.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "device/registry.h"
#include "io/npy.h"

namespace tca::detail::tools {

std::unique_ptr<Device> open_cli_device(const std::string& flag) {
    const char* env = std::getenv("TCA_DEVICE");
    const std::string source = !flag.empty() ? "--device" : (env && *env ? "TCA_DEVICE" : "default");
    auto dev = open_device(flag);  // "" = $TCA_DEVICE, else the best-ranked device
    std::fprintf(stderr, "tca: device %s (%s) [%s]\n", dev->info().name.c_str(), dev->info().device.c_str(), source.c_str());
    return dev;
}

method::HostTensor load_tensor(const std::string& path, const char* what) {
    std::vector<int64_t> shape;
    std::vector<float> data;
    try {
        data = io::read_float_tensor(path, 3, shape);
    } catch (const Error& e) {
        throw Error(e.code(), std::string(what) + ": " + e.what());
    }
    // The shape must fit the int dimensions the library takes and describe exactly the values read.
    for (int64_t n : shape)
        require(n >= 1 && n <= std::numeric_limits<int>::max(), TCA_ERROR_INVALID_ARGUMENT,
                std::string(what) + ": " + path + " has a dimension of " + std::to_string(n) + " (each must be in [1, " +
                    std::to_string(std::numeric_limits<int>::max()) + "])");
    method::HostTensor t;
    t.heads = int(shape[0]), t.tokens = int(shape[1]), t.dim = int(shape[2]);
    require(method::HostTensor::elements(t.heads, t.tokens, t.dim) == data.size(), TCA_ERROR_IO,
            std::string(what) + ": " + path + " holds " + std::to_string(data.size()) + " values, not the shape's " +
                std::to_string(t.heads) + " x " + std::to_string(t.tokens) + " x " + std::to_string(t.dim));
    t.data = std::move(data);
    return t;
}

std::vector<unsigned char> tensor_npy_bytes(const method::HostTensor& t) {
    return io::encode_npy(io::make_f32({t.heads, t.tokens, t.dim}, t.data));
}

method::HostTensor slice_tokens(const method::HostTensor& x, int t0, int n) {
    method::HostTensor out(x.heads, n, x.dim);
    for (int h = 0; h < x.heads; ++h)
        if (n > 0) std::memcpy(out.row(h, 0), x.row(h, t0), size_t(n) * x.dim * sizeof(float));
    return out;
}

}  // namespace tca::detail::tools
