// Output files (io/atomic_file.h): only regular files are written -- a symbolic link, a device node,
// a fifo or a directory at the target is rejected and left as it is -- and a batch whose commit
// fails leaves every file that existed before exactly as it was (same content, same file).
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"

namespace tca::detail {
namespace {

namespace fs = std::filesystem;

class AtomicFile : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("tca_test_atomic_" + std::to_string(::getpid()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string p(const std::string& name) const { return (dir_ / name).string(); }
    static void put(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }
    static std::string get(const std::string& path) {
        std::ifstream f(path, std::ios::binary);
        std::stringstream s;
        s << f.rdbuf();
        return s.str();
    }
    static ino_t inode(const std::string& path) {
        struct stat st {};
        return ::lstat(path.c_str(), &st) == 0 ? st.st_ino : 0;
    }
    // Names in the directory other than `expected` (temporary or backup files left behind).
    std::vector<std::string> strays(const std::set<std::string>& expected) const {
        std::vector<std::string> out;
        for (const auto& e : fs::directory_iterator(dir_))
            if (!expected.count(e.path().filename().string())) out.push_back(e.path().filename().string());
        return out;
    }
    // Expects f to throw TCA_ERROR_IO with a message containing `needle`.
    template <class F>
    static void expect_io_error(F&& f, const std::string& needle) {
        try {
            f();
            ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), TCA_ERROR_IO) << e.what();
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    }

    fs::path dir_;
};

TEST_F(AtomicFile, WritesAndReplacesRegularFiles) {
    io::write_file_atomic(p("a"), "new", 3);
    EXPECT_EQ(get(p("a")), "new");
    put(p("b"), "old");
    io::write_file_atomic(p("b"), "newer", 5);
    EXPECT_EQ(get(p("b")), "newer");
    io::OutputBatch batch;
    batch.stage(p("a"), std::string("A"));
    batch.stage(p("c"), std::string("C"));
    batch.commit();
    EXPECT_EQ(get(p("a")), "A");
    EXPECT_EQ(get(p("c")), "C");
    EXPECT_TRUE(strays({"a", "b", "c"}).empty()) << strays({"a", "b", "c"})[0];
}

TEST_F(AtomicFile, SymbolicLinkTargetIsRejectedAndKept) {
    put(p("real"), "keep");
    fs::create_symlink(p("real"), p("link"));
    fs::create_symlink(p("nowhere"), p("dangling"));
    expect_io_error([&] { io::write_file_atomic(p("link"), "x", 1); }, "symbolic link");
    expect_io_error([&] { io::write_file_atomic(p("dangling"), "x", 1); }, "symbolic link");
    EXPECT_TRUE(fs::is_symlink(p("link")));
    EXPECT_TRUE(fs::is_symlink(p("dangling")));
    EXPECT_FALSE(fs::exists(p("nowhere")));
    EXPECT_EQ(get(p("real")), "keep");
    EXPECT_TRUE(strays({"real", "link", "dangling"}).empty());
}

TEST_F(AtomicFile, FifoAndDirectoryTargetsAreRejectedAndKept) {
    ASSERT_EQ(::mkfifo(p("fifo").c_str(), 0600), 0);
    fs::create_directory(p("dir"));
    expect_io_error([&] { io::write_file_atomic(p("fifo"), "x", 1); }, "a FIFO");
    expect_io_error([&] { io::write_file_atomic(p("dir"), "x", 1); }, "directory");
    EXPECT_TRUE(fs::is_fifo(p("fifo")));
    EXPECT_TRUE(fs::is_directory(p("dir")));
    EXPECT_TRUE(strays({"fifo", "dir"}).empty());
}

TEST_F(AtomicFile, DeviceNodeTargetIsRejectedAndKept) {
    // A character device of our own where we may make one (root); else /dev/null, which an
    // unprivileged process could not replace even if the check were missing.
    std::string node = p("null");
    if (::mknod(node.c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) {
        if (::access("/dev", W_OK) == 0) GTEST_SKIP() << "cannot make a device node, and /dev is writable";
        node = "/dev/null";
    }
    expect_io_error([&] { io::write_file_atomic(node, "x", 1); }, "character device");
    struct stat st {};
    ASSERT_EQ(::lstat(node.c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << node << " is no longer a device";
}

// A directory appeared at the second file's path after staging, so that file cannot be committed:
// the first target, which existed, keeps its content and is the very same file.
TEST_F(AtomicFile, FailedCommitLeavesExistingFilesAsTheyWere) {
    put(p("first"), "old first");
    const ino_t before = inode(p("first"));
    {
        io::OutputBatch batch;
        batch.stage(p("first"), std::string("new first"));
        batch.stage(p("second"), std::string("new second"));
        fs::create_directories(p("second/in_the_way"));
        expect_io_error([&] { batch.commit(); }, "second");
    }
    EXPECT_EQ(get(p("first")), "old first");
    EXPECT_EQ(inode(p("first")), before);
    EXPECT_TRUE(fs::is_directory(p("second")));
    EXPECT_TRUE(strays({"first", "second"}).empty()) << strays({"first", "second"})[0];
}

// Four outputs, two of them pre-existing, and the last rename failing inside commit() (its staged
// temporary file vanished): the renamed targets are put back -- the same files, not copies -- and
// an output that did not exist before is removed again.
TEST_F(AtomicFile, FailedCommitRestoresEveryEarlierTarget) {
    put(p("a"), "old a");
    put(p("b"), "old b");
    const ino_t a_before = inode(p("a")), b_before = inode(p("b"));
    {
        io::OutputBatch batch;
        batch.stage(p("a"), std::string("new a"));
        batch.stage(p("fresh"), std::string("new fresh"));
        batch.stage(p("b"), std::string("new b"));
        batch.stage(p("c"), std::string("new c"));
        int removed = 0;
        for (const auto& e : fs::directory_iterator(dir_))
            if (e.path().filename().string().rfind("c.tmp-", 0) == 0) removed += fs::remove(e.path());
        ASSERT_EQ(removed, 1);
        expect_io_error([&] { batch.commit(); }, "cannot create");
    }
    EXPECT_EQ(get(p("a")), "old a");
    EXPECT_EQ(get(p("b")), "old b");
    EXPECT_EQ(inode(p("a")), a_before);
    EXPECT_EQ(inode(p("b")), b_before);
    EXPECT_FALSE(fs::exists(p("fresh")));
    EXPECT_FALSE(fs::exists(p("c")));
    EXPECT_TRUE(strays({"a", "b"}).empty()) << strays({"a", "b"})[0];
}

// A target that turned into a symbolic link between stage() and commit() is not replaced either.
TEST_F(AtomicFile, TargetCheckedAgainAtCommit) {
    put(p("real"), "keep");
    io::OutputBatch batch;
    batch.stage(p("out"), std::string("new"));
    fs::create_symlink(p("real"), p("out"));
    expect_io_error([&] { batch.commit(); }, "symbolic link");
    EXPECT_TRUE(fs::is_symlink(p("out")));
    EXPECT_EQ(get(p("real")), "keep");
}

TEST_F(AtomicFile, ReadingADirectoryIsAnIoError) {
    fs::create_directory(p("dir"));
    expect_io_error([&] { io::read_file(p("dir")); }, "directory");
    expect_io_error([&] { io::read_file(p("missing")); }, "cannot open");
    put(p("f"), std::string("a\0b", 3));
    EXPECT_EQ(io::read_file(p("f")).size(), 3u);
}

}  // namespace
}  // namespace tca::detail
