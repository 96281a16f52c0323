// Argument validation shared by every backend: the same bad call fails the same way everywhere.
#include <sstream>

#include "core/checked.h"
#include "device/device.h"

namespace tca::detail {

namespace {

std::string shape_str(const Tensor& t) {
    std::ostringstream s;
    s << "[" << t.heads << ", " << t.tokens << ", " << t.dim << "] " << dtype_name(t.dtype);
    return s.str();
}

void check_tensor(const Tensor& t, const char* what) {
    require(static_cast<bool>(t.data), TCA_ERROR_INVALID_ARGUMENT, std::string(what) + ": no buffer");
    require(t.heads > 0 && t.tokens > 0 && t.dim > 0, TCA_ERROR_INVALID_ARGUMENT,
            std::string(what) + ": empty shape " + shape_str(t));
    require(t.token_stride >= t.dim && t.head_stride >= 0, TCA_ERROR_INVALID_ARGUMENT,
            std::string(what) + ": strides overlap rows");
    require(t.data.offset % dtype_size(t.dtype) == 0, TCA_ERROR_INVALID_ARGUMENT,
            std::string(what) + ": offset not aligned to the element size");
    require(range_fits(t.data.offset, t.span_bytes(), t.data.buf->size), TCA_ERROR_SHAPE_MISMATCH,
            std::string(what) + ": " + shape_str(t) + " runs past the end of its buffer");
}

void check_dim(int d) {
    require(d % 4 == 0 && d >= 4 && d <= 256, TCA_ERROR_INVALID_ARGUMENT,
            "head dim " + std::to_string(d) + " unsupported (multiples of 4 up to 256; 64 and 128 are tuned)");
}

void check_gqa(int hq, int hkv) {
    require(hkv > 0 && hq % hkv == 0, TCA_ERROR_SHAPE_MISMATCH,
            std::to_string(hq) + " query heads are not a multiple of " + std::to_string(hkv) + " KV heads");
}

void check_view(const BufView& b, size_t bytes, const char* what) {
    require(static_cast<bool>(b), TCA_ERROR_INVALID_ARGUMENT, std::string(what) + ": no buffer");
    require(b.offset % 4 == 0, TCA_ERROR_INVALID_ARGUMENT, std::string(what) + ": offset not 4-byte aligned");
    require(range_fits(b.offset, bytes, b.buf->size), TCA_ERROR_SHAPE_MISMATCH,
            std::string(what) + ": needs " + std::to_string(bytes) + " bytes past offset, buffer too small");
}

void check_kv_pair(const Tensor& k, const Tensor& v, const char* kn, const char* vn) {
    check_tensor(k, kn);
    check_tensor(v, vn);
    require(k.heads == v.heads && k.tokens == v.tokens && k.dim == v.dim, TCA_ERROR_SHAPE_MISMATCH,
            std::string(kn) + " " + shape_str(k) + " and " + vn + " " + shape_str(v) + " differ");
    require(k.dtype == v.dtype, TCA_ERROR_INVALID_ARGUMENT, std::string(kn) + " and " + vn + " dtypes differ");
}

void check_q_kv(const Tensor& q, const Tensor& k) {
    check_tensor(q, "q");
    require(q.dtype == DType::f32, TCA_ERROR_INVALID_ARGUMENT, "q must be f32");
    require(q.dim == k.dim, TCA_ERROR_SHAPE_MISMATCH, "q " + shape_str(q) + " and k " + shape_str(k) + " head dims differ");
    check_dim(q.dim);
    check_gqa(q.heads, k.heads);
}

}  // namespace

size_t Tensor::span_bytes() const {
    if (heads <= 0 || tokens <= 0 || dim <= 0) return 0;
    // Checked: a shape like [2^30, 2^30, 16] wraps to a span of 0 bytes and would pass every bounds check.
    const char* what = "tensor span";
    const int64_t last = checked_add_i64(checked_add_i64(checked_mul_i64(heads - 1, head_stride, what),
                                                         checked_mul_i64(tokens - 1, token_stride, what), what),
                                         dim, what);
    require(last >= 0, TCA_ERROR_INVALID_ARGUMENT, "tensor span: negative strides");
    return checked_mul(size_t(last), dtype_size(dtype), what);
}

namespace {
// Bytes of `rows` rows of `stride` 4-byte elements (int32 / float32 arrays of the ops).
size_t words(int64_t rows, int64_t stride, const char* what) { return checked_product({rows, stride, 4}, what); }
}  // namespace

void validate(const PrefillArgs& a) {
    check_kv_pair(a.k, a.v, "k", "v");
    check_q_kv(a.q, a.k);
    check_tensor(a.o, "o");
    require(a.o.dtype == DType::f32, TCA_ERROR_INVALID_ARGUMENT, "o must be f32");
    require(a.o.heads == a.q.heads && a.o.tokens == a.q.tokens && a.o.dim == a.q.dim, TCA_ERROR_SHAPE_MISMATCH,
            "o " + shape_str(a.o) + " does not match q " + shape_str(a.q));
    require(a.q_pos0 >= 0 && a.q_pos0 + a.q.tokens <= a.k.tokens, TCA_ERROR_SHAPE_MISMATCH,
            "queries at positions " + std::to_string(a.q_pos0) + ".." + std::to_string(a.q_pos0 + a.q.tokens - 1) +
                " need keys up to there, but k has " + std::to_string(a.k.tokens));
    if (a.sparse()) {
        require(a.window >= 1, TCA_ERROR_INVALID_ARGUMENT, "sparse prefill needs window >= 1");
        require(a.kept_stride >= 1, TCA_ERROR_INVALID_ARGUMENT, "kept_stride must be >= 1");
        check_view(a.kept_idx, words(a.k.heads, a.kept_stride, "kept_idx"), "kept_idx");
        check_view(a.kept_count, words(a.k.heads, 1, "kept_count"), "kept_count");
    }
}

void validate(const DecodeArgs& a) {
    check_kv_pair(a.k1, a.v1, "k1", "v1");
    check_q_kv(a.q, a.k1);
    require(a.q.tokens == 1, TCA_ERROR_SHAPE_MISMATCH, "decode takes one query row per head");
    check_tensor(a.o, "o");
    require(a.o.dtype == DType::f32 && a.o.heads == a.q.heads && a.o.tokens == 1 && a.o.dim == a.q.dim,
            TCA_ERROR_SHAPE_MISMATCH, "o " + shape_str(a.o) + " does not match q " + shape_str(a.q));
    require(a.n1 >= 0 && a.n1 <= a.k1.tokens, TCA_ERROR_SHAPE_MISMATCH,
            "n1 = " + std::to_string(a.n1) + " outside the " + std::to_string(a.k1.tokens) + " rows of k1");
    if (a.k2.data) {
        check_kv_pair(a.k2, a.v2, "k2", "v2");
        require(a.k2.heads == a.k1.heads && a.k2.dim == a.k1.dim && a.k2.dtype == a.k1.dtype,
                TCA_ERROR_SHAPE_MISMATCH, "segment 2 does not match segment 1");
        check_view(a.n2, words(a.k1.heads, 1, "n2"), "n2");
        require(a.n2_max >= -1, TCA_ERROR_INVALID_ARGUMENT, "n2_max must be -1 (unknown) or >= 0");
    } else {
        require(a.n1 >= 1, TCA_ERROR_SHAPE_MISMATCH, "decode needs at least one key");
    }
    if (a.probs) {
        require(a.probs_n >= 1 && a.probs_n <= a.n1, TCA_ERROR_SHAPE_MISMATCH, "probs_n outside segment 1");
        check_view(a.probs, words(a.k1.heads, a.probs_n, "probs"), "probs");
    }
}

void validate(const ScoreArgs& a) {
    check_tensor(a.k, "k");
    check_q_kv(a.q, a.k);
    require(a.q_row >= 0 && a.q_row < a.q.tokens, TCA_ERROR_SHAPE_MISMATCH, "q_row outside q");
    require(a.n_keys >= 1 && a.n_keys <= a.k.tokens, TCA_ERROR_SHAPE_MISMATCH, "n_keys outside k");
    require(a.s_stride >= a.n_keys, TCA_ERROR_INVALID_ARGUMENT, "s_stride < n_keys");
    check_view(a.s, words(a.k.heads, a.s_stride, "s"), "s");
}

void validate(const MetricArgs& a) {
    require(a.heads >= 1 && a.n_global >= 1 && a.s_stride >= a.n_global, TCA_ERROR_INVALID_ARGUMENT,
            "metric: bad heads / n_global / s_stride");
    require(a.block >= 1, TCA_ERROR_INVALID_ARGUMENT, "block must be >= 1");
    check_view(a.s, words(a.heads, a.s_stride, "s"), "s");
    check_view(a.h, words(a.heads, n_blocks_of(a.n_global, a.block), "h"), "h");
}

void validate(const RankArgs& a) {
    require(a.heads >= 1 && a.n_blocks >= 1, TCA_ERROR_INVALID_ARGUMENT, "rank: bad heads / n_blocks");
    check_view(a.h, words(a.heads, a.n_blocks, "h"), "h");
    check_view(a.order, words(a.heads, a.n_blocks, "order"), "order");
}

void validate(const SelectArgs& a) {
    require(a.heads >= 1 && a.n_global >= 1 && a.s_stride >= a.n_global && a.block >= 1, TCA_ERROR_INVALID_ARGUMENT,
            "select: bad heads / n_global / s_stride / block");
    require(a.idx_stride >= 1, TCA_ERROR_INVALID_ARGUMENT, "select: idx_stride must be >= 1");
    const size_t nb = n_blocks_of(a.n_global, a.block);
    check_view(a.s, words(a.heads, a.s_stride, "s"), "s");
    check_view(a.order, words(a.heads, nb, "order"), "order");
    check_view(a.budget, words(a.heads, nb, "budget"), "budget");
    check_view(a.idx, words(a.heads, a.idx_stride, "idx"), "idx");
    check_view(a.count, words(a.heads, 1, "count"), "count");
}

void validate(const GatherArgs& a) {
    check_kv_pair(a.src_k, a.src_v, "src_k", "src_v");
    check_kv_pair(a.dst_k, a.dst_v, "dst_k", "dst_v");
    require(a.src_k.heads == a.dst_k.heads && a.src_k.dim == a.dst_k.dim && a.src_k.dtype == a.dst_k.dtype,
            TCA_ERROR_SHAPE_MISMATCH, "gather: source and destination differ in heads, dim or dtype");
    require(a.src_row0 >= 0, TCA_ERROR_INVALID_ARGUMENT, "gather: src_row0 < 0");
    if (a.idx) check_view(a.idx, words(a.src_k.heads, a.idx_stride, "idx"), "idx");
    if (a.count) check_view(a.count, words(a.src_k.heads, 1, "count"), "count");
    else require(a.uniform_count >= 0 && a.uniform_count <= a.dst_k.tokens, TCA_ERROR_SHAPE_MISMATCH,
                 "gather: uniform_count outside destination");
    if (a.dst_off) check_view(a.dst_off, words(a.src_k.heads, 1, "dst_off"), "dst_off");
    if (a.dst_len) check_view(a.dst_len, words(a.src_k.heads, 1, "dst_len"), "dst_len");
    if (a.pos_out) check_view(a.pos_out, words(a.src_k.heads, a.pos_stride, "pos_out"), "pos_out");
}

void validate(const ColsumArgs& a) {
    check_tensor(a.k, "k");
    check_q_kv(a.q, a.k);
    require(a.q.tokens == a.k.tokens, TCA_ERROR_SHAPE_MISMATCH, "colsum needs as many queries as keys");
    require(a.c_stride >= a.k.tokens, TCA_ERROR_INVALID_ARGUMENT, "c_stride < L");
    check_view(a.c, words(a.k.heads, a.c_stride, "c"), "c");
}

void validate(const CopyArgs& a) {
    require(a.bytes > 0 && a.bytes % 16 == 0, TCA_ERROR_INVALID_ARGUMENT,
            "copy: " + std::to_string(a.bytes) + " bytes is not a positive multiple of 16");
    for (const BufView* v : {&a.src, &a.dst}) {
        require(static_cast<bool>(*v), TCA_ERROR_INVALID_ARGUMENT, "copy: no buffer");
        require(v->offset % 16 == 0, TCA_ERROR_INVALID_ARGUMENT, "copy: offset not 16-byte aligned");
        require(range_fits(v->offset, a.bytes, v->buf->size), TCA_ERROR_SHAPE_MISMATCH, "copy: range runs past its buffer");
    }
    // Both ranges fit their buffers (checked above), so these sums cannot wrap.
    require(a.src.buf != a.dst.buf || a.src.offset + a.bytes <= a.dst.offset || a.dst.offset + a.bytes <= a.src.offset,
            TCA_ERROR_INVALID_ARGUMENT, "copy: source and destination overlap");
}

void validate(const GemmArgs& a) {
    require(a.m > 0 && a.n > 0 && a.k > 0, TCA_ERROR_INVALID_ARGUMENT,
            "gemm: sizes must be positive (m=" + std::to_string(a.m) + ", n=" + std::to_string(a.n) +
                ", k=" + std::to_string(a.k) + ")");
    const size_t es = dtype_size(a.dtype);
    const struct {
        const BufView* v;
        size_t bytes;
        const char* what;
    } mats[] = {{&a.a, checked_product({a.m, a.k, int64_t(es)}, "gemm: a"), "a"},
                {&a.b, checked_product({a.k, a.n, int64_t(es)}, "gemm: b"), "b"},
                {&a.c, checked_product({a.m, a.n, int64_t(es)}, "gemm: c"), "c"}};
    for (const auto& x : mats) {
        require(static_cast<bool>(*x.v), TCA_ERROR_INVALID_ARGUMENT, std::string("gemm: ") + x.what + ": no buffer");
        require(x.v->offset % es == 0, TCA_ERROR_INVALID_ARGUMENT,
                std::string("gemm: ") + x.what + ": offset not aligned to the element size");
        require(range_fits(x.v->offset, x.bytes, x.v->buf->size), TCA_ERROR_SHAPE_MISMATCH,
                std::string("gemm: ") + x.what + " runs past the end of its buffer");
    }
    require(a.c.buf != a.a.buf && a.c.buf != a.b.buf, TCA_ERROR_INVALID_ARGUMENT,
            "gemm: c must not share a buffer with a or b");
}

void validate(const FmaArgs& a) {
    require(a.items > 0 && a.iters > 0, TCA_ERROR_INVALID_ARGUMENT, "fma probe: items and iters must be positive");
    require(a.dtype == DType::f32 || a.dtype == DType::f16, TCA_ERROR_INVALID_ARGUMENT, "fma probe: dtype must be f32 or f16");
    require(std::isfinite(a.a) && std::isfinite(a.b) && std::fabs(a.a) < 1.f, TCA_ERROR_INVALID_ARGUMENT,
            "fma probe: a and b must be finite and |a| < 1 (a contracting recurrence)");
    require(static_cast<bool>(a.out), TCA_ERROR_INVALID_ARGUMENT, "fma probe: no output buffer");
    require(a.out.offset % 4 == 0, TCA_ERROR_INVALID_ARGUMENT, "fma probe: output offset not 4-byte aligned");
    require(range_fits(a.out.offset, checked_product({int64_t(a.items), 4}, "fma probe: output bytes"), a.out.buf->size),
            TCA_ERROR_SHAPE_MISMATCH, "fma probe: output runs past its buffer");
}

}  // namespace tca::detail
