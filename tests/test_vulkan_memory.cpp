// The Vulkan backend's memory sub-allocator (src/backends/vulkan/vk_suballoc.h): the free list alone
// (reuse after free, alignment, coalescing), the block policy with fake blocks (many small buffers in
// few blocks, a buffer larger than a block, out of memory), and the real thing on each Vulkan device
// (buffers share blocks; contents of neighbouring buffers stay apart).
#include <cstring>
#include <set>

#include "backends/vulkan/vk_suballoc.h"
#include "backends/vulkan/vulkan_testing.h"
#include "core/error.h"
#include "harness.h"

namespace tca::detail::test {
namespace {

using vulkan::MemoryBlock;
using tca::detail::RangeAllocator;
using vulkan::SubAllocation;
using vulkan::SubAllocator;

TEST(RangeAllocator, ReusesAFreedRange) {
    RangeAllocator r(1024);
    uint64_t a = 0, b = 0, c = 0;
    ASSERT_TRUE(r.allocate(256, 1, &a));
    ASSERT_TRUE(r.allocate(256, 1, &b));
    EXPECT_EQ(a, 0u);
    EXPECT_EQ(b, 256u);
    r.free(a, 256);
    ASSERT_TRUE(r.allocate(200, 1, &c));
    EXPECT_EQ(c, 0u) << "first fit takes the freed range again";
    EXPECT_EQ(r.free_bytes(), 1024u - 456u);
}

TEST(RangeAllocator, HonoursAlignmentAndKeepsThePaddingFree) {
    RangeAllocator r(4096);
    uint64_t a = 0, b = 0, c = 0;
    ASSERT_TRUE(r.allocate(10, 1, &a));
    ASSERT_TRUE(r.allocate(100, 256, &b));
    EXPECT_EQ(a, 0u);
    EXPECT_EQ(b % 256, 0u);
    EXPECT_EQ(b, 256u);
    // The 246 bytes of padding between them are still free and usable by a small request.
    ASSERT_TRUE(r.allocate(200, 4, &c));
    EXPECT_GE(c, 10u);
    EXPECT_LE(c + 200, 256u);
    for (uint64_t align : {64ull, 1024ull}) {
        uint64_t o = 0;
        ASSERT_TRUE(r.allocate(1, align, &o));
        EXPECT_EQ(o % align, 0u) << align;
    }
}

TEST(RangeAllocator, CoalescesFreedNeighboursAndRejectsWhatDoesNotFit) {
    RangeAllocator r(1000);
    uint64_t o[4];
    for (auto& x : o) ASSERT_TRUE(r.allocate(250, 1, &x));
    uint64_t none = 0;
    EXPECT_FALSE(r.allocate(1, 1, &none)) << "full";
    r.free(o[1], 250);
    r.free(o[3], 250);
    r.free(o[2], 250);  // joins both neighbours
    EXPECT_EQ(r.free_ranges(), 1u);
    uint64_t big = 0;
    ASSERT_TRUE(r.allocate(750, 1, &big));
    EXPECT_EQ(big, 250u);
    r.free(o[0], 250);
    r.free(big, 750);
    EXPECT_TRUE(r.empty());
    EXPECT_FALSE(r.allocate(1001, 1, &none));
    EXPECT_FALSE(r.allocate(0, 1, &none));
    EXPECT_FALSE(r.allocate(8, 3, &none)) << "alignment not a power of two";
}

// Fake blocks: handles 1, 2, ... and a budget of bytes, as a driver's heap would have.
struct FakeDevice {
    uint64_t next = 1, budget = ~0ull, live_bytes = 0;
    std::set<uint64_t> live;
    std::map<uint64_t, uint64_t> sizes;
    SubAllocator make(uint64_t block) {
        return SubAllocator(
            block,
            [this](uint32_t, uint64_t bytes) {
                if (live_bytes + bytes > budget) throw Error(TCA_ERROR_OUT_OF_MEMORY, "fake: out of device memory");
                live_bytes += bytes;
                const uint64_t h = next++;
                live.insert(h);
                sizes[h] = bytes;
                return MemoryBlock{h, nullptr};
            },
            [this](const MemoryBlock& b) {
                live.erase(b.handle);
                live_bytes -= sizes[b.handle];
            });
    }
};

TEST(SubAllocator, ManySmallBuffersShareFewBlocks) {
    FakeDevice fake;
    {
        SubAllocator s = fake.make(1 << 20);
        std::vector<SubAllocation> v;
        for (int i = 0; i < 1000; ++i) v.push_back(s.allocate(0, 1000, 64));
        EXPECT_EQ(s.blocks(), 1u) << "1000 x 1000 bytes (64-aligned) fit one MiB block";
        for (const auto& a : v) EXPECT_EQ(a.offset % 64, 0u);
        std::set<std::pair<uint64_t, uint64_t>> ranges;
        for (const auto& a : v) ranges.insert({a.memory, a.offset});
        EXPECT_EQ(ranges.size(), v.size()) << "no two allocations at one place";
        for (int i = 0; i < 2000; ++i) v.push_back(s.allocate(0, 1000, 64));
        EXPECT_EQ(s.blocks(), 3u);
        // Different keys (memory types) never share a block.
        SubAllocation other = s.allocate(3, 16, 4);
        EXPECT_EQ(s.blocks(), 4u);
        for (const auto& a : v) EXPECT_NE(a.memory, other.memory);
        for (const auto& a : v) s.free(a);
        EXPECT_EQ(s.blocks(), 2u) << "empty blocks go, but the last one of each key stays";
        s.free(other);
    }
    EXPECT_TRUE(fake.live.empty()) << "every block freed with the allocator";
}

TEST(SubAllocator, FreedRangesAreReused) {
    FakeDevice fake;
    SubAllocator s = fake.make(4096);
    SubAllocation a = s.allocate(0, 1024, 16), b = s.allocate(0, 1024, 16);
    s.free(a);
    SubAllocation c = s.allocate(0, 512, 16);
    EXPECT_EQ(c.memory, a.memory);
    EXPECT_EQ(c.offset, a.offset);
    EXPECT_EQ(s.blocks(), 1u);
    s.free(b);
    s.free(c);
}

TEST(SubAllocator, ABufferLargerThanABlockGetsItsOwnAndGivesItBack) {
    FakeDevice fake;
    SubAllocator s = fake.make(4096);
    SubAllocation small = s.allocate(0, 100, 4);
    SubAllocation big = s.allocate(0, 10000, 256);
    EXPECT_NE(big.memory, small.memory);
    EXPECT_EQ(big.offset, 0u);
    EXPECT_EQ(s.blocks(), 2u);
    EXPECT_EQ(s.dedicated_blocks(), 1u);
    EXPECT_EQ(fake.sizes[big.memory], 10000u);
    s.free(big);
    EXPECT_EQ(s.blocks(), 1u);
    EXPECT_EQ(s.dedicated_blocks(), 0u);
    s.free(small);
}

TEST(SubAllocator, NearlyFullDeviceFallsBackToExactSizeThenReportsOutOfMemory) {
    FakeDevice fake;
    fake.budget = 6000;
    SubAllocator s = fake.make(4096);
    SubAllocation a = s.allocate(0, 4000, 4);  // one whole block
    SubAllocation b = s.allocate(0, 1000, 4);  // no second block fits: a block of its own size
    EXPECT_EQ(s.blocks(), 2u);
    EXPECT_EQ(fake.live_bytes, 5096u);
    try {
        s.allocate(0, 1000, 4);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_OUT_OF_MEMORY);
    }
    EXPECT_EQ(s.blocks(), 2u) << "a failed allocation leaves nothing behind";
    s.free(a);
    s.free(b);
}

// ---- on the Vulkan devices ----------------------------------------------------------------------

std::vector<std::string> vulkan_names() {
    std::vector<std::string> v;
    for (const auto& n : devices_under_test())
        if (n.rfind("vulkan:", 0) == 0) v.push_back(n);
    return v;
}

class VulkanMemory : public ::testing::TestWithParam<std::string> {};

TEST_P(VulkanMemory, SmallBuffersShareBlocksAndKeepTheirContents) {
    Device& dev = device(GetParam());
    const size_t before = vulkan_testing::memory_blocks(dev);
    std::vector<Buffer> bufs;
    for (int i = 0; i < 200; ++i) {
        bufs.push_back(dev.alloc(size_t(4 * (i % 7 + 1))));
        const int32_t v[7] = {i, i + 1, i + 2, i + 3, i + 4, i + 5, i + 6};
        dev.write(BufView{bufs.back(), 0}, v, bufs.back()->size);
    }
    EXPECT_LE(vulkan_testing::memory_blocks(dev), before + 2) << "200 small buffers in a block or two";
    for (int i = 0; i < 200; ++i) {
        int32_t v[7] = {};
        dev.read(BufView{bufs[i], 0}, v, bufs[i]->size);
        for (int j = 0; j < i % 7 + 1; ++j) ASSERT_EQ(v[j], i + j) << "buffer " << i;
    }
    bufs.clear();
    EXPECT_LE(vulkan_testing::memory_blocks(dev), before + 1);
}

TEST_P(VulkanMemory, ABufferLargerThanABlockIsDedicated) {
    Device& dev = device(GetParam());
    const uint64_t block = vulkan_testing::memory_block_size(dev);
    ASSERT_GT(block, 0u);
    if (block + 4096 > dev.info().max_allocation) GTEST_SKIP() << "the device cannot hold a buffer larger than a block";
    const size_t dedicated = vulkan_testing::dedicated_memory_blocks(dev);
    Buffer big = dev.alloc(size_t(block) + 4096);
    EXPECT_EQ(vulkan_testing::dedicated_memory_blocks(dev), dedicated + 1);
    const uint32_t tail = 0xdeadbeef;
    dev.write(BufView{big, size_t(block)}, &tail, 4);
    uint32_t back = 0;
    dev.read(BufView{big, size_t(block)}, &back, 4);
    EXPECT_EQ(back, tail);
    big.reset();
    dev.finish();
    EXPECT_EQ(vulkan_testing::dedicated_memory_blocks(dev), dedicated);
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(VulkanMemory);
INSTANTIATE_TEST_SUITE_P(Vulkan, VulkanMemory, ::testing::ValuesIn(vulkan_names()),
                         [](const auto& info) { return safe_name(info.param); });

}  // namespace
}  // namespace tca::detail::test
