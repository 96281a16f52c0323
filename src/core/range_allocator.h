// First-fit allocation of byte ranges of one region, free ranges kept coalesced. Used where memory is
// reserved once and handed out in pieces: the Vulkan backend's memory blocks (vk_suballoc.h) and
// the cache pools (method/cache_pool.h). Not thread-safe; its owners lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>

namespace tca::detail {

class RangeAllocator {
public:
    explicit RangeAllocator(uint64_t size);
    // The offset of `bytes` bytes aligned to `align` (a power of two), or false when no free range fits.
    bool allocate(uint64_t bytes, uint64_t align, uint64_t* offset);
    // Returns [offset, offset + bytes) as allocate() gave it.
    void free(uint64_t offset, uint64_t bytes);
    uint64_t size() const { return size_; }
    uint64_t free_bytes() const { return free_bytes_; }
    bool empty() const { return free_bytes_ == size_; }
    size_t free_ranges() const { return free_.size(); }

private:
    uint64_t size_, free_bytes_;
    std::map<uint64_t, uint64_t> free_;  // offset -> length
};

}  // namespace tca::detail
