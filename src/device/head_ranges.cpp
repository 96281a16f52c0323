#include "device/head_ranges.h"

#include <algorithm>
#include <string>

#include "device/split_device.h"

namespace tca::detail {

bool is_split(const BufView& v) { return v.buf && dynamic_cast<const SplitBuffer*>(v.buf.get()) != nullptr; }

void HeadRanges::tensor(Tensor& t, bool query, bool written) {
    if (!t.data) return;
    const size_t es = dtype_size(t.dtype);
    const size_t used = (size_t(t.tokens - 1) * size_t(t.token_stride) + size_t(t.dim)) * es;
    args_.push_back(Arg{&t.data, &t, t.data, t.head_stride, size_t(t.head_stride) * es, used, query, written});
}

void HeadRanges::rows(BufView& v, size_t elems, bool written) {
    if (!v) return;
    args_.push_back(Arg{&v, nullptr, v, 0, elems * 4, elems * 4, false, written});
}

size_t HeadRanges::rows_fit(const Arg& a, size_t r0, size_t most) const {
    if (!is_split(a.whole)) return most;
    const size_t first = a.whole.offset + r0 * a.stride;
    const SplitBuffer::Piece& p = static_cast<const SplitBuffer&>(*a.whole.buf).piece_at(first);
    const size_t end = p.begin + p.buf->size;
    if (first + a.used > end) return 0;  // row r0 itself crosses into the next buffer
    if (a.stride == 0) return most;      // every head reads the same row
    const size_t rows_ending_inside = (end - a.used - a.whole.offset) / a.stride + 1;  // counted from row 0
    return std::min(rows_ending_inside - r0, most);
}

void HeadRanges::place(const Arg& a, size_t r0, size_t n, std::vector<Staged>& staged) {
    const size_t first = a.whole.offset + r0 * a.stride;
    if (a.tensor) a.tensor->head_stride = a.head_stride;
    if (!is_split(a.whole)) {
        *a.slot = BufView{a.whole.buf, first};
        return;
    }
    const SplitBuffer::Piece& p = static_cast<const SplitBuffer&>(*a.whole.buf).piece_at(first);
    if (first + (n - 1) * a.stride + a.used <= p.begin + p.buf->size) {
        *a.slot = BufView{p.buf, first - p.begin};
        return;
    }
    // The rows lie in two buffers: the sub-op works on a packed copy of them.
    const size_t packed = n * a.used;
    const uint64_t limit = outer_.info().max_allocation;
    require(packed <= limit, TCA_ERROR_OUT_OF_MEMORY,
            "the rows of " + std::to_string(n) + " heads one op needs together (" + std::to_string(packed) +
                " bytes: a GQA group of query heads) lie in two buffers and exceed " + outer_.info().name +
                "'s largest buffer of " + std::to_string(limit) + " bytes");
    Staged s{&a, r0, n, outer_.alloc(packed)};
    std::vector<unsigned char> host(packed);
    for (size_t i = 0; i < n; ++i) outer_.read(BufView{a.whole.buf, first + i * a.stride}, host.data() + i * a.used, a.used);
    inner_.write(BufView{s.temp, 0}, host.data(), packed);
    *a.slot = BufView{s.temp, 0};
    if (a.tensor) a.tensor->head_stride = int64_t(a.used / dtype_size(a.tensor->dtype));
    staged.push_back(std::move(s));
}

void HeadRanges::run(int kv_heads, bool partial_groups, const std::function<void(const Range&)>& body) {
    const int g = group_, hq = kv_heads * g;
    for (int q0 = 0; q0 < hq;) {
        Range r{q0, 0, q0 / g, 0};
        bool whole = q0 % g == 0;
        if (whole) {
            size_t nkv = size_t(kv_heads - r.kv0);
            bool straddles = false;
            for (const Arg& a : args_) {
                const size_t f = a.query ? rows_fit(a, size_t(q0), nkv * g) / g : rows_fit(a, size_t(r.kv0), nkv);
                if (f == 0)
                    straddles = true;
                else
                    nkv = std::min(nkv, f);
            }
            if (straddles) nkv = 1;  // one group: in parts where allowed, else staged
            whole = !(straddles && partial_groups);
            r.nkv = int(nkv), r.nq = int(nkv) * g;
        }
        if (!whole) {  // query heads from q0 to the end of the group, as far as one buffer holds them
            r.nkv = 1;
            size_t nq = size_t(g - q0 % g);
            for (const Arg& a : args_)
                if (a.query)
                    if (const size_t f = rows_fit(a, size_t(q0), nq); f > 0) nq = std::min(nq, f);
            r.nq = int(nq);
        }
        std::vector<Staged> staged;
        for (const Arg& a : args_)
            place(a, size_t(a.query ? r.q0 : r.kv0), size_t(a.query ? r.nq : r.nkv), staged);
        body(r);
        for (const Staged& s : staged) {
            if (!s.arg->written) continue;
            const Arg& a = *s.arg;
            std::vector<unsigned char> host(s.n * a.used);
            inner_.read(BufView{s.temp, 0}, host.data(), host.size());
            for (size_t i = 0; i < s.n; ++i)
                outer_.write(BufView{a.whole.buf, a.whole.offset + (s.r0 + i) * a.stride}, host.data() + i * a.used, a.used);
        }
        q0 += r.nq;
    }
}

}  // namespace tca::detail
