// The default device choice: real GPUs first, then CPU drivers, then the reference, and a
// simulator/debugger (Oclgrind) never, even when it is visible and claims to be a GPU.
// Oclgrind reports CL_DEVICE_TYPE "Accelerator, GPU, CPU, Default" without unified memory, so by its
// type alone it would rank as a discrete GPU and become the default of every run that can see it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cli_run.h"
#include "device/registry.h"

namespace tca::detail::test {
namespace {

namespace fs = std::filesystem;

DeviceInfo dev(const std::string& name, tca_device_type type, const std::string& vendor = "v",
               const std::string& device = "d") {
    DeviceInfo d;
    d.name = name;
    d.api = name == "cpu" ? Api::reference : name.rfind("opencl:", 0) == 0 ? Api::opencl : Api::vulkan;
    d.type = type;
    d.vendor = vendor;
    d.device = device;
    return d;
}

// The way the OpenCL backend describes Oclgrind 21.10 (vendor "Oclgrind", device "Oclgrind Simulator").
DeviceInfo oclgrind(const std::string& name) {
    return dev(name, TCA_DEVICE_DISCRETE_GPU, "Oclgrind", "Oclgrind Simulator");
}

TEST(RegistryDefault, RanksGpusThenCpuDriversThenReference) {
    const DeviceInfo cpu = dev("cpu", TCA_DEVICE_REFERENCE);
    const DeviceInfo pocl = dev("opencl:0", TCA_DEVICE_CPU_DRIVER, "The pocl project", "pthread-x86");
    const DeviceInfo igpu = dev("vulkan:0", TCA_DEVICE_INTEGRATED_GPU);
    const DeviceInfo dgpu = dev("vulkan:1", TCA_DEVICE_DISCRETE_GPU);
    EXPECT_EQ(best_device_name({cpu}), "cpu");
    EXPECT_EQ(best_device_name({cpu, pocl}), "opencl:0");
    EXPECT_EQ(best_device_name({cpu, pocl, igpu}), "vulkan:0");
    EXPECT_EQ(best_device_name({cpu, pocl, igpu, dgpu}), "vulkan:1");
    // On a tie the listing order wins (OpenCL before Vulkan).
    EXPECT_EQ(best_device_name({cpu, pocl, dev("vulkan:0", TCA_DEVICE_CPU_DRIVER)}), "opencl:0");
    EXPECT_EQ(best_device_name({}), "cpu");
}

TEST(RegistryDefault, OclgrindIsNeverTheDefault) {
    const DeviceInfo cpu = dev("cpu", TCA_DEVICE_REFERENCE);
    const DeviceInfo pocl = dev("opencl:1", TCA_DEVICE_CPU_DRIVER, "The pocl project", "pthread-x86");
    const DeviceInfo lvp = dev("vulkan:0", TCA_DEVICE_CPU_DRIVER, "Mesa", "llvmpipe");
    // Listed first (platform "Oclgrind" sorts before "Portable Computing Language") and typed as a GPU.
    EXPECT_EQ(best_device_name({cpu, oclgrind("opencl:0"), pocl, lvp}), "opencl:1");
    EXPECT_EQ(best_device_name({cpu, oclgrind("opencl:0"), lvp}), "vulkan:0");
    // Below the reference too: with nothing else it is still not picked.
    EXPECT_EQ(best_device_name({cpu, oclgrind("opencl:0")}), "cpu");
    // Recognised by vendor or by device name, whatever the case.
    EXPECT_EQ(best_device_name({cpu, dev("opencl:0", TCA_DEVICE_DISCRETE_GPU, "OCLGRIND", "x")}), "cpu");
    EXPECT_EQ(best_device_name({cpu, dev("opencl:0", TCA_DEVICE_DISCRETE_GPU, "x", "oclgrind simulator")}), "cpu");
}

// End to end: the real Oclgrind ICD made visible to the ICD loader beside PoCL; `tca devices`
// (a fresh process, so the loader reads this environment) must not name it the default.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        if (value) setenv(name, value->c_str(), 1);
        else unsetenv(name);
    }
    ~ScopedEnv() {
        if (old_) setenv(name_, old_->c_str(), 1);
        else unsetenv(name_);
    }

private:
    const char* name_;
    std::optional<std::string> old_;
};

TEST(RegistryDefault, VisibleOclgrindIcdIsNotChosen) {
    const fs::path lib = "/usr/lib/oclgrind/liboclgrind-rt-icd.so";
    const fs::path pocl_icd = "/etc/OpenCL/vendors/pocl.icd";
    if (!fs::exists(lib) || !fs::exists(pocl_icd)) {
        const char* ci = std::getenv("CI");
        if (ci && std::string(ci) == "true") FAIL() << "oclgrind or PoCL missing in CI (scripts/install-deps)";
        GTEST_SKIP() << "oclgrind or PoCL not installed";
    }
    std::random_device rd;
    const fs::path dir = fs::temp_directory_path() / ("tca-icd-test-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(dir);
    std::ofstream(dir / "oclgrind.icd") << lib.string() << "\n";
    fs::copy_file(pocl_icd, dir / "pocl.icd");

    std::string out;
    {
        ScopedEnv vendors("OCL_ICD_VENDORS", dir.string());
        ScopedEnv filenames("OCL_ICD_FILENAMES", std::nullopt);
        ScopedEnv device("TCA_DEVICE", std::nullopt);
        const CliRun r = run_cli("devices");
        out = r.output;
        EXPECT_EQ(r.code, 0) << out;
    }
    std::error_code ec;
    fs::remove_all(dir, ec);

    // The listing shows Oclgrind (so the check is real); the line marked "* " is the default.
    ASSERT_NE(out.find("Oclgrind Simulator"), std::string::npos) << "Oclgrind not listed:\n" << out;
    int marked = 0;
    for (size_t line = 0; line < out.size();) {
        const size_t end = out.find('\n', line);
        const std::string l = out.substr(line, end == std::string::npos ? std::string::npos : end - line);
        if (l.rfind("* ", 0) == 0) {
            ++marked;
            EXPECT_EQ(l.find("Oclgrind"), std::string::npos) << "Oclgrind is the default:\n" << out;
        }
        if (end == std::string::npos) break;
        line = end + 1;
    }
    EXPECT_EQ(marked, 1) << out;
}

}  // namespace
}  // namespace tca::detail::test
