// A cache pool (tca.h, tca_cache_pool_create): one device buffer reserved once, from which caches
// take their memory as ranges, the way serving runtimes reserve their KV memory up front.
//
// Why: the batched ops (Device::decode_batch and friends) run many sequences in one dispatch only
// when their rows are reached through the same buffers; caches of one pool are. The pool is a
// device decorator: a session made on it allocates through alloc_view / alloc_heads_view, which
// return views into the pool's buffer, and runs its ops on the device underneath unchanged.
// A view's range goes back to the pool when the last copy of its Buffer handle dies (the handle
// shares ownership with a token that frees the range, and points at the pool's buffer itself, so
// backends see one buffer).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "core/range_allocator.h"
#include "device/forwarding_device.h"

namespace tca::detail::method {

class CachePool final : public ForwardingDevice {
public:
    // Ranges are aligned to this (covers every element type and vector load of the kernels).
    static constexpr uint64_t kAlign = 256;

    // One buffer of `bytes` on dev (TCA_ERROR_OUT_OF_MEMORY past the device's max_allocation).
    CachePool(Device& dev, uint64_t bytes);

    BufView alloc_view(size_t bytes) override;
    BufView alloc_heads_view(size_t heads, size_t head_bytes, size_t align = 1) override;

    uint64_t used() const;
    uint64_t capacity() const { return capacity_; }

private:
    struct State {
        std::mutex mu;
        RangeAllocator ranges;
        Buffer buffer;
        explicit State(uint64_t size) : ranges(size) {}
    };
    std::shared_ptr<State> state_;
    uint64_t capacity_ = 0;
};

}  // namespace tca::detail::method
