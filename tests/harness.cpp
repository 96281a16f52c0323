#include "harness.h"

#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>

#include "core/half.h"
#include "device/registry.h"

namespace tca::detail::test {

bool in_ci() {
    const char* ci = std::getenv("CI");
    return ci && std::string(ci) == "true";
}

std::vector<std::string> devices_under_test() {
    std::vector<std::string> names;
    for (const auto& d : list_devices())
        if (d.api != Api::reference) names.push_back(d.name);  // the reference is tested on its own
    // Harness self-check: run every kernel test with the reference as the device under test.
    if (const char* self = std::getenv("TCA_TEST_REFERENCE_AS_DEVICE"); self && std::string(self) == "1")
        names.push_back("cpu");
    return names;
}

namespace {
std::mutex g_devices_mu;
std::map<std::string, std::unique_ptr<Device>>& open_devices() {
    static std::map<std::string, std::unique_ptr<Device>> open;
    return open;
}
}  // namespace

Device& device(const std::string& name) {
    std::lock_guard<std::mutex> lock(g_devices_mu);
    auto& slot = open_devices()[name];
    if (!slot) slot = open_device(name);
    return *slot;
}

void close_devices() {
    std::lock_guard<std::mutex> lock(g_devices_mu);
    open_devices().clear();
}

Device& reference() { return device("cpu"); }

std::string safe_name(const std::string& n) {
    std::string s = n;
    for (char& c : s)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return s;
}

namespace {

Buffer guarded_buffer(Device& dev, size_t payload_bytes, size_t* total) {
    *total = payload_bytes + 2 * kGuardBytes;
    Buffer b = dev.alloc(*total);
    std::vector<unsigned char> fill(*total, kGuardByte);
    dev.write(BufView{b, 0}, fill.data(), fill.size());
    return b;
}

}  // namespace

GuardedTensor make_tensor(Device& dev, DType dtype, int heads, int tokens, int dim, const std::vector<float>& values,
                          int row_pad) {
    EXPECT_EQ(values.size(), size_t(heads) * tokens * dim);
    const int64_t token_stride = dim + row_pad;
    const int64_t head_stride = token_stride * tokens + row_pad;  // pad between heads as well
    const size_t es = dtype_size(dtype);
    const size_t payload = size_t(head_stride) * heads * es;
    GuardedTensor g;
    Buffer b = guarded_buffer(dev, payload, &g.total_bytes);
    g.t = Tensor{BufView{b, kGuardBytes}, dtype, heads, tokens, dim, head_stride, token_stride};
    // Write row by row so padding keeps the sentinel.
    std::vector<unsigned char> row(size_t(dim) * es);
    for (int h = 0; h < heads; ++h)
        for (int t = 0; t < tokens; ++t) {
            const float* src = values.data() + (size_t(h) * tokens + t) * dim;
            if (dtype == DType::f32) {
                std::memcpy(row.data(), src, row.size());
            } else {
                auto* dst = reinterpret_cast<uint16_t*>(row.data());
                for (int i = 0; i < dim; ++i) dst[i] = float_to_16bit(dtype, src[i]);
            }
            dev.write(BufView{b, kGuardBytes + size_t(h * head_stride + t * token_stride) * es}, row.data(), row.size());
        }
    return g;
}

GuardedTensor make_output(Device& dev, int heads, int tokens, int dim, int row_pad) {
    // Outputs start as NaN so an element the kernel forgets to write is caught.
    return make_tensor(dev, DType::f32, heads, tokens, dim, std::vector<float>(size_t(heads) * tokens * dim, NAN),
                       row_pad);
}

std::vector<float> read_tensor(Device& dev, const GuardedTensor& g) {
    std::vector<unsigned char> all(g.total_bytes);
    dev.read(BufView{g.t.data.buf, 0}, all.data(), all.size());
    const size_t es = dtype_size(g.t.dtype);
    std::vector<float> out(size_t(g.t.heads) * g.t.tokens * g.t.dim);
    for (int h = 0; h < g.t.heads; ++h)
        for (int t = 0; t < g.t.tokens; ++t)
            for (int i = 0; i < g.t.dim; ++i) {
                const size_t e = size_t(h * g.t.head_stride + t * g.t.token_stride + i);
                const unsigned char* p = all.data() + g.t.data.offset + e * es;
                float v;
                if (g.t.dtype == DType::f32) {
                    std::memcpy(&v, p, 4);
                } else {
                    uint16_t hbits;
                    std::memcpy(&hbits, p, 2);
                    v = float_from_16bit(g.t.dtype, hbits);
                }
                out[(size_t(h) * g.t.tokens + t) * g.t.dim + i] = v;
            }
    return out;
}

void check_guards(Device& dev, const GuardedTensor& g, const std::string& what) {
    std::vector<unsigned char> all(g.total_bytes);
    dev.read(BufView{g.t.data.buf, 0}, all.data(), all.size());
    const size_t es = dtype_size(g.t.dtype);
    std::vector<bool> inside(all.size(), false);
    for (int h = 0; h < g.t.heads; ++h)
        for (int t = 0; t < g.t.tokens; ++t) {
            const size_t start = g.t.data.offset + size_t(h * g.t.head_stride + t * g.t.token_stride) * es;
            std::fill(inside.begin() + start, inside.begin() + start + size_t(g.t.dim) * es, true);
        }
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < all.size(); ++i)
        if (!inside[i] && all[i] != kGuardByte && bad++ == 0) first = i;
    EXPECT_EQ(bad, 0u) << what << ": " << bad << " guard bytes overwritten, first at byte " << first;
}

namespace {

GuardedArray make_array(Device& dev, const void* data, size_t bytes) {
    GuardedArray a;
    a.bytes = bytes;
    size_t total;
    a.buf = guarded_buffer(dev, bytes, &total);
    if (bytes) dev.write(a.view(), data, bytes);
    return a;
}

}  // namespace

GuardedArray make_ints(Device& dev, const std::vector<int32_t>& v) { return make_array(dev, v.data(), v.size() * 4); }
GuardedArray make_floats(Device& dev, const std::vector<float>& v) { return make_array(dev, v.data(), v.size() * 4); }
GuardedArray make_empty(Device& dev, size_t n) {
    std::vector<int32_t> zeros(n, 0);
    return make_ints(dev, zeros);
}

std::vector<int32_t> read_ints(Device& dev, const GuardedArray& a, size_t n) {
    std::vector<int32_t> v(n);
    if (n) dev.read(a.view(), v.data(), n * 4);
    return v;
}
std::vector<float> read_floats(Device& dev, const GuardedArray& a, size_t n) {
    std::vector<float> v(n);
    if (n) dev.read(a.view(), v.data(), n * 4);
    return v;
}

void check_guards(Device& dev, const GuardedArray& a, const std::string& what) {
    std::vector<unsigned char> all(a.bytes + 2 * kGuardBytes);
    dev.read(BufView{a.buf, 0}, all.data(), all.size());
    size_t bad = 0;
    for (size_t i = 0; i < kGuardBytes; ++i) bad += all[i] != kGuardByte;
    for (size_t i = kGuardBytes + a.bytes; i < all.size(); ++i) bad += all[i] != kGuardByte;
    EXPECT_EQ(bad, 0u) << what << ": guard bytes overwritten";
}

std::vector<float> randn(size_t n, uint32_t seed, float sigma) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.f, sigma);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

std::vector<float> round_to_format(DType t, const std::vector<float>& x) {
    if (t == DType::f32) return x;
    std::vector<float> r(x.size());
    for (size_t i = 0; i < x.size(); ++i) r[i] = float_from_16bit(t, float_to_16bit(t, x[i]));
    return r;
}

std::vector<float> round_to_half(const std::vector<float>& x) {
    std::vector<float> r(x.size());
    for (size_t i = 0; i < x.size(); ++i) r[i] = half_to_float(float_to_half(x[i]));
    return r;
}

double nmse(const std::vector<float>& ref, const std::vector<float>& x) {
    EXPECT_EQ(ref.size(), x.size());
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size() && i < x.size(); ++i) {
        const double d = double(ref[i]) - x[i];
        num += d * d;
        den += double(ref[i]) * ref[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return num / den;
}

void expect_finite(const std::vector<float>& x, const std::string& what) {
    size_t bad = 0;
    for (float v : x) bad += !std::isfinite(v);
    EXPECT_EQ(bad, 0u) << what << ": " << bad << " non-finite values";
}

}  // namespace tca::detail::test
