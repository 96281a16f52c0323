// The sub-allocator of vk_suballoc.h: a coalescing first-fit free list per block.
#include "backends/vulkan/vk_suballoc.h"

#include <algorithm>

#include "core/error.h"

namespace tca::detail::vulkan {

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

SubAllocator::SubAllocator(uint64_t block_size, CreateFn create, DestroyFn destroy)
    : block_size_(block_size), create_(std::move(create)), destroy_(std::move(destroy)) {}

SubAllocator::~SubAllocator() {
    for (auto& b : blocks_) destroy_(b->mem);
}

SubAllocation SubAllocator::allocate(uint32_t key, uint64_t bytes, uint64_t align) {
    require(bytes > 0 && align > 0 && (align & (align - 1)) == 0, TCA_ERROR_INTERNAL,
            "vulkan: sub-allocation of 0 bytes or with an alignment that is not a power of two");
    std::lock_guard<std::mutex> lock(mu_);
    auto take = [&](Block& b) -> SubAllocation {
        uint64_t off = 0;
        if (!b.ranges.allocate(bytes, align, &off)) return {};
        ++b.live;
        return {b.mem.handle, off, bytes, b.mem.mapped ? b.mem.mapped + off : nullptr, key};
    };
    if (bytes <= block_size_)
        for (auto& b : blocks_)
            if (b->key == key && !b->dedicated)
                if (SubAllocation a = take(*b); a.valid()) return a;
    // A fresh block. Block starts are aligned by the driver (vkAllocateMemory honours every
    // buffer alignment), so offset 0 suits any request.
    auto add = [&](uint64_t size, bool dedicated) -> Block& {
        MemoryBlock m = create_(key, size);
        blocks_.push_back(std::unique_ptr<Block>(new Block{m, RangeAllocator(size), dedicated, key}));
        return *blocks_.back();
    };
    if (bytes < block_size_) {
        try {
            return take(add(block_size_, false));
        } catch (const Error& e) {
            if (e.code() != TCA_ERROR_OUT_OF_MEMORY) throw;
            // Not a whole block left on the device: try the request's own size below.
        }
    }
    return take(add(bytes, true));
}

void SubAllocator::free(const SubAllocation& a) {
    if (!a.valid()) return;
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < blocks_.size(); ++i) {
        Block& b = *blocks_[i];
        if (b.mem.handle != a.memory) continue;
        b.ranges.free(a.offset, a.bytes);
        --b.live;
        if (b.live == 0) {
            const bool last_of_key = !b.dedicated && std::none_of(blocks_.begin(), blocks_.end(), [&](const auto& o) {
                return o.get() != &b && o->key == b.key && !o->dedicated;
            });
            if (!last_of_key) release_locked(i);
        }
        return;
    }
}

void SubAllocator::release_locked(size_t i) {
    destroy_(blocks_[i]->mem);
    blocks_.erase(blocks_.begin() + std::ptrdiff_t(i));
}

size_t SubAllocator::blocks() const {
    std::lock_guard<std::mutex> lock(mu_);
    return blocks_.size();
}

size_t SubAllocator::dedicated_blocks() const {
    std::lock_guard<std::mutex> lock(mu_);
    return size_t(std::count_if(blocks_.begin(), blocks_.end(), [](const auto& b) { return b->dedicated; }));
}

}  // namespace tca::detail::vulkan
