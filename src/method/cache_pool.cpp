// Cache pools: ranges of one reserved buffer (cache_pool.h).
#include "method/cache_pool.h"

#include <algorithm>
#include <string>

#include "core/checked.h"

namespace tca::detail::method {

namespace {

// Owns one range; frees it when the last Buffer handle sharing it is gone.
struct RangeToken {
    std::shared_ptr<void> state;  // keeps the pool's state (and its buffer) alive
    std::mutex* mu = nullptr;
    RangeAllocator* ranges = nullptr;
    uint64_t offset = 0, bytes = 0;
    ~RangeToken() {
        std::lock_guard<std::mutex> lock(*mu);
        ranges->free(offset, bytes);
    }
};

}  // namespace

CachePool::CachePool(Device& dev, uint64_t bytes) : ForwardingDevice(dev) {
    require(bytes > 0, TCA_ERROR_INVALID_ARGUMENT, "cache pool of 0 bytes");
    require(bytes <= dev.info().max_allocation, TCA_ERROR_OUT_OF_MEMORY,
            "cache pool of " + std::to_string(bytes) + " bytes exceeds the device's largest buffer (" +
                std::to_string(dev.info().max_allocation) + " bytes)");
    const size_t size = checked_narrow<size_t>(bytes, "cache pool bytes");
    state_ = std::make_shared<State>(bytes);
    state_->buffer = dev.alloc(size);
    capacity_ = bytes;
}

BufView CachePool::alloc_view(size_t bytes) {
    const uint64_t want = checked_mul(uint64_t((std::max<size_t>(bytes, 1) + kAlign - 1) / kAlign), kAlign,
                                      "cache pool range bytes");
    uint64_t offset = 0;
    {
        std::lock_guard<std::mutex> lock(state_->mu);
        require(state_->ranges.allocate(want, kAlign, &offset), TCA_ERROR_OUT_OF_MEMORY,
                "cache pool full: a cache needs " + std::to_string(want) + " more bytes, " +
                    std::to_string(state_->ranges.free_bytes()) + " of " + std::to_string(capacity_) +
                    " are free (in pieces)");
    }
    auto token = std::make_shared<RangeToken>();
    token->state = state_, token->mu = &state_->mu, token->ranges = &state_->ranges;
    token->offset = offset, token->bytes = want;
    // Aliasing: shares the token's ownership, points at the pool's buffer.
    return BufView{Buffer(token, state_->buffer.get()), size_t(offset)};
}

BufView CachePool::alloc_heads_view(size_t heads, size_t head_bytes, size_t) {
    return alloc_view(checked_mul(heads, head_bytes, "cache pool rows bytes"));
}

uint64_t CachePool::used() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return capacity_ - state_->ranges.free_bytes();
}

}  // namespace tca::detail::method
