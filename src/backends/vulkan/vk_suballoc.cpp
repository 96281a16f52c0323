// The sub-allocator of vk_suballoc.h: a coalescing first-fit free list per block.
#include "backends/vulkan/vk_suballoc.h"

#include <algorithm>

#include "core/error.h"

namespace tca::detail::vulkan {

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
