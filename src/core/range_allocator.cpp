// The first-fit range allocator of range_allocator.h.
#include "core/range_allocator.h"

#include <iterator>

namespace tca::detail {

RangeAllocator::RangeAllocator(uint64_t size) : size_(size), free_bytes_(size) {
    if (size > 0) free_[0] = size;
}

bool RangeAllocator::allocate(uint64_t bytes, uint64_t align, uint64_t* offset) {
    if (bytes == 0 || align == 0 || (align & (align - 1)) != 0) return false;
    for (auto it = free_.begin(); it != free_.end(); ++it) {
        const uint64_t start = it->first, len = it->second;
        const uint64_t aligned = (start + align - 1) / align * align;  // start < size_ <= 2^63: no overflow
        if (aligned - start > len || len - (aligned - start) < bytes) continue;
        const uint64_t end = start + len;
        free_.erase(it);
        if (aligned > start) free_[start] = aligned - start;            // the padding stays free
        if (aligned + bytes < end) free_[aligned + bytes] = end - (aligned + bytes);
        free_bytes_ -= bytes;
        *offset = aligned;
        return true;
    }
    return false;
}

void RangeAllocator::free(uint64_t offset, uint64_t bytes) {
    if (bytes == 0) return;
    uint64_t start = offset, len = bytes;
    auto next = free_.lower_bound(offset);
    if (next != free_.begin()) {  // merge with the free range just before
        auto prev = std::prev(next);
        if (prev->first + prev->second == offset) {
            start = prev->first;
            len += prev->second;
            free_.erase(prev);
        }
    }
    if (next != free_.end() && offset + bytes == next->first) {  // and with the one just after
        len += next->second;
        free_.erase(next);
    }
    free_[start] = len;
    free_bytes_ += bytes;
}

}  // namespace tca::detail
