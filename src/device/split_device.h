// Tensors larger than the device's largest buffer, stored as several buffers of whole heads.
//
// Every device open_device() returns is a SplitDevice around its backend. alloc_heads() past the
// buffer limit gives a SplitBuffer: consecutive ranges of rows (heads), each range in a backend
// buffer of its own. Views into a SplitBuffer keep logical byte offsets, so the method's offset
// arithmetic (row views, per-head side arrays) does not change; read/write/fill_zero go piece by
// piece. An op whose arguments touch a SplitBuffer runs as the same op on consecutive ranges of
// KV heads, each range as long as every argument's rows for it lie inside one backend buffer:
// the backend only ever sees plain buffers, and each head is computed by the same kernel with
// the same parameters as in the whole op, so results are bit-identical to an unsplit run. When an
// argument's rows of a single KV head straddle two buffers (a query tensor whose pieces do not
// line up with its GQA groups), that range goes through a temporary buffer instead.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "device/device.h"

namespace tca::detail {

// A logical buffer stored as pieces, each a backend buffer holding whole rows of row_bytes.
struct SplitBuffer final : BufferImpl {
    struct Piece {
        size_t begin = 0;  // logical offset of the piece's first byte
        Buffer buf;
    };
    std::vector<Piece> pieces;  // ascending; pieces[0].begin == 0; together they tile [0, size)
    size_t row_bytes = 0;
    // The piece holding logical byte `offset` (< size).
    const Piece& piece_at(size_t offset) const;
};

// `inner` behind the splitting layer. max_buffer_bytes: the largest buffer to allocate; 0 means
// the device's own max_allocation, a smaller value forces splitting (BackendOptions, tests).
// info().max_allocation reports the limit in force.
std::unique_ptr<Device> make_split_device(std::unique_ptr<Device> inner, uint64_t max_buffer_bytes);

}  // namespace tca::detail
