// Vulkan backend: command recording, barrier tracking between dispatches and copies, and the ring
// of submissions (vk_device.h, "execution model").
#include <cstring>

#include "backends/vulkan/vk_device.h"
#include "core/checked.h"

namespace tca::detail::vulkan {

VkCommandBuffer VulkanDevice::cmd() {
    if (!recording_) {
        frame_ = acquire_frame();
        cb_ = frames_[frame_]->cb;
        VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
        bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
        VK_CHECK(vkBeginCommandBuffer(cb_, &bi));
        recording_ = true;
        queries_used_ = 0;
        queries_reset_ = profiling_ && query_pool_;
        if (queries_reset_) vkCmdResetQueryPool(cb_, query_pool_, 0, kMaxQueries);
        VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
        mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                           VK_ACCESS_TRANSFER_WRITE_BIT;
        const VkPipelineStageFlags ours = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
        if (ctx_->external) {
            // The caller's earlier submissions to this queue (which may have written our inputs)
            // complete, and their writes become visible, before anything of ours runs.
            mb.srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT;
            vkCmdPipelineBarrier(cb_, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, ours, 0, 1, &mb, 0, nullptr, 0, nullptr);
        } else {
            // Our earlier submissions may still run (the ring): their accesses come before this one's.
            mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
            vkCmdPipelineBarrier(cb_, ours, ours, 0, 1, &mb, 0, nullptr, 0, nullptr);
        }
    }
    return cb_;
}

// Inserts a barrier when a command about to be recorded reads or writes a buffer written since the
// last barrier (RAW, WAW), or writes one read since then (WAR), or needs a dummy slot and none is
// free (see dummy_slot). Tracking is per VkBuffer.
void VulkanDevice::hazard(const std::vector<VkBuffer>& reads, const std::vector<VkBuffer>& writes, bool takes_dummy_slot) {
    bool need = takes_dummy_slot && dummy_slots_used_ == kDummySlots;
    for (VkBuffer b : reads) need = need || written_.count(b);
    for (VkBuffer b : writes) need = need || written_.count(b) || read_.count(b);
    if (need) barrier();
    read_.insert(reads.begin(), reads.end());
    written_.insert(writes.begin(), writes.end());
}

// Orders every compute and transfer access recorded so far before every later one.
void VulkanDevice::barrier() {
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                       VK_ACCESS_TRANSFER_WRITE_BIT;
    const VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    vkCmdPipelineBarrier(cmd(), stages, stages, 0, 1, &mb, 0, nullptr, 0, nullptr);
    written_.clear();
    read_.clear();
    dummy_slots_used_ = 0;
}

bool VulkanDevice::retire(Frame& f, bool block) {
    if (!f.in_flight) return true;
    const VkResult st = vkGetFenceStatus(ctx_->device, f.fence);
    if (st == VK_NOT_READY) {
        if (!block) return false;
        ++counters_.waits;
        VK_CHECK(vkWaitForFences(ctx_->device, 1, &f.fence, VK_TRUE, UINT64_MAX));
    } else if (st != VK_SUCCESS) {
        fail(st, "vkGetFenceStatus");
    }
    VK_CHECK(vkResetFences(ctx_->device, 1, &f.fence));
    VK_CHECK(vkResetCommandBuffer(f.cb, 0));
    for (auto p : f.pools) VK_CHECK(vkResetDescriptorPool(ctx_->device, p, 0));
    f.pool_index = 0;
    f.keep_alive.clear();
    f.in_flight = false;
    return true;
}

void VulkanDevice::add_frame() {
    auto f = std::make_unique<Frame>();
    VkCommandBufferAllocateInfo cai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    cai.commandPool = cmd_pool_;
    cai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    cai.commandBufferCount = 1;
    VK_CHECK(vkAllocateCommandBuffers(ctx_->device, &cai, &f->cb));
    VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    const VkResult r = vkCreateFence(ctx_->device, &fci, nullptr, &f->fence);
    if (r != VK_SUCCESS) {
        vkFreeCommandBuffers(ctx_->device, cmd_pool_, 1, &f->cb);
        fail(r, "vkCreateFence");
    }
    frames_.push_back(std::move(f));
}

size_t VulkanDevice::acquire_frame() {
    size_t oldest = frames_.size();
    for (size_t i = 0; i < frames_.size(); ++i) {
        if (retire(*frames_[i], false)) return i;
        if (oldest == frames_.size() || frames_[i]->seq < frames_[oldest]->seq) oldest = i;
    }
    if (frames_.size() < kMaxFrames) {
        add_frame();
        return frames_.size() - 1;
    }
    retire(*frames_[oldest], true);  // the ring is full: its one wait
    return oldest;
}

void VulkanDevice::end_and_submit() {
    Frame& f = *frames_[frame_];
    // Make device writes visible to host reads of mapped memory after the fence.
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(cb_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr, 0, nullptr);
    if (ctx_->external) {
        // The caller's later submissions to this queue see our writes without barriers of their own.
        mb.dstAccessMask = VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT;
        vkCmdPipelineBarrier(cb_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, 0, 1, &mb, 0, nullptr, 0, nullptr);
    }
    recording_ = false;
    written_.clear();
    read_.clear();
    dummy_slots_used_ = 0;
    VK_CHECK(vkEndCommandBuffer(cb_));
    VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cb_;
    const VkResult r = vkQueueSubmit(queue_, 1, &si, f.fence);
    if (r != VK_SUCCESS) {
        // Nothing was queued: the frame is free again (its commands are dropped, as a failed
        // blocking submit dropped them).
        VK_CHECK(vkResetCommandBuffer(f.cb, 0));
        for (auto p : f.pools) vkResetDescriptorPool(ctx_->device, p, 0);
        f.pool_index = 0;
        keep_alive_.clear();
        fail(r, "vkQueueSubmit");
    }
    ++counters_.submits;
    f.in_flight = true;
    f.seq = next_seq_++;
    f.keep_alive = std::move(keep_alive_);
    keep_alive_.clear();
}

void VulkanDevice::submit() {
    if (rec_) return;  // the caller's command buffer: the caller submits it
    if (!recording_) return;
    if (profiling_) return submit_and_wait();  // statistics wait for their timestamps anyway
    end_and_submit();
}

void VulkanDevice::flush() {
    if (!rec_) submit_and_wait();
}

void VulkanDevice::submit_and_wait() {
    // Recorded commands run only once the caller submits its command buffer: nothing to wait for.
    require(!rec_, TCA_ERROR_INVALID_ARGUMENT,
            "vulkan: this call waits for the device, but a recording into your command buffer is open "
            "(tca_context_vulkan_end_recording, submit, wait, tca_context_vulkan_release first)");
    if (recording_) end_and_submit();
    std::vector<VkFence> fences;
    for (auto& f : frames_)
        if (f->in_flight) fences.push_back(f->fence);
    if (!fences.empty()) {
        ++counters_.waits;
        VK_CHECK(vkWaitForFences(ctx_->device, uint32_t(fences.size()), fences.data(), VK_TRUE, UINT64_MAX));
        for (auto& f : frames_) retire(*f, false);
    }
    collect_timings();
    keep_alive_.clear();  // what was kept while nothing was recording (all of it finished now)
}

bool VulkanDevice::in_use(const BufferImpl* b) const {
    auto uses = [b](const std::vector<Buffer>& v) {
        for (const Buffer& x : v)
            if (x.get() == b) return true;
        return false;
    };
    if (uses(keep_alive_)) return true;
    for (const auto& f : frames_)
        if (f->in_flight && uses(f->keep_alive)) return true;
    return ticket_using(b) != 0;
}

// vkCmdUpdateBuffer copies the data into the command buffer as it is recorded: no staging buffer,
// no wait, and src is free as soon as this returns.
void VulkanDevice::update(const BufView& dst, const void* src, size_t bytes) {
    require(range_fits(dst.offset, bytes, dst.buf->size), TCA_ERROR_SHAPE_MISMATCH, "update past the end of a buffer");
    require(dst.offset % 4 == 0 && bytes % 4 == 0, TCA_ERROR_INTERNAL, "vulkan: update needs 4-byte offsets and sizes");
    if (!bytes) return;
    VkBuf* b = vk(dst.buf);
    hazard({}, {b->buffer});
    const auto* p = static_cast<const unsigned char*>(src);
    for (size_t done = 0; done < bytes;) {
        const size_t n = std::min<size_t>(bytes - done, 65536);  // the command's limit
        vkCmdUpdateBuffer(cmd(), b->buffer, dst.offset + done, n, p + done);
        done += n;
    }
    keep_alive_.push_back(dst.buf);
}

}  // namespace tca::detail::vulkan
