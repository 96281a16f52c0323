// Device discovery, naming and the default choice; in CI, the CPU drivers must be present so
// that no kernel test silently skips.
#include <cstdlib>

#include "device/registry.h"
#include "harness.h"

namespace tca::detail::test {
namespace {

TEST(Devices, ListStartsWithTheReference) {
    const auto& all = list_devices();
    ASSERT_FALSE(all.empty());
    EXPECT_EQ(all.front().name, "cpu");
    EXPECT_EQ(all.front().type, TCA_DEVICE_REFERENCE);
    for (const auto& d : all) {
        std::cout << "device " << d.name << ": " << d.device << " | " << d.vendor << " | " << d.driver << "\n";
        EXPECT_FALSE(d.device.empty()) << d.name;
        EXPECT_GT(d.max_allocation, 0u) << d.name;
    }
}

TEST(Devices, DriversPresentInCI) {
    int opencl = 0, vulkan = 0;
    for (const auto& d : list_devices()) {
        opencl += d.api == Api::opencl;
        vulkan += d.api == Api::vulkan;
    }
    std::cout << opencl << " OpenCL and " << vulkan << " Vulkan devices under test\n";
    // A backend left out at configure time lists nothing; CI requires the drivers of the built ones.
    const bool cl_built = component_built("opencl"), vk_built = component_built("vulkan");
    if (!cl_built) EXPECT_EQ(opencl, 0) << "OpenCL devices in a build without the OpenCL backend";
    if (!vk_built) EXPECT_EQ(vulkan, 0) << "Vulkan devices in a build without the Vulkan backend";
    if (!in_ci()) GTEST_SKIP() << "not in CI: a machine without drivers may skip GPU tests";
    if (cl_built) EXPECT_GE(opencl, 1) << "CI must run the OpenCL kernels (PoCL missing?)";
    if (vk_built) EXPECT_GE(vulkan, 1) << "CI must run the Vulkan kernels (lavapipe missing?)";
    if (!cl_built || !vk_built)
        GTEST_SKIP() << "built without " << (cl_built ? "" : "OpenCL ") << (vk_built ? "" : "Vulkan")
                     << ": those drivers are not required";
}

TEST(Devices, UnknownNameIsAClearError) {
    for (const char* bad : {"opencl:99", "vulkan:7", "gpu", "cpu:0", "opencl:", "vulkan:-1"}) {
        try {
            open_device(bad);
            ADD_FAILURE() << bad << " opened";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), TCA_ERROR_DEVICE_NOT_FOUND) << bad;
            EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
        }
    }
}

TEST(Devices, EnvironmentChoosesTheDefault) {
    ::setenv("TCA_DEVICE", "cpu", 1);
    EXPECT_EQ(default_device_name(), "cpu");
    ::unsetenv("TCA_DEVICE");
    // Without the variable the default is the best-ranked device, never the reference when a
    // driver is present.
    const std::string def = default_device_name();
    bool have_driver = false;
    for (const auto& d : list_devices()) have_driver |= d.api != Api::reference;
    if (have_driver) EXPECT_NE(def, "cpu");
}

TEST(Devices, ReferenceRejectsAllocationPastItsMaximum) {
    Device& d = reference();
    try {
        d.alloc(d.info().max_allocation + 1);
        ADD_FAILURE() << "allocation succeeded";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), TCA_ERROR_OUT_OF_MEMORY);
    }
}

TEST(Devices, EveryDeviceRejectsAllocationPastItsMaximum) {
    for (const auto& name : devices_under_test()) {
        Device& d = device(name);
        try {
            d.alloc(d.info().max_allocation + 4096);
            ADD_FAILURE() << name << ": allocation past the maximum succeeded";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), TCA_ERROR_OUT_OF_MEMORY) << name << ": " << e.what();
        }
    }
}

}  // namespace
}  // namespace tca::detail::test
