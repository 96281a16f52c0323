// Vulkan backend: command recording, barrier tracking between dispatches and copies, submission.
#include "backends/vulkan/vk_device.h"

namespace tca::detail::vulkan {

VkCommandBuffer VulkanDevice::cmd() {
    if (!recording_) {
        VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
        bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
        VK_CHECK(vkBeginCommandBuffer(cb_, &bi));
        recording_ = true;
        queries_used_ = 0;
        if (query_pool_) vkCmdResetQueryPool(cb_, query_pool_, 0, kMaxQueries);
        if (ctx_->external) {
            // The caller's earlier submissions to this queue (which may have written our inputs)
            // complete, and their writes become visible, before anything of ours runs.
            VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
            mb.srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT;
            mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                               VK_ACCESS_TRANSFER_WRITE_BIT;
            vkCmdPipelineBarrier(cb_, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                                 VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0,
                                 nullptr, 0, nullptr);
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

void VulkanDevice::submit_and_wait() {
    if (!recording_) {
        keep_alive_.clear();
        return;
    }
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
    VK_CHECK(vkQueueSubmit(queue_, 1, &si, fence_));
    VK_CHECK(vkWaitForFences(ctx_->device, 1, &fence_, VK_TRUE, UINT64_MAX));
    VK_CHECK(vkResetFences(ctx_->device, 1, &fence_));
    collect_timings();
    VK_CHECK(vkResetCommandBuffer(cb_, 0));
    for (auto p : desc_pools_) VK_CHECK(vkResetDescriptorPool(ctx_->device, p, 0));
    pool_index_ = 0;
    keep_alive_.clear();
}

}  // namespace tca::detail::vulkan
