#include "method/device_util.h"

#include <algorithm>
#include <string>

#include "core/checked.h"
#include "core/half.h"

namespace tca::detail::method {

namespace {

// Byte offset of element (head, token, 0) of t in its buffer, checked (strides are caller-given).
size_t byte_offset(const Tensor& t, int head, int token) {
    const char* what = "tensor row offset";
    const int64_t e = checked_add_i64(checked_mul_i64(head, t.head_stride, what), checked_mul_i64(token, t.token_stride, what), what);
    require(e >= 0, TCA_ERROR_INVALID_ARGUMENT, "tensor row offset: negative");
    return checked_add(t.data.offset, checked_mul(size_t(e), dtype_size(t.dtype), what), what);
}

size_t word_bytes(size_t n, const char* what) { return checked_mul(n, 4, what); }

}  // namespace

BufView alloc_ints(Device& dev, const std::vector<int32_t>& values) {
    const size_t bytes = word_bytes(std::max<size_t>(values.size(), 1), "int32 array bytes");
    BufView v = dev.alloc_view(bytes);
    if (!values.empty()) dev.write(v, values.data(), values.size() * 4);  // <= bytes
    return v;
}

BufView alloc_zeros(Device& dev, size_t n) {
    const size_t bytes = word_bytes(std::max<size_t>(n, 1), "zeroed array bytes");
    BufView v = dev.alloc_view(bytes);
    dev.fill_zero(v, bytes);
    return v;
}

BufView alloc_zero_rows(Device& dev, int heads, size_t row_elements) {
    const size_t row = std::max<size_t>(row_elements, 1) * 4;
    BufView v = dev.alloc_heads_view(size_t(heads), row);
    dev.fill_zero(v, checked_mul(size_t(heads), row, "zeroed rows bytes"));
    return v;
}

BufView alloc_int_rows(Device& dev, int heads, const std::vector<int32_t>& values) {
    require(heads > 0 && values.size() % size_t(heads) == 0, TCA_ERROR_INTERNAL, "alloc_int_rows: ragged rows");
    if (values.empty()) return alloc_zero_rows(dev, heads, 1);
    BufView v = dev.alloc_heads_view(size_t(heads), values.size() / size_t(heads) * 4);
    dev.write(v, values.data(), values.size() * 4);
    return v;
}

std::vector<int32_t> read_ints(Device& dev, const BufView& v, size_t n) {
    const size_t bytes = word_bytes(n, "int32 read-back bytes");
    std::vector<int32_t> out(n);
    if (n) dev.read(v, out.data(), bytes);
    return out;
}

std::vector<float> read_floats(Device& dev, const BufView& v, size_t n) {
    const size_t bytes = word_bytes(n, "float32 read-back bytes");
    std::vector<float> out(n);
    if (n) dev.read(v, out.data(), bytes);
    return out;
}

void write_ints(Device& dev, const BufView& v, const std::vector<int32_t>& values) {
    // update(), not write(): enqueued in order with the ops, no wait (a blocking write on an
    // in-order queue waits for everything queued before it, the hot path's hidden sync).
    if (!values.empty()) dev.update(v, values.data(), checked_mul(values.size(), 4, "int32 write bytes"));
}

Tensor alloc_tensor(Device& dev, int heads, int tokens, int dim, DType dtype, int align) {
    require(heads > 0 && tokens > 0 && dim > 0, TCA_ERROR_INVALID_ARGUMENT,
            "tensor shape [" + std::to_string(heads) + ", " + std::to_string(tokens) + ", " + std::to_string(dim) +
                "] is empty");
    (void)checked_product({heads, tokens, dim, int64_t(dtype_size(dtype))}, "device tensor bytes");
    const size_t head_bytes = checked_product({tokens, dim, int64_t(dtype_size(dtype))}, "device tensor head bytes");
    BufView v = dev.alloc_heads_view(size_t(heads), head_bytes, size_t(std::max(align, 1)));
    dev.fill_zero(v, checked_mul(size_t(heads), head_bytes, "device tensor bytes"));
    return Tensor::contiguous(v, dtype, heads, tokens, dim);
}

Tensor upload_tensor(Device& dev, const HostTensor& x, DType dtype, int align) {
    require(x.data.size() == HostTensor::elements(x.heads, x.tokens, x.dim), TCA_ERROR_SHAPE_MISMATCH,
            "host tensor [" + std::to_string(x.heads) + ", " + std::to_string(x.tokens) + ", " + std::to_string(x.dim) +
                "] holds " + std::to_string(x.data.size()) + " values");
    Tensor t = alloc_tensor(dev, x.heads, x.tokens, x.dim, dtype, align);
    if (dtype == DType::f32) {
        dev.write(t.data, x.data.data(), x.data.size() * 4);
    } else {
        std::vector<uint16_t> h(x.data.size());
        for (size_t i = 0; i < h.size(); ++i) h[i] = float_to_16bit(dtype, x.data[i]);
        dev.write(t.data, h.data(), h.size() * 2);
    }
    return t;
}

HostTensor download_tensor(Device& dev, const Tensor& t) {
    require(t.dtype == DType::f32 && t.token_stride == t.dim && t.head_stride == int64_t(t.tokens) * t.dim,
            TCA_ERROR_INTERNAL, "download_tensor: needs a contiguous f32 tensor");
    HostTensor x(t.heads, t.tokens, t.dim);
    dev.read(t.data, x.data.data(), x.data.size() * 4);
    return x;
}

void write_row(Device& dev, const Tensor& t, int head, int token, const float* values) {
    BufView dst{t.data.buf, byte_offset(t, head, token)};
    if (t.dtype == DType::f32) {
        dev.write(dst, values, size_t(t.dim) * 4);
    } else {
        std::vector<uint16_t> h(t.dim);
        for (int i = 0; i < t.dim; ++i) h[i] = float_to_16bit(t.dtype, values[i]);
        dev.write(dst, h.data(), h.size() * 2);
    }
}

std::vector<uint8_t> read_rows(Device& dev, const Tensor& t, int head, int row0, int n) {
    const size_t row_bytes = checked_product({t.dim, int64_t(dtype_size(t.dtype))}, "row bytes");
    std::vector<uint8_t> out(checked_product({n, int64_t(row_bytes)}, "rows read-back bytes"));
    for (int r = 0; r < n; ++r)  // rows may be strided: one read per row (test/report path only)
        dev.read(BufView{t.data.buf, byte_offset(t, head, row0 + r)}, out.data() + size_t(r) * row_bytes, row_bytes);
    return out;
}

Tensor row_view(const Tensor& t, int token) {
    Tensor r = t;
    r.data.offset = byte_offset(t, 0, token);
    r.tokens = 1;
    return r;
}

}  // namespace tca::detail::method
