// The shared kernel disk cache (src/device/kernel_cache.h): the entry format round-trips, and
// truncated, damaged, foreign-version, foreign-key and non-regular entries are rejected; writes are
// atomic and leave no temporary files. The backends' own use of it is in test_opencl_backend.cpp
// (program binaries) and test_vulkan_backend.cpp (pipeline cache).
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "device/kernel_cache.h"
#include "harness.h"

namespace tca::detail::test {
namespace {

namespace fs = std::filesystem;
namespace kc = kernel_cache;

std::vector<unsigned char> bytes(const std::string& s) { return {s.begin(), s.end()}; }

struct CacheDir {
    fs::path path;
    CacheDir() {
        char tmpl[] = "/tmp/tca-kcache-XXXXXX";
        if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        path = tmpl;
    }
    ~CacheDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::vector<fs::path> files() const {
        std::vector<fs::path> v;
        for (const auto& e : fs::recursive_directory_iterator(path))
            if (e.is_regular_file()) v.push_back(e.path());
        return v;
    }
};

TEST(KernelCache, EntryRoundTrips) {
    const auto payload = bytes("a driver's binary \x01\x02\x03");
    const auto file = kc::encode(42, payload.data(), payload.size());
    EXPECT_EQ(file.size(), kc::kHeaderBytes + payload.size());
    std::vector<unsigned char> back;
    ASSERT_TRUE(kc::decode(file, 42, &back));
    EXPECT_EQ(back, payload);
    uint64_t key = 0;
    ASSERT_TRUE(kc::peek_key(file, &key));
    EXPECT_EQ(key, 42u);
}

TEST(KernelCache, DamagedEntriesAreRejected) {
    const auto payload = bytes(std::string(1000, 'p'));
    const auto good = kc::encode(7, payload.data(), payload.size());
    std::vector<unsigned char> out;
    auto rejected = [&](std::vector<unsigned char> f, const char* what) {
        EXPECT_FALSE(kc::decode(f, 7, &out)) << what;
    };
    rejected({}, "empty");
    rejected(std::vector<unsigned char>(good.begin(), good.begin() + 20), "truncated header");
    rejected(std::vector<unsigned char>(good.begin(), good.end() - 1), "truncated payload");
    auto longer = good;
    longer.push_back(0);
    rejected(longer, "trailing byte");
    auto flipped = good;
    flipped[kc::kHeaderBytes + 500] ^= 0x40;
    rejected(flipped, "flipped payload byte");
    auto magic = good;
    magic[0] = 'X';
    rejected(magic, "foreign magic");
    auto version = good;
    version[8] = uint8_t(kc::kFormatVersion + 1);
    rejected(version, "another format version");
    auto sum = good;
    sum[33] ^= 1;
    rejected(sum, "checksum field damaged");
    EXPECT_FALSE(kc::decode(good, 8, &out)) << "an entry for another key";
    const auto empty = kc::encode(7, nullptr, 0);
    EXPECT_FALSE(kc::decode(empty, 7, &out)) << "an empty payload is no binary";
    EXPECT_TRUE(kc::decode(good, 7, &out));
}

TEST(KernelCache, HashSeparatesFields) {
    EXPECT_NE(kc::Hash().add(std::string("ab")).add(std::string("c")).value(),
              kc::Hash().add(std::string("a")).add(std::string("bc")).value());
    EXPECT_EQ(kc::Hash().add(std::string("x")).value(), kc::Hash().add(std::string("x")).value());
    EXPECT_EQ(kc::checksum("", 0), 0xcbf29ce484222325ull) << "FNV-1a 64 offset basis";
    EXPECT_EQ(kc::hex64(0xabcull), "0000000000000abc");
}

TEST(KernelCache, StoreAndLoadOnDisk) {
    CacheDir dir;
    const std::string path = kc::entry_path((dir.path / "sub" / "dir").string(), "opencl", 99);
    EXPECT_EQ(fs::path(path).filename(), "opencl-0000000000000063.tcache");
    std::vector<unsigned char> out;
    EXPECT_EQ(kc::load(path, 99, &out), kc::Lookup::missing);
    const auto payload = bytes("program");
    ASSERT_TRUE(kc::store(path, 99, payload.data(), payload.size())) << "directories made on the way";
    EXPECT_EQ(dir.files().size(), 1u) << "no temporary file left behind";
    ASSERT_EQ(kc::load(path, 99, &out), kc::Lookup::hit);
    EXPECT_EQ(out, payload);
    EXPECT_EQ(kc::load(path, 100, &out), kc::Lookup::rejected) << "another key under this name";
    // Truncated on disk.
    fs::resize_file(path, kc::kHeaderBytes + 3);
    EXPECT_EQ(kc::load(path, 99, &out), kc::Lookup::rejected);
    // Rewritten whole over the damaged one.
    ASSERT_TRUE(kc::store(path, 99, payload.data(), payload.size()));
    EXPECT_EQ(kc::load(path, 99, &out), kc::Lookup::hit);
    // A directory where the entry should be is rejected, and cannot be stored over.
    const std::string odd = kc::entry_path(dir.path.string(), "vulkan", 5);
    fs::create_directories(odd);
    EXPECT_EQ(kc::load(odd, 5, &out), kc::Lookup::rejected);
    EXPECT_FALSE(kc::store(odd, 5, payload.data(), payload.size()));
}

TEST(KernelCache, UnwritableDirectoryIsNotAnError) {
    CacheDir dir;
    const fs::path blocker = dir.path / "file";
    std::ofstream(blocker) << "x";  // a file where the cache directory should be
    const auto payload = bytes("p");
    EXPECT_FALSE(kc::store(kc::entry_path((blocker / "cache").string(), "opencl", 1), 1, payload.data(), payload.size()));
}

}  // namespace
}  // namespace tca::detail::test
