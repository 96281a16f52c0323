// Vulkan backend: per-op device time from timestamp queries (when profiling is on).
#include "backends/vulkan/vk_device.h"

namespace tca::detail::vulkan {

VulkanDevice::OpScope::OpScope(VulkanDevice* d, Op op) : d_(d) {
    if (!d_->profiling_) return;
    if (!d_->query_pool_) {  // no timestamps on this queue: record the op with 0 ms
        d_->timings_.push_back({op, 0.0});
        return;
    }
    // A recording begun with profiling off did not reset the timestamp pool.
    if (d_->recording_ && (!d_->queries_reset_ || d_->queries_used_ + 2 > kMaxQueries)) d_->submit_and_wait();
    VkCommandBuffer c = d_->cmd();
    q0_ = d_->queries_used_;
    d_->queries_used_ += 2;
    // BOTTOM_OF_PIPE: written once every earlier command has completed.
    vkCmdWriteTimestamp(c, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, d_->query_pool_, q0_);
    d_->pending_timings_.push_back({op, q0_});
    active_ = true;
}

VulkanDevice::OpScope::~OpScope() {
    if (active_) vkCmdWriteTimestamp(d_->cmd(), VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, d_->query_pool_, q0_ + 1);
}

void VulkanDevice::collect_timings() {
    if (pending_timings_.empty()) return;
    std::vector<uint64_t> ts(queries_used_);
    VK_CHECK(vkGetQueryPoolResults(ctx_->device, query_pool_, 0, queries_used_, ts.size() * 8, ts.data(), 8,
                                   VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
    const uint64_t mask = pi_.timestamp_bits >= 64 ? ~0ull : ((1ull << pi_.timestamp_bits) - 1);
    for (const auto& p : pending_timings_) {
        const uint64_t ticks = (ts[p.q0 + 1] - ts[p.q0]) & mask;
        timings_.push_back({p.op, double(ticks) * pi_.props.limits.timestampPeriod * 1e-6});
    }
    pending_timings_.clear();
}

}  // namespace tca::detail::vulkan
