// A build without the Vulkan backend (TCA_WITH_VULKAN=OFF) has no validation layer to listen to:
// this takes vk_validation_listener.cpp's place. check_validation_messages has nothing to check,
// and the shared devices are still closed after the last test, as there.
#include <gtest/gtest.h>

#include "harness.h"

namespace tca::detail::test {

namespace {

class CloseDevicesEnvironment : public ::testing::Environment {
    void TearDown() override { close_devices(); }
};

[[maybe_unused]] const bool g_installed = [] {
    ::testing::AddGlobalTestEnvironment(new CloseDevicesEnvironment);
    return true;
}();

}  // namespace

void check_validation_messages(const std::string&) {}

}  // namespace tca::detail::test
