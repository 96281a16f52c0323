// The kernels' parameter blocks (src/iface) filled from the ops' arguments, shared by the OpenCL and
// Vulkan backends so both address memory identically and check every offset and stride into the
// 32 bits the kernels take (TCA_ERROR_INVALID_ARGUMENT naming the field otherwise). A single op
// passes its block by value / as push constants; a batched op (Device::*_batch) a table of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "device/device.h"
#include "iface/iface_decode.h"
#include "iface/iface_gather.h"

namespace tca::detail {

// Decode `a` in `splits` partitions of split_len rows (decode_split_plan), its scratch region
// starting at float `part_base` of the partials buffer; *part_floats gets the region's size.
DecodeParams decode_params(const DecodeArgs& a, int64_t split_len, int64_t splits, size_t part_base,
                           size_t* part_floats);

// Gather `a` with K/V offsets and strides in units of `unit_bytes` (the element size, or the
// OpenCL kernel's copy unit, which divides them); int32 arrays in elements.
GatherParams gather_params(const GatherArgs& a, size_t unit_bytes);

// Batch entries grouped by key (equal keys: one dispatch), groups in order of first appearance,
// entries in order within a group. A key lists what one dispatch must share: buffers, build constants.
std::vector<std::vector<size_t>> group_by_key(const std::vector<std::vector<uint64_t>>& keys);

// A buffer's identity for a batch key (0: absent).
inline uint64_t buffer_key(const BufView& v) { return uint64_t(reinterpret_cast<uintptr_t>(v.buf.get())); }

// What decode entries must share to run as one dispatch: every buffer as the dispatch binds it (an
// absent segment 2, n2 or probs stands in by segment 1's buffer, as the kernels never read it) and
// the shape that fixes the build constants.
std::vector<uint64_t> decode_batch_key(const DecodeArgs& a);
// The same for gather: its buffers (absent ones 0), element type and `variant` (the backend's build
// constants for the entry, e.g. its copy unit).
std::vector<uint64_t> gather_batch_key(const GatherArgs& a, uint64_t variant);

}  // namespace tca::detail
