// Vulkan backend: shader modules, pipeline layouts, pipelines, descriptor sets and the dispatch helper.
#include <chrono>
#include <cstdio>
#include <cstring>

#include "backends/vulkan/vk_device.h"
#include "device/embedded.h"

namespace tca::detail::vulkan {

VkShaderModule VulkanDevice::module(const std::string& name) {
    auto it = modules_.find(name);
    if (it != modules_.end()) return it->second;
    const EmbeddedFile* f = embedded_spirv(name);
    if (!f) throw Error(TCA_ERROR_INTERNAL, "vulkan: shader " + name + " was not embedded in this build");
    return modules_[name] = create_module(name, f->data, f->size);
}

VkShaderModule VulkanDevice::create_module(const std::string& name, const unsigned char* data, size_t size) {
    // Reject what is plainly not SPIR-V ourselves: drivers may crash on it rather than fail.
    uint32_t magic = 0;
    if (size >= 4) std::memcpy(&magic, data, 4);
    if (size < 20 || size % 4 || magic != 0x07230203u)
        throw Error(TCA_ERROR_KERNEL_BUILD, "vulkan: shader " + name + " is not a valid SPIR-V module");
    std::vector<uint32_t> words(size / 4);
    std::memcpy(words.data(), data, size);
    VkShaderModuleCreateInfo ci{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
    ci.codeSize = size;
    ci.pCode = words.data();
    VkShaderModule m = VK_NULL_HANDLE;
    // A driver's rejection, or a test's injected build failure (device/fault_injection.h).
    const VkResult r = fault::inject(fault::Kind::build) ? VK_ERROR_INVALID_SHADER_NV
                                                         : vkCreateShaderModule(ctx_->device, &ci, nullptr, &m);
    if (r != VK_SUCCESS) fail(r, ("vkCreateShaderModule(" + name + ")").c_str(), TCA_ERROR_KERNEL_BUILD);
    return m;
}

VkPipelineLayout VulkanDevice::layout_for(uint32_t n_bindings, VkDescriptorSetLayout* set_layout) {
    auto& sl = set_layouts_[n_bindings];
    if (!sl) {
        std::vector<VkDescriptorSetLayoutBinding> b(n_bindings);
        for (uint32_t i = 0; i < n_bindings; ++i)
            b[i] = {i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
        VkDescriptorSetLayoutCreateInfo ci{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
        ci.bindingCount = n_bindings;
        ci.pBindings = b.data();
        VK_CHECK(vkCreateDescriptorSetLayout(ctx_->device, &ci, nullptr, &sl));
    }
    *set_layout = sl;
    auto& pl = pipeline_layouts_[n_bindings];
    if (!pl) {
        VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, 128};  // 128: the guaranteed minimum
        VkPipelineLayoutCreateInfo ci{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
        ci.setLayoutCount = 1;
        ci.pSetLayouts = &sl;
        ci.pushConstantRangeCount = 1;
        ci.pPushConstantRanges = &range;
        VK_CHECK(vkCreatePipelineLayout(ctx_->device, &ci, nullptr, &pl));
    }
    return pl;
}

// The pipeline for a shader and its specialization constants (constant_id i = spec[i]).
VkPipeline VulkanDevice::pipeline(const std::string& shader, const std::vector<uint32_t>& spec, uint32_t n_bindings) {
    std::string key = shader + "/" + std::to_string(n_bindings);
    for (uint32_t v : spec) key += ":" + std::to_string(v);
    auto it = pipelines_.find(key);
    if (it != pipelines_.end()) return it->second;
    VkDescriptorSetLayout sl;
    VkPipelineLayout pl = layout_for(n_bindings, &sl);
    std::vector<VkSpecializationMapEntry> entries(spec.size());
    for (size_t i = 0; i < spec.size(); ++i) entries[i] = {uint32_t(i), uint32_t(i * 4), 4};
    VkSpecializationInfo si{uint32_t(entries.size()), entries.data(), spec.size() * 4, spec.data()};
    VkComputePipelineCreateInfo ci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
    ci.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
    ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    ci.stage.module = module(shader);
    ci.stage.pName = "main";
    ci.stage.pSpecializationInfo = &si;
    ci.layout = pl;
    VkPipeline p = VK_NULL_HANDLE;
    const auto t0 = std::chrono::steady_clock::now();
    // Injected failures fire whether or not the pipeline cache holds this pipeline.
    const VkResult r = fault::inject(fault::Kind::build) ? VK_ERROR_INVALID_SHADER_NV
                                                         : vkCreateComputePipelines(ctx_->device, cache_, 1, &ci, nullptr, &p);
    if (r != VK_SUCCESS) fail(r, ("vkCreateComputePipelines(" + key + ")").c_str(), TCA_ERROR_KERNEL_BUILD);
    if (log_pipelines_)  // driver compile times matter on CPU drivers: TCA_VULKAN_LOG_PIPELINES=1
        std::fprintf(stderr, "tca: vulkan pipeline %s built in %.0f ms\n", key.c_str(),
                     std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    cache_dirty_ = true;
    return pipelines_[key] = p;
}

VkDescriptorSet VulkanDevice::descriptor_set(VkDescriptorSetLayout layout) {
    cmd();  // begins the recording, reclaiming its frame: the frame's pools then hold only this recording's sets
    // Into the caller's command buffer: the recording's own pools, grown (never waited for) as
    // many calls fill them, until the ticket is released.
    Frame& f = current_frame();
    for (;; ++f.pool_index) {
        if (f.pool_index == f.pools.size()) {
            VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kSetsPerPool * 12};
            VkDescriptorPoolCreateInfo ci{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
            ci.maxSets = kSetsPerPool;
            ci.poolSizeCount = 1;
            ci.pPoolSizes = &size;
            VkDescriptorPool pool;
            VK_CHECK(vkCreateDescriptorPool(ctx_->device, &ci, nullptr, &pool));
            f.pools.push_back(pool);
        }
        VkDescriptorSetAllocateInfo ai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
        ai.descriptorPool = f.pools[f.pool_index];
        ai.descriptorSetCount = 1;
        ai.pSetLayouts = &layout;
        VkDescriptorSet set;
        const VkResult r = vkAllocateDescriptorSets(ctx_->device, &ai, &set);
        if (r == VK_SUCCESS) return set;
        if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL) fail(r, "vkAllocateDescriptorSets");
    }
}

// The one way kernels run: pipeline by name + specialization, push constants, whole-buffer
// bindings 0..n-1 (barriers derived from their read/write flags), and a grid of workgroups.
void VulkanDevice::dispatch_raw(const std::string& shader, const std::vector<uint32_t>& spec, const void* pc,
                                uint32_t pc_size, const std::vector<Bind>& binds, uint32_t gx, uint32_t gy, uint32_t gz) {
    if (gx == 0 || gy == 0 || gz == 0) return;
    const uint32_t max_x = pi_.props.limits.maxComputeWorkGroupCount[0], max_y = pi_.props.limits.maxComputeWorkGroupCount[1];
    require(gx <= max_x && gy <= max_y, TCA_ERROR_UNSUPPORTED, "vulkan: problem too large for one dispatch grid");
    const uint32_t n = uint32_t(binds.size());
    VkPipeline p = pipeline(shader, spec, n);
    VkDescriptorSetLayout sl;
    VkPipelineLayout pl = layout_for(n, &sl);
    VkDescriptorSet set = descriptor_set(sl);
    std::vector<VkBuffer> reads, wrs;
    bool any_absent = false;
    for (const Bind& b : binds) {
        if (!b.view) {  // never accessed: not tracked for barriers (see dummy_slot)
            any_absent = true;
            continue;
        }
        keep_alive_.push_back(b.view.buf);
        (b.write ? wrs : reads).push_back(vk(b.view.buf)->buffer);
    }
    // The barrier, if any, comes first: it frees the dummy slots, and this dispatch's comes after it.
    hazard(reads, wrs, any_absent);
    const VkDescriptorBufferInfo absent = any_absent ? dummy_slot() : VkDescriptorBufferInfo{};
    std::vector<VkDescriptorBufferInfo> infos(n);
    std::vector<VkWriteDescriptorSet> writes(n);
    for (uint32_t i = 0; i < n; ++i) {
        infos[i] = binds[i].view ? VkDescriptorBufferInfo{vk(binds[i].view.buf)->buffer, 0, VK_WHOLE_SIZE} : absent;
        writes[i] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
        writes[i].dstSet = set;
        writes[i].dstBinding = i;
        writes[i].descriptorCount = 1;
        writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        writes[i].pBufferInfo = &infos[i];
    }
    vkUpdateDescriptorSets(ctx_->device, n, writes.data(), 0, nullptr);
    VkCommandBuffer c = cmd();
    vkCmdBindPipeline(c, VK_PIPELINE_BIND_POINT_COMPUTE, p);
    vkCmdBindDescriptorSets(c, VK_PIPELINE_BIND_POINT_COMPUTE, pl, 0, 1, &set, 0, nullptr);
    if (pc_size > 0) vkCmdPushConstants(c, pl, VK_SHADER_STAGE_COMPUTE_BIT, 0, pc_size, pc);  // batched: a table
    vkCmdDispatch(c, gx, gy, gz);
}

}  // namespace tca::detail::vulkan
