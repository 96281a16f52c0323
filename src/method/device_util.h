// Small helpers for driving a Device from the method: typed uploads and read-backs of int32 /
// float32 arrays and of host tensors. Only Device's public interface is used, so they work on
// every backend.
#pragma once

#include <cstdint>
#include <vector>

#include "device/device.h"
#include "method/host_tensor.h"

namespace tca::detail::method {

// A device buffer of `n` 4-byte elements, optionally filled.
BufView alloc_ints(Device& dev, const std::vector<int32_t>& values);
BufView alloc_zeros(Device& dev, size_t n_elements);  // 4-byte elements, zero-filled
// The same as `heads` rows of 4-byte elements, [heads, row_elements] or values.size() / heads a
// row: what grows with the sequence is allocated this way, so the device may split it between heads
// when it exceeds its largest buffer (Device::alloc_heads).
BufView alloc_zero_rows(Device& dev, int heads, size_t row_elements);
BufView alloc_int_rows(Device& dev, int heads, const std::vector<int32_t>& values);
std::vector<int32_t> read_ints(Device& dev, const BufView& v, size_t n);
std::vector<float> read_floats(Device& dev, const BufView& v, size_t n);
// Enqueued like an op (Device::update): values are copied at once, nothing waits.
void write_ints(Device& dev, const BufView& v, const std::vector<int32_t>& values);

// A contiguous device tensor [heads, tokens, dim] of dtype (f32 data converted to f16 if asked),
// zero-filled. A tensor past the device's largest buffer is split between heads, `align` heads a
// multiple per buffer where possible: pass the GQA group for query-shaped tensors, 1 for K/V.
Tensor upload_tensor(Device& dev, const HostTensor& x, DType dtype = DType::f32, int align = 1);
Tensor alloc_tensor(Device& dev, int heads, int tokens, int dim, DType dtype = DType::f32, int align = 1);
HostTensor download_tensor(Device& dev, const Tensor& t);  // f32 tensors only
// The view of one token row (all heads) of t: a [heads, 1, dim] tensor sharing t's buffer.
Tensor row_view(const Tensor& t, int token);
// Raw bytes of rows [row0, row0 + n) of one head of t (n * dim elements of t's dtype).
std::vector<uint8_t> read_rows(Device& dev, const Tensor& t, int head, int row0, int n);
// Writes one row (dim values) at (head, token); converts to f16 for f16 tensors.
void write_row(Device& dev, const Tensor& t, int head, int token, const float* values);

}  // namespace tca::detail::method
