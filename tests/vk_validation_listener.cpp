// Vulkan validation messages fail the test that produced them.
//
// The library's debug-utils messenger (and the messenger of every VkInstance a test creates itself,
// through vulkan_testing::record_validation_message) counts each warning or error of the validation
// layer in this process. A GoogleTest listener checks the count when each test ends and fails that
// test with the new messages; a global environment closes the harness's shared devices after the
// last test and checks once more, so that what device destruction makes the layer say (leaked
// objects, hazards found at the final submit) fails the run too. CTest runs every test in its own
// process, so either way the failing CTest case is the one that caused the message.
#include <gtest/gtest.h>

#include "backends/vulkan/vulkan_testing.h"
#include "harness.h"

namespace tca::detail::test {

namespace {

uint64_t g_checked = 0;  // messages already attributed to a test (or to the run)

class ValidationListener : public ::testing::EmptyTestEventListener {
    // OnTestEnd runs while the test is still the current one: a failure added here is the test's own.
    // (GoogleTest calls OnTestEnd of later-appended listeners first, so the printer sees it too.)
    void OnTestEnd(const ::testing::TestInfo&) override { check_validation_messages("during this test"); }
};

class ValidationEnvironment : public ::testing::Environment {
    void TearDown() override {
        close_devices();
        check_validation_messages("after the last test, closing the shared devices");
    }
};

[[maybe_unused]] const bool g_installed = [] {
    ::testing::UnitTest::GetInstance()->listeners().Append(new ValidationListener);
    ::testing::AddGlobalTestEnvironment(new ValidationEnvironment);
    return true;
}();

}  // namespace

void check_validation_messages(const std::string& where) {
    const uint64_t now = vulkan_testing::validation_message_count();
    if (now == g_checked) return;
    std::string text;
    for (const auto& m : vulkan_testing::validation_messages(g_checked)) text += "\n  [vulkan validation] " + m;
    const uint64_t n = now - g_checked;
    g_checked = now;
    ADD_FAILURE() << n << " Vulkan validation message(s) " << where << ":" << text;
}

}  // namespace tca::detail::test
