// Test harness shared by every kernel test: devices under test, guarded device tensors,
// deterministic random data and the normalised-MSE comparison against the reference.
//
// Guard regions: every tensor a test hands to an op lives inside a larger buffer whose bytes
// before and after it (and, with padded strides, between rows) hold a sentinel pattern;
// check_guards() fails the test if any op wrote outside the tensor.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "device/device.h"

namespace tca::detail::test {

// Every device whose kernels are tested against the reference: all OpenCL and Vulkan devices found.
std::vector<std::string> devices_under_test();
// The device instance for a name, opened once per process and shared by tests.
Device& device(const std::string& name);
Device& reference();
// Closes every device device() opened (after the last test, so that what their destruction makes the
// Vulkan validation layer say is still checked; see vk_validation_listener.cpp).
void close_devices();
// Fails the current test (or, outside one, the run) if Vulkan validation messages arrived since the
// last check, printing them; `where` names the point of the check.
void check_validation_messages(const std::string& where);
// True when running in CI (CI=true): a missing OpenCL or Vulkan device is then a failure.
bool in_ci();

// Test-name-safe form of a device name ("opencl:0" -> "opencl_0").
std::string safe_name(const std::string& device_name);

constexpr size_t kGuardBytes = 256;
constexpr unsigned char kGuardByte = 0xA5;

// A tensor inside a guarded buffer. Rows may be padded (token_stride > dim) so that strided
// layouts are exercised; the padding is guarded too.
struct GuardedTensor {
    Tensor t;
    size_t total_bytes = 0;
};

GuardedTensor make_tensor(Device& dev, DType dtype, int heads, int tokens, int dim, const std::vector<float>& values,
                          int row_pad = 0);
GuardedTensor make_output(Device& dev, int heads, int tokens, int dim, int row_pad = 0);
// Reads a tensor back as float (f16 widened), contiguous [heads, tokens, dim].
std::vector<float> read_tensor(Device& dev, const GuardedTensor& g);
// Expects every byte outside the tensor's elements to still hold the sentinel.
void check_guards(Device& dev, const GuardedTensor& g, const std::string& what);

// An int32 / float32 buffer with guards around it; view() points past the leading guard.
struct GuardedArray {
    Buffer buf;
    size_t bytes = 0;
    BufView view() const { return BufView{buf, kGuardBytes}; }
};
GuardedArray make_ints(Device& dev, const std::vector<int32_t>& values);
GuardedArray make_floats(Device& dev, const std::vector<float>& values);
GuardedArray make_empty(Device& dev, size_t elements);  // zero-filled, 4-byte elements
std::vector<int32_t> read_ints(Device& dev, const GuardedArray& a, size_t n);
std::vector<float> read_floats(Device& dev, const GuardedArray& a, size_t n);
void check_guards(Device& dev, const GuardedArray& a, const std::string& what);

// Deterministic N(0, sigma) data.
std::vector<float> randn(size_t n, uint32_t seed, float sigma = 1.0f);
// Rounds through fp16 so the reference sees exactly the stored values.
std::vector<float> round_to_half(const std::vector<float>& x);
// x as stored in format t (f32: unchanged; f16, bf16: rounded by the spec's rule).
std::vector<float> round_to_format(DType t, const std::vector<float>& x);

// sum (ref - x)^2 / sum ref^2 (0 when both are all-zero).
double nmse(const std::vector<float>& ref, const std::vector<float>& x);
// Fails if any value is NaN or Inf.
void expect_finite(const std::vector<float>& x, const std::string& what);

}  // namespace tca::detail::test
