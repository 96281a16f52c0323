// Vulkan backend: recording into the caller's command buffer (tca.h, "recording into your command
// buffer"). While a recording is open, cmd() is the caller's command buffer: every call appends its
// dispatches, copies and barriers there, submit() and flush() do nothing, and whatever would wait
// for the device is refused. The recording's descriptor sets come from pools of its own and every
// buffer its commands reference is kept alive; end_recording() files both under a ticket, which the
// caller releases once its submission has completed (the library cannot see the caller's fence).
#include <cstring>

#include "backends/vulkan/vk_device.h"
#include "core/checked.h"

namespace tca::detail::vulkan {

namespace {

constexpr VkPipelineStageFlags kOurStages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
constexpr VkAccessFlags kOurWrites = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
constexpr VkAccessFlags kOurAccesses =
    VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;

}  // namespace

void VulkanDevice::begin_recording(VkCommandBuffer cb) {
    require(ctx_->external, TCA_ERROR_UNSUPPORTED,
            "vulkan: recording into your command buffer needs a context made by tca_context_create_vulkan "
            "(a library-made context owns its queue)");
    require(cb != VK_NULL_HANDLE, TCA_ERROR_INVALID_ARGUMENT, "vulkan: null VkCommandBuffer");
    require(!rec_, TCA_ERROR_INVALID_ARGUMENT,
            "vulkan: a recording is already open on this context (tca_context_vulkan_end_recording closes it)");
    require(!profiling_, TCA_ERROR_UNSUPPORTED,
            "vulkan: profiling is on; its timestamps are read back after each call, which a recording cannot do "
            "(tca_context_set_profiling(ctx, 0) first)");
    // Commands the library recorded but has not submitted (a new tensor's zero fill) reach the queue
    // now, ahead of the caller's command buffer; the opening barrier below orders them.
    if (recording_) end_and_submit();
    auto f = std::make_unique<Frame>();
    f->cb = cb;
    f->pools = std::move(spare_pools_);
    spare_pools_.clear();
    // Everything of ours earlier in the queue's submission order (earlier recordings, blocking calls)
    // and earlier in this command buffer is complete and visible before this recording's commands
    // touch the library's buffers: a pipeline barrier orders against all of them.
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = kOurWrites;
    mb.dstAccessMask = kOurAccesses;
    vkCmdPipelineBarrier(cb, kOurStages, kOurStages, 0, 1, &mb, 0, nullptr, 0, nullptr);
    rec_ = std::move(f);
    cb_ = cb;
    recording_ = true;
    queries_reset_ = false;
    written_.clear();
    read_.clear();
    dummy_slots_used_ = 0;
}

uint64_t VulkanDevice::end_recording() {
    require(rec_ != nullptr, TCA_ERROR_INVALID_ARGUMENT,
            "vulkan: no recording is open on this context (tca_context_vulkan_begin_recording opens one)");
    // Device writes made available to host reads once the caller's fence has signalled (mapped
    // memory read by tca_tensor_download and the cache's exact reads after the release).
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = kOurWrites;
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(rec_->cb, kOurStages, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr, 0, nullptr);
    rec_->keep_alive = std::move(keep_alive_);
    keep_alive_.clear();
    rec_->cb = VK_NULL_HANDLE;  // the caller's: never reset or freed here
    const uint64_t ticket = next_ticket_++;
    tickets_[ticket] = std::move(rec_);
    rec_.reset();
    recording_ = false;
    cb_ = VK_NULL_HANDLE;
    written_.clear();
    read_.clear();
    dummy_slots_used_ = 0;
    return ticket;
}

void VulkanDevice::release_recording(uint64_t ticket) {
    auto it = tickets_.find(ticket);
    require(it != tickets_.end(), TCA_ERROR_INVALID_ARGUMENT,
            "vulkan: unknown recording ticket " + std::to_string(ticket) +
                " (not returned by tca_context_vulkan_end_recording on this context, or released already)");
    Frame& f = *it->second;
    for (VkDescriptorPool p : f.pools) VK_CHECK(vkResetDescriptorPool(ctx_->device, p, 0));
    spare_pools_.insert(spare_pools_.end(), f.pools.begin(), f.pools.end());
    f.pools.clear();
    tickets_.erase(it);  // drops the buffers it kept alive
}

uint64_t VulkanDevice::ticket_using(const BufferImpl* b) const {
    for (const auto& [ticket, f] : tickets_)
        for (const Buffer& x : f->keep_alive)
            if (x.get() == b) return ticket;
    return 0;
}

void VulkanDevice::check_host_read(const BufferImpl* b) const {
    require(!rec_, TCA_ERROR_INVALID_ARGUMENT,
            "vulkan: this call reads results on the host, but a recording into your command buffer is open: "
            "its commands have not run (end the recording, submit it, wait, tca_context_vulkan_release first)");
    const uint64_t t = ticket_using(b);
    require(t == 0, TCA_ERROR_INVALID_ARGUMENT,
            "vulkan: this call reads a buffer that recording ticket " + std::to_string(t) +
                " uses; once your submission of it has completed, tca_context_vulkan_release it first");
}

void VulkanDevice::write_recorded(const BufView& dst, const void* src, size_t bytes) {
    if (dst.offset % 4 == 0 && bytes % 4 == 0) return update(dst, src, bytes);
    // vkCmdUpdateBuffer works in words: a fresh staging buffer (kept alive with the commands) instead.
    Buffer staging = make_buffer(bytes, true);
    std::memcpy(vk(staging)->mapped, src, bytes);
    copy(BufView{staging, 0}, dst, bytes);
}

void VulkanDevice::set_profiling(bool on) {
    require(!(on && rec_), TCA_ERROR_UNSUPPORTED,
            "vulkan: profiling cannot start while a recording into your command buffer is open");
    profiling_ = on;
}

}  // namespace tca::detail::vulkan
