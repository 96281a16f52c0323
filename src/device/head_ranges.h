// How SplitDevice runs one op over split buffers: as the same op on consecutive head ranges.
//
// Each head-indexed argument is registered with a reference to its view in a copy of the op's
// arguments (the sub-op), as indexed by query heads (q, o) or by KV heads (everything else).
// run() walks the heads in ranges such that every argument's rows of a range lie inside one
// backend buffer, points each view at that buffer, and calls the body, which sets the head counts
// and issues the sub-op. Ranges are whole GQA groups; an op whose query heads are independent
// (prefill) may also take part of a group, when a group's query rows straddle two buffers.
// Otherwise an argument whose rows of one range straddle two buffers is staged: its rows are
// copied into a temporary buffer (compactly, one row after another) and, if the op writes it,
// back after the op.
#pragma once

#include <functional>
#include <vector>

#include "device/device.h"

namespace tca::detail {

// True when v views a SplitBuffer.
bool is_split(const BufView& v);

class HeadRanges {
public:
    // outer: the splitting device (reads and writes logical views); inner: its backend.
    // group: query heads per KV head (1 for ops without query tensors).
    HeadRanges(Device& outer, Device& inner, int group) : outer_(outer), inner_(inner), group_(group) {}

    // A [heads, tokens, dim] tensor indexed by query heads (query) or KV heads.
    void tensor(Tensor& t, bool query, bool written);
    // A per-KV-head int32 / float32 array of `elems` elements a row.
    void rows(BufView& v, size_t elems, bool written);

    // Query heads [q0, q0 + nq) and KV heads [kv0, kv0 + nkv) of one sub-op: whole groups
    // (nq = nkv * group), or part of one group (nkv = 1, nq < group) when partial groups are allowed.
    struct Range {
        int q0, nq, kv0, nkv;
    };
    // Calls body once per range, covering every head, with every registered view pointing at its rows.
    void run(int kv_heads, bool partial_groups, const std::function<void(const Range&)>& body);

private:
    struct Arg {
        BufView* slot;   // the view in the sub-op's arguments
        Tensor* tensor;  // the sub-op's tensor (its head stride changes when staged), or null
        BufView whole;   // the view in the whole op's arguments
        int64_t head_stride;  // the whole op's, in elements (tensors)
        size_t stride;   // bytes from one row to the next
        size_t used;     // bytes of a row the op may touch, from its start
        bool query;      // rows are query heads
        bool written;
    };
    // Rows from r0 (at most `most`) that lie in the buffer holding row r0; 0 if row r0 straddles.
    size_t rows_fit(const Arg& a, size_t r0, size_t most) const;
    // Points a's view at rows [r0, r0 + n); stages them when they straddle buffers.
    struct Staged {
        const Arg* arg;
        size_t r0, n;
        Buffer temp;
    };
    void place(const Arg& a, size_t r0, size_t n, std::vector<Staged>& staged);

    Device& outer_;
    Device& inner_;
    int group_;
    std::vector<Arg> args_;
};

}  // namespace tca::detail
