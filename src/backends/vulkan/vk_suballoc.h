// The Vulkan backend's memory sub-allocator, free of Vulkan types so that tests can drive it alone.
//
// Why: a vkAllocateMemory per buffer is slow on every driver and counted against a small limit
// (maxMemoryAllocationCount, 4096 on many GPUs), while a TCA context makes many small buffers (per-head
// counts, staging for every read and write). So buffers live in a few large blocks per memory type,
// each bound at an offset that honours the buffer's alignment; freed ranges are reused.
//
// Policy: a request goes first-fit into an existing block of its key (memory type + mapped or not);
// when none has room, a new block of block_size bytes is made. A request larger than block_size, or
// one for which a full block cannot be had (the device is nearly full), gets a block of its own size
// ("dedicated"). A block left empty is released unless it is the last block of its key.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "core/range_allocator.h"

namespace tca::detail::vulkan {

using tca::detail::RangeAllocator;

// One block of device memory, as the owner's create hook made it.
struct MemoryBlock {
    uint64_t handle = 0;              // VkDeviceMemory, as an integer
    unsigned char* mapped = nullptr;  // the host view of the whole block, when mapped
};

// Where one allocation lives. Freed through the SubAllocator that made it.
struct SubAllocation {
    uint64_t memory = 0;   // the block's handle
    uint64_t offset = 0;   // in the block, aligned as asked
    uint64_t bytes = 0;
    unsigned char* mapped = nullptr;  // block's mapping + offset, or null
    uint32_t key = 0;
    bool valid() const { return memory != 0; }
};

class SubAllocator {
public:
    // create(key, bytes, &block) makes a block or throws the backend's Error (out of memory: its
    // status). destroy(block) frees it. key: the caller's memory-type key (type index * 2 + mapped).
    using CreateFn = std::function<MemoryBlock(uint32_t key, uint64_t bytes)>;
    using DestroyFn = std::function<void(const MemoryBlock&)>;

    SubAllocator(uint64_t block_size, CreateFn create, DestroyFn destroy);
    ~SubAllocator();
    SubAllocator(const SubAllocator&) = delete;
    SubAllocator& operator=(const SubAllocator&) = delete;

    // `bytes` (> 0) aligned to `align` (a power of two). Throws what create() throws.
    SubAllocation allocate(uint32_t key, uint64_t bytes, uint64_t align);
    void free(const SubAllocation& a);

    uint64_t block_size() const { return block_size_; }
    size_t blocks() const;            // blocks alive (dedicated ones included)
    size_t dedicated_blocks() const;  // blocks made for one large request

private:
    struct Block {
        MemoryBlock mem;
        RangeAllocator ranges;
        bool dedicated;
        uint32_t key;
        size_t live = 0;  // allocations in it
    };
    void release_locked(size_t i);

    uint64_t block_size_;
    CreateFn create_;
    DestroyFn destroy_;
    mutable std::mutex mu_;
    std::vector<std::unique_ptr<Block>> blocks_;
};

}  // namespace tca::detail::vulkan
