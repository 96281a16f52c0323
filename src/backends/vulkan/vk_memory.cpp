// Vulkan backend: buffers (sub-allocated from a few large memory blocks, vk_suballoc.h), staging
// copies for memory the host cannot map, internal scratch and the dummy binding.
#include <algorithm>
#include <cstring>

#include "backends/vulkan/vk_device.h"
#include "core/checked.h"

namespace tca::detail::vulkan {

namespace {

VkDeviceMemory as_memory(uint64_t h) {
#if VK_USE_64_BIT_PTR_DEFINES
    return reinterpret_cast<VkDeviceMemory>(static_cast<uintptr_t>(h));
#else
    return static_cast<VkDeviceMemory>(h);
#endif
}

uint64_t as_handle(VkDeviceMemory m) {
#if VK_USE_64_BIT_PTR_DEFINES
    return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(m));
#else
    return static_cast<uint64_t>(m);
#endif
}

}  // namespace

// Blocks are keyed by memory type * 2 + mapped; a mapped block is mapped once, whole.
MemoryPools::MemoryPools(std::shared_ptr<Context> c, uint64_t block_size)
    : ctx(std::move(c)),
      blocks(
          block_size,
          [this](uint32_t key, uint64_t bytes) {
              VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
              mai.allocationSize = bytes;
              mai.memoryTypeIndex = key / 2;
              VkDeviceMemory mem = VK_NULL_HANDLE;
              const VkResult r = vkAllocateMemory(ctx->device, &mai, nullptr, &mem);
              if (r != VK_SUCCESS) fail(r, "vkAllocateMemory", TCA_ERROR_OUT_OF_MEMORY);
              MemoryBlock b{as_handle(mem), nullptr};
              if (key & 1) {
                  void* p = nullptr;
                  const VkResult rm = vkMapMemory(ctx->device, mem, 0, VK_WHOLE_SIZE, 0, &p);
                  if (rm != VK_SUCCESS) {
                      vkFreeMemory(ctx->device, mem, nullptr);
                      fail(rm, "vkMapMemory");
                  }
                  b.mapped = static_cast<unsigned char*>(p);
              }
              return b;
          },
          [this](const MemoryBlock& b) { vkFreeMemory(ctx->device, as_memory(b.handle), nullptr); }) {}

VkBuf::~VkBuf() {
    if (!owned) return;
    if (buffer) vkDestroyBuffer(ctx->device, buffer, nullptr);
    if (pools) pools->blocks.free(memory);
}

Buffer VulkanDevice::alloc(size_t bytes) {
    require(bytes <= info_.max_allocation, TCA_ERROR_OUT_OF_MEMORY,
            "vulkan: allocation of " + std::to_string(bytes) + " bytes exceeds the device maximum of " +
                std::to_string(info_.max_allocation));
    return make_buffer(bytes, false);
}

void VulkanDevice::write(const BufView& dst, const void* src, size_t bytes) {
    require(range_fits(dst.offset, bytes, dst.buf->size), TCA_ERROR_SHAPE_MISMATCH, "write past the end of a buffer");
    if (!bytes) return;
    VkBuf* b = vk(dst.buf);
    // Commands of a recording into the caller's command buffer may use the buffer until the caller's
    // submission has run, which the library cannot wait for: the write goes in as a command, ordered
    // after them (tca.h: the caller submits in ticket order, before later blocking calls).
    const bool cannot_wait = rec_ || ticket_using(b);
    if (b->mapped) {
        // Commands recorded or queued earlier may still read the old contents; a buffer none of
        // them uses is written at once (an upload then never makes the next call wait).
        if (!in_use(b)) {
            std::memcpy(b->mapped + dst.offset, src, bytes);
            return;
        }
        if (cannot_wait) return write_recorded(dst, src, bytes);
        submit_and_wait();
        std::memcpy(b->mapped + dst.offset, src, bytes);
        return;
    }
    if (cannot_wait) return write_recorded(dst, src, bytes);
    Buffer staging = make_buffer(bytes, true);
    std::memcpy(vk(staging)->mapped, src, bytes);
    copy(BufView{staging, 0}, dst, bytes);
    submit_and_wait();
}

void VulkanDevice::read(const BufView& src, void* dst, size_t bytes) {
    require(range_fits(src.offset, bytes, src.buf->size), TCA_ERROR_SHAPE_MISMATCH, "read past the end of a buffer");
    VkBuf* b = vk(src.buf);
    check_host_read(b);
    ++counters_.readbacks;
    if (b->mapped) {
        submit_and_wait();
        if (bytes) std::memcpy(dst, b->mapped + src.offset, bytes);
        return;
    }
    if (!bytes) return submit_and_wait();
    Buffer staging = make_buffer(bytes, true);
    copy(src, BufView{staging, 0}, bytes);
    submit_and_wait();
    std::memcpy(dst, vk(staging)->mapped, bytes);
}

void VulkanDevice::fill_zero(const BufView& dst, size_t bytes) {
    require(range_fits(dst.offset, bytes, dst.buf->size), TCA_ERROR_SHAPE_MISMATCH, "fill past the end of a buffer");
    if (!bytes) return;
    if (dst.offset % 4 || bytes % 4) {  // vkCmdFillBuffer works in words; odd ranges go through the host
        std::vector<unsigned char> zeros(bytes, 0);
        write(dst, zeros.data(), bytes);
        return;
    }
    VkBuf* b = vk(dst.buf);
    hazard({}, {b->buffer});
    vkCmdFillBuffer(cmd(), b->buffer, dst.offset, bytes, 0);
    keep_alive_.push_back(dst.buf);
}


// The caller's VkBuffer (interop) as one of our buffers: bound whole like ours, never destroyed.
Buffer VulkanDevice::wrap(VkBuffer buffer, uint64_t size) {
    require(size <= info_.max_allocation, TCA_ERROR_UNSUPPORTED,
            "vulkan: a buffer of " + std::to_string(size) + " bytes exceeds the device's storage-buffer range of " +
                std::to_string(info_.max_allocation) + " bytes (every binding is a whole buffer)");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(ctx_->device, buffer, &req);
    require(size <= req.size, TCA_ERROR_INVALID_ARGUMENT,
            "vulkan: buffer_size " + std::to_string(size) + " is larger than the VkBuffer (" + std::to_string(req.size) +
                " bytes of memory requirements)");
    auto b = std::make_shared<VkBuf>();
    b->ctx = ctx_;
    b->buffer = buffer;
    b->size = size;
    b->owned = false;
    return b;
}

Buffer VulkanDevice::make_buffer(size_t bytes, bool host_staging) {
    ++counters_.allocations;
    auto b = std::make_shared<VkBuf>();
    b->ctx = ctx_;
    b->size = bytes;
    VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bci.size = std::max<size_t>((bytes + 3) & ~size_t(3), 16);  // zero-sized buffers are invalid
    bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    // Both calls may fail as a test injects (device/fault_injection.h); b's destructor frees what exists.
    VK_CHECK(fault::inject(fault::Kind::alloc) ? VK_ERROR_OUT_OF_DEVICE_MEMORY
                                               : vkCreateBuffer(ctx_->device, &bci, nullptr, &b->buffer));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(ctx_->device, b->buffer, &req);
    const VkMemoryPropertyFlags DL = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                HV = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    int type = -1;
    // Staging buffers want host-visible memory; data buffers want device-local memory that the host
    // can also map (lavapipe, iGPUs, ReBAR), else plain device-local reached through staging.
    const std::vector<VkMemoryPropertyFlags> prefs =
        host_staging ? std::vector<VkMemoryPropertyFlags>{HV}
        : staging_only_ ? std::vector<VkMemoryPropertyFlags>{DL, 0}
                        : std::vector<VkMemoryPropertyFlags>{DL | HV, DL, HV};
    for (VkMemoryPropertyFlags want : prefs) {
        type = find_memory_type(req.memoryTypeBits, want);
        if (type >= 0) break;
    }
    if (type < 0) throw Error(TCA_ERROR_BACKEND, "vulkan: no memory type for a storage buffer");
    const bool visible = pi_.mem.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT;
    const bool map = visible && (host_staging || !staging_only_);
    // A range of one of the context's memory blocks (a new block only when none has room). The
    // injected failure stands for the driver's, whether or not this buffer needed a new block.
    if (fault::inject(fault::Kind::alloc)) fail(VK_ERROR_OUT_OF_DEVICE_MEMORY, "vkAllocateMemory", TCA_ERROR_OUT_OF_MEMORY);
    b->memory = pools_->blocks.allocate(uint32_t(type) * 2 + (map ? 1 : 0), req.size, std::max<VkDeviceSize>(req.alignment, 1));
    b->pools = pools_;
    VK_CHECK(vkBindBufferMemory(ctx_->device, b->buffer, as_memory(b->memory.memory), b->memory.offset));
    b->mapped = b->memory.mapped;
    return b;
}

int VulkanDevice::find_memory_type(uint32_t bits, VkMemoryPropertyFlags want) const {
    for (uint32_t i = 0; i < pi_.mem.memoryTypeCount; ++i)
        if ((bits & (1u << i)) && (pi_.mem.memoryTypes[i].propertyFlags & want) == want) return int(i);
    return -1;
}

void VulkanDevice::copy(const BufView& src, const BufView& dst, size_t bytes) {
    hazard({vk(src.buf)->buffer}, {vk(dst.buf)->buffer});
    VkBufferCopy region{src.offset, dst.offset, bytes};
    vkCmdCopyBuffer(cmd(), vk(src.buf)->buffer, vk(dst.buf)->buffer, 1, &region);
    keep_alive_.push_back(src.buf);
    keep_alive_.push_back(dst.buf);
}

// Internal scratch (split-K partials, softmax statistics, selection counters): one grow-only buffer
// per slot. Reuse across ops is ordered by the same hazard tracking as user buffers.
BufView VulkanDevice::scratch(int slot, size_t bytes) {
    Buffer& b = scratch_[slot];
    if (!b || b->size < bytes) {
        if (b) keep_alive_.push_back(b);  // recorded commands may still use the old one
        require(bytes <= info_.max_allocation, TCA_ERROR_OUT_OF_MEMORY, "vulkan: scratch buffer past the device maximum");
        b = make_buffer(std::max<size_t>(bytes, 256), false);
    }
    return BufView{b, 0};
}

// What an absent optional binding points at: a slot of the dummy buffer that no other dispatch since
// the last barrier was given. Shaders statically write some optional bindings (behind a branch that
// is not taken when the buffer is absent), and the validation layer counts static use as access:
// one dummy shared by consecutive dispatches read as RAW/WAR/WAW hazards on it. A barrier would
// order accesses that never happen; distinct slots leave nothing to order. When every slot is
// taken, one barrier frees them all: hazard(..., true) records it before the dispatch asks for a slot.
VkDescriptorBufferInfo VulkanDevice::dummy_slot() {
    const VkDeviceSize align = std::max<VkDeviceSize>(pi_.props.limits.minStorageBufferOffsetAlignment, 4);
    const VkDeviceSize slot = (16 + align - 1) / align * align;
    if (!dummy_) dummy_ = make_buffer(size_t(slot) * kDummySlots, false);
    if (dummy_slots_used_ == kDummySlots) throw Error(TCA_ERROR_INTERNAL, "vulkan: no free dummy slot");
    return {vk(dummy_)->buffer, slot * dummy_slots_used_++, slot};
}

}  // namespace tca::detail::vulkan
