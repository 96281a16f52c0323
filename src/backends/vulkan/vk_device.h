// Private header of the Vulkan backend: the device class, split across the files of this folder.
//
// Structure: a small facade (context in vk_instance.cpp; memory with a sub-allocator in vk_memory.cpp;
// barrier tracking and submission in vk_commands.cpp; descriptors and pipelines looked up by shader
// name plus specialization constants in vk_pipelines.cpp; the pipeline disk cache in
// vk_pipeline_cache.cpp; timestamps in vk_timestamps.cpp; tile choices in vk_tuning.cpp) and one
// file per op family (ops_*.cpp), each a handful of dispatches of the shaders in shaders/*.comp.
//
// Execution model: ops are recorded into the command buffer of one frame of a small ring; submit()
// (the end of every API call on a library-made context) hands it to the queue with the frame's fence
// and returns, and recording goes on in the next frame, reclaimed once its fence has signalled
// (asked without blocking; the host waits only when the ring is full, counted as a wait).
// read()/finish() and write() to a buffer that queued work still uses submit and wait. Each frame
// keeps the buffers its commands reference alive until its fence has signalled.
// Descriptors: one descriptor set per dispatch from the frame's pools, reset when it is reclaimed.
// Every binding is a whole buffer; sub-buffer offsets travel as element offsets in push constants,
// so no minStorageBufferOffsetAlignment rules apply.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "backends/vulkan/vk_context.h"
#include "backends/vulkan/vk_suballoc.h"
#include "backends/vulkan/vk_tuning.h"
#include "device/backends.h"
#include "device/fault_injection.h"
#include "device/interop.h"

namespace tca::detail::vulkan {

// ---- buffers (vk_memory.cpp) ----------------------------------------------------------------------

// The blocks of device memory of one context (vk_suballoc.h). Shared by the device and its buffers.
struct MemoryPools {
    std::shared_ptr<Context> ctx;
    SubAllocator blocks;
    MemoryPools(std::shared_ptr<Context> c, uint64_t block_size);
};

struct VkBuf final : BufferImpl {
    std::shared_ptr<MemoryPools> pools;  // null for a wrapped buffer
    std::shared_ptr<Context> ctx;
    VkBuffer buffer = VK_NULL_HANDLE;
    SubAllocation memory;             // its range of a block
    unsigned char* mapped = nullptr;  // null: device-local only, reached through staging copies
    bool owned = true;                // false: the caller's VkBuffer (interop), never destroyed here
    fault::LiveBuffer live{Api::vulkan};
    ~VkBuf() override;
};

inline VkBuf* vk(const Buffer& b) { return static_cast<VkBuf*>(b.get()); }

// A binding of one dispatch: a whole buffer, read or written. An empty view binds a slot of a dummy buffer.
struct Bind {
    BufView view;
    bool write = false;
};
inline Bind in(const BufView& v) { return {v, false}; }
inline Bind out(const BufView& v) { return {v, true}; }

// The binding list of one dispatch: `n` absent slots, filled by name (a family's TCA_*_BIND_* ids).
inline std::vector<Bind> binds(uint32_t n) { return std::vector<Bind>(n); }

inline uint32_t elem_off(const BufView& v, DType t) { return uint32_t(v.offset / dtype_size(t)); }
inline uint32_t int_off(const BufView& v) { return uint32_t(v.offset / 4); }

// Workgroup scratch slots.
enum Slot { kSlotPartials = 0, kSlotStats = 1, kSlotSelect = 2, kSlotDecodeTable = 3, kSlotGatherTable = 4 };

constexpr uint32_t kSmallWG = 64;  // decode / score / select / gather workgroups

inline uint32_t ceil_div(uint64_t a, uint64_t b) { return uint32_t((a + b - 1) / b); }

class VulkanDevice final : public Device {
public:
    VulkanDevice(int index, const BackendOptions& options);
    // On the caller's instance, device and queue (interop). Optional features are used only when the
    // caller says it enabled them; pipelines and pools are built as usual and are ours to destroy.
    VulkanDevice(const VulkanExternal& ext, const BackendOptions& options);
    ~VulkanDevice() override;

    const DeviceInfo& info() const override { return info_; }

    // ---- memory (vk_memory.cpp) ----
    Buffer alloc(size_t bytes) override;
    void write(const BufView& dst, const void* src, size_t bytes) override;
    void read(const BufView& src, void* dst, size_t bytes) override;
    void fill_zero(const BufView& dst, size_t bytes) override;
    // The caller's VkBuffer (interop) as one of our buffers: bound whole like ours, never destroyed.
    Buffer wrap(VkBuffer buffer, uint64_t size);

    void finish() override { submit_and_wait(); }
    // Interop: hand the call's work to the caller's queue and wait (tca.h); while a recording into
    // the caller's command buffer is open, nothing (the caller submits).
    void flush() override;
    void submit() override;
    void set_profiling(bool on) override;
    void update(const BufView& dst, const void* src, size_t bytes) override;
    std::vector<OpTiming> take_timings() override;

    // ---- ops (ops_*.cpp) ----
    void prefill(const PrefillArgs& a) override;
    void decode(const DecodeArgs& a) override;
    // Batches (device.h): entries grouped by op_params.h's keys; a group of two or more runs as one
    // dispatch per kernel of the *_batch.comp variants, a lone entry as the single op.
    void decode_batch(const std::vector<DecodeArgs>& a) override;
    void gather_batch(const std::vector<GatherArgs>& a) override;
    void score(const ScoreArgs& a) override;
    void metric(const MetricArgs& a) override;
    int decode_splits(const DecodeArgs& a) const override;
    void rank(const RankArgs& a) override;
    void select(const SelectArgs& a) override;
    void gather(const GatherArgs& a) override;
    void colsum(const ColsumArgs& a) override;
    void stream_copy(const CopyArgs& a) override;
    void gemm(const GemmArgs& a) override;
    bool gemm_supported(DType t) const override { return t == DType::f32; }
    std::string gemm_engine(DType t) const override { return t == DType::f32 ? "tca gemm.comp (f32)" : ""; }
    void fma_probe(const FmaArgs& a) override;
    bool fma_supported(DType t) const override { return t == DType::f32 || use_float16_; }

    // ---- recording into the caller's command buffer (vk_recording.cpp; tca.h, interop) ----
    void begin_recording(VkCommandBuffer cb);
    uint64_t end_recording();  // the ticket of what the recording keeps alive
    void release_recording(uint64_t ticket);
    bool recording_open() const { return rec_ != nullptr; }

    // ---- test hooks (vk_device.cpp) ----
    size_t cache_bytes_loaded() const { return cache_bytes_loaded_; }
    const std::string& cache_path() const { return cache_path_; }
    bool fp16_storage_on() const { return use_fp16_storage_; }
    bool subgroups_on() const { return use_subgroups_; }
    void build_broken_shader();
    bool sync_validation_on() const { return ctx_->sync_validation; }
    void unsynchronised_writes();
    void leak_buffer();
    void release_scratch();
    // Another decode row (e.g. the GPU row on a CPU driver); returns the row it replaced.
    DecodeTuning set_decode_tuning(const DecodeTuning& t) { return std::exchange(tuning_.decode, t); }
    const SubAllocator& memory_blocks() const { return pools_->blocks; }

private:
    // ---- device setup (vk_device.cpp) ----
    void create_device();
    void create_queue_objects(uint32_t family);
    void init_memory();

    // ---- buffers (vk_memory.cpp) ----
    Buffer make_buffer(size_t bytes, bool host_staging);
    int find_memory_type(uint32_t bits, VkMemoryPropertyFlags want) const;
    void copy(const BufView& src, const BufView& dst, size_t bytes);
    // Internal scratch (split-K partials, softmax statistics, selection counters): one grow-only buffer
    // per slot. Reuse across ops is ordered by the same hazard tracking as user buffers.
    BufView scratch(int slot, size_t bytes);
    VkDescriptorBufferInfo dummy_slot();

    // ---- command recording and synchronisation (vk_commands.cpp) ----
    VkCommandBuffer cmd();
    void hazard(const std::vector<VkBuffer>& reads, const std::vector<VkBuffer>& writes, bool takes_dummy_slot = false);
    void barrier();
    void submit_and_wait();
    // One frame of the submission ring: what a submitted command buffer needs until its fence signals.
    struct Frame {
        VkCommandBuffer cb = VK_NULL_HANDLE;
        VkFence fence = VK_NULL_HANDLE;
        std::vector<VkDescriptorPool> pools;
        size_t pool_index = 0;
        std::vector<Buffer> keep_alive;
        bool in_flight = false;
        uint64_t seq = 0;  // when it was submitted
    };
    // A frame to record into: a reclaimed one, a new one, or (kMaxFrames in flight) the oldest,
    // waited for.
    size_t acquire_frame();
    void add_frame();
    // Ends the current frame's command buffer and submits it with the frame's fence (no wait).
    void end_and_submit();
    // Makes `f` reusable if its fence has signalled, waiting for it when `block` (counted); false
    // when it is still running and block is off.
    bool retire(Frame& f, bool block);
    // Whether commands recorded or queued may still use b (a host write to it must wait first).
    bool in_use(const BufferImpl* b) const;
    // The frame whose descriptor pools and keep-alive list the commands being recorded use: the open
    // recording's, or the ring's current one.
    Frame& current_frame() { return rec_ ? *rec_ : *frames_[frame_]; }
    // An unreleased recording ticket whose commands use b (0: none).
    uint64_t ticket_using(const BufferImpl* b) const;
    // Refuses a host read of b while a recording is open or an unreleased ticket uses b: the results
    // are not on the device yet, or not known to be (vk_recording.cpp).
    void check_host_read(const BufferImpl* b) const;
    // A host-to-device write recorded as a command (vkCmdUpdateBuffer, else a staging copy), waiting
    // for nothing: for buffers that recorded commands may still use while the host cannot wait.
    void write_recorded(const BufView& dst, const void* src, size_t bytes);

    // ---- profiling (vk_timestamps.cpp) ----
    struct PendingTiming {
        Op op;
        uint32_t q0;  // begin query; end is q0 + 1
    };

    // Brackets one op with timestamps when profiling is on.
    class OpScope {
    public:
        OpScope(VulkanDevice* d, Op op);
        ~OpScope();

    private:
        VulkanDevice* d_;
        uint32_t q0_ = 0;
        bool active_ = false;
    };
    void collect_timings();

    // ---- pipelines (vk_pipelines.cpp) ----
    VkShaderModule module(const std::string& name);
    VkShaderModule create_module(const std::string& name, const unsigned char* data, size_t size);
    VkPipelineLayout layout_for(uint32_t n_bindings, VkDescriptorSetLayout* set_layout);
    // The pipeline for a shader and its specialization constants (constant_id i = spec[i]).
    VkPipeline pipeline(const std::string& shader, const std::vector<uint32_t>& spec, uint32_t n_bindings);
    VkDescriptorSet descriptor_set(VkDescriptorSetLayout layout);
    // The one way kernels run: pipeline by name + specialization, push constants, whole-buffer
    // bindings 0..n-1 (barriers derived from their read/write flags), and a grid of workgroups.
    void dispatch_raw(const std::string& shader, const std::vector<uint32_t>& spec, const void* pc, uint32_t pc_size,
                      const std::vector<Bind>& binds, uint32_t gx, uint32_t gy, uint32_t gz);
    template <class PC>
    void dispatch(const std::string& shader, const std::vector<uint32_t>& spec, const PC& pc,
                  const std::vector<Bind>& binds, uint32_t gx, uint32_t gy = 1, uint32_t gz = 1) {
        static_assert(sizeof(PC) <= 128, "push constants over 128 bytes");
        dispatch_raw(shader, spec, &pc, uint32_t(sizeof(PC)), binds, gx, gy, gz);
    }
    // Shader of a K/V-reading family: the native-fp16-storage module only when it is needed and usable
    // (it declares the StorageBuffer16BitAccess capability, which a specialization constant cannot remove).
    std::string kv_shader(const char* family, DType kv) const {
        return std::string(family) + (kv == DType::f16 && use_fp16_storage_ ? "_f16.comp" : ".comp");
    }
    uint32_t sg() const { return use_subgroups_ ? 1u : 0u; }
    // The KV_F16 specialization constant of the K/V-reading shaders (shaders/common.glsl, KV_BUFFER):
    // 0 f32, 1 f16, 2 bf16 (bf16 always reads through 32-bit words: no storage feature needed).
    static uint32_t kv_format_spec(DType t) { return t == DType::f16 ? 1u : t == DType::bf16 ? 2u : 0u; }
    std::vector<uint32_t> decode_spec(const DecodeArgs& a, uint32_t mode) const;  // ops_decode.cpp

    // ---- pipeline cache (vk_pipeline_cache.cpp) ----
    void create_pipeline_cache();
    uint64_t cache_key() const;
    bool payload_fits(const std::vector<unsigned char>& payload) const;
    void save_pipeline_cache();

    // ---- tuning (vk_tuning.cpp) ----
    Tuning tuning_{};  // chosen at creation (choose_tuning)
    // Tile shape of the flash-attention family for head dim d (see shaders/attn.glsl).
    struct AttnTiles {
        uint32_t br, bc, tpr;
        bool sg;
    };
    AttnTiles attn_tiles(int dim) const;
    // Specialization constants of shaders/attn.glsl (src/iface/iface_attn.h).
    std::vector<uint32_t> attn_spec(const AttnTiles& t, int dim, DType kv, uint32_t mode, bool sparse) const;

    // ---- state ----
    static constexpr uint32_t kMaxQueries = 512;
    static constexpr uint32_t kSetsPerPool = 256;
    static constexpr uint32_t kDummySlots = 64;  // dispatches with absent bindings between two barriers

    BackendOptions options_;
    std::shared_ptr<Context> ctx_;
    std::shared_ptr<MemoryPools> pools_;
    PhysInfo pi_;
    DeviceInfo info_;
    bool use_fp16_storage_ = false, use_float16_ = false, use_subgroups_ = false, staging_only_ = false, log_pipelines_ = false;

    VkQueue queue_ = VK_NULL_HANDLE;
    VkCommandPool cmd_pool_ = VK_NULL_HANDLE;
    // The ring grows (a command buffer, a fence) rather than wait while the device is behind, up to
    // kMaxFrames submissions in flight; only then does the host wait for the oldest.
    static constexpr size_t kMaxFrames = 64;
    std::vector<std::unique_ptr<Frame>> frames_;
    size_t frame_ = 0;     // the frame being recorded, while recording_
    uint64_t next_seq_ = 0;  // submission order, to find the oldest frame in flight
    VkCommandBuffer cb_ = VK_NULL_HANDLE;  // frames_[frame_]->cb while recording_
    bool recording_ = false;
    bool queries_reset_ = false;  // this recording began with a timestamp-pool reset
    std::set<VkBuffer> written_, read_;
    std::vector<Buffer> keep_alive_;  // what the commands recorded so far reference

    std::map<std::string, VkShaderModule> modules_;
    std::map<uint32_t, VkDescriptorSetLayout> set_layouts_;
    std::map<uint32_t, VkPipelineLayout> pipeline_layouts_;
    std::map<std::string, VkPipeline> pipelines_;
    VkPipelineCache cache_ = VK_NULL_HANDLE;
    std::string cache_path_;
    size_t cache_bytes_loaded_ = 0;
    bool cache_dirty_ = false;

    VkQueryPool query_pool_ = VK_NULL_HANDLE;
    uint32_t queries_used_ = 0;
    std::vector<PendingTiming> pending_timings_;
    std::vector<OpTiming> timings_;

    // Recording into the caller's command buffer: the open recording (its cb is the caller's, no
    // fence), and the closed ones by ticket until released; their reset descriptor pools are reused.
    std::unique_ptr<Frame> rec_;
    std::map<uint64_t, std::unique_ptr<Frame>> tickets_;
    std::vector<VkDescriptorPool> spare_pools_;
    uint64_t next_ticket_ = 1;

    std::map<int, Buffer> scratch_;
    Buffer dummy_;
    uint32_t dummy_slots_used_ = 0;  // since the last barrier
};

}  // namespace tca::detail::vulkan
