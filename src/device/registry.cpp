#include "device/registry.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "device/backends.h"
#include "device/fault_injection.h"
#include "device/interop.h"
#include "device/split_device.h"

// Which optional backends this library was configured with (CMakeLists.txt gives these to this
// file alone). The backend table below is the one place that knows: nothing else is #if'd.
#if !defined(TCA_WITH_OPENCL) || !defined(TCA_WITH_VULKAN) || !defined(TCA_WITH_CLBLAST)
#error "registry.cpp is compiled with TCA_WITH_OPENCL, TCA_WITH_VULKAN and TCA_WITH_CLBLAST (0 or 1) by CMake"
#endif

namespace tca::detail {

namespace {

// A GPU backend as the registry sees it: how it names its devices, lists and opens them.
struct BackendEntry {
    Api api;
    const char* prefix;  // device names are prefix + index
    std::vector<DeviceInfo> (*list)();
    std::unique_ptr<Device> (*open)(int index, const BackendOptions& options);
};

// In listing order: OpenCL before Vulkan (the default choice's tie-break).
const BackendEntry kBackends[] = {
#if TCA_WITH_OPENCL
    {Api::opencl, "opencl:", opencl_devices, make_opencl_device},
#endif
#if TCA_WITH_VULKAN
    {Api::vulkan, "vulkan:", vulkan_devices, make_vulkan_device},
#endif
    {Api::reference, nullptr, nullptr, nullptr},  // keeps the array non-empty in a CPU-only build
};

bool contains_nocase(const std::string& s, const std::string& word) {
    std::string lower(s.size(), '\0');
    std::transform(s.begin(), s.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return lower.find(word) != std::string::npos;
}

// A simulator or debugger: correct but thousands of times slower than any real device. Oclgrind
// claims every device type (GPU included, no unified memory), so by type it would be a discrete GPU.
bool is_simulator(const DeviceInfo& d) {
    return contains_nocase(d.vendor, "oclgrind") || contains_nocase(d.device, "oclgrind");
}

// Lower is better: the default choice prefers real GPUs, then CPU drivers, then the reference, and
// a simulator last of all: it is used only when named.
int preference(const DeviceInfo& d) {
    if (is_simulator(d)) return 6;
    switch (d.type) {
        case TCA_DEVICE_DISCRETE_GPU: return 0;
        case TCA_DEVICE_INTEGRATED_GPU: return 1;
        case TCA_DEVICE_CPU_DRIVER: return 2;
        case TCA_DEVICE_OTHER: return 3;
        case TCA_DEVICE_REFERENCE: return 4;
    }
    return 5;
}

int index_suffix(const std::string& name, const std::string& prefix) {
    if (name.rfind(prefix, 0) != 0) return -1;
    const std::string rest = name.substr(prefix.size());
    if (rest.empty() || rest.size() > 6 || !std::all_of(rest.begin(), rest.end(), ::isdigit)) return -1;
    return std::stoi(rest);
}

// TCA_MAX_BUFFER_BYTES: a positive decimal byte count.
uint64_t parse_buffer_bytes(const std::string& v) {
    uint64_t n = 0;
    bool ok = !v.empty() && v.size() <= 19 &&
              std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (ok) n = std::stoull(v);
    require(ok && n > 0, TCA_ERROR_INVALID_ARGUMENT,
            "TCA_MAX_BUFFER_BYTES='" + v + "' is not a positive number of bytes");
    return n;
}

}  // namespace

BackendOptions BackendOptions::from_environment() {
    BackendOptions o;
    if (const char* dir = std::getenv("TCA_CACHE_DIR")) {
        o.cache_dir = dir;  // "" disables the cache
    } else if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
        o.cache_dir = std::string(xdg) + "/tca";
    } else if (const char* home = std::getenv("HOME"); home && *home) {
        o.cache_dir = std::string(home) + "/.cache/tca";
    }
    if (const char* v = std::getenv("TCA_VULKAN_VALIDATION")) o.vulkan_validation = std::string(v) == "1";
    if (const char* v = std::getenv("TCA_MAX_BUFFER_BYTES"); v && *v) o.max_buffer_bytes = parse_buffer_bytes(v);
    if (const char* v = std::getenv("TCA_TUNING")) o.tuning = v;
    return o;
}

const std::vector<DeviceInfo>& list_devices() {
    static const std::vector<DeviceInfo> all = [] {
        std::vector<DeviceInfo> v{cpu_device_info()};
        for (const auto& b : kBackends)
            if (b.list)
                for (auto& d : b.list()) v.push_back(d);
        return v;
    }();
    return all;
}

namespace {

bool is_listed(const std::string& name) {
    const auto& all = list_devices();
    return std::any_of(all.begin(), all.end(), [&](const DeviceInfo& d) { return d.name == name; });
}

std::string listed_names() {
    std::string names;
    for (const auto& d : list_devices()) names += (names.empty() ? "" : ", ") + d.name;
    return names;
}

}  // namespace

std::string default_device_name() {
    if (const char* env = std::getenv("TCA_DEVICE"); env && *env) {
        // An unknown name is an error here, not later: `tca devices` and tca_default_device_name
        // must not report a default that no context can be created on.
        require(is_listed(env), TCA_ERROR_DEVICE_NOT_FOUND,
                std::string("TCA_DEVICE='") + env + "' names no device (available: " + listed_names() + ")");
        return env;
    }
    return best_device_name(list_devices());
}

std::string best_device_name(const std::vector<DeviceInfo>& devices) {
    if (devices.empty()) return "cpu";
    // stable: among equals, the listing order (opencl before vulkan, lower index first) wins
    const auto best = std::min_element(devices.begin(), devices.end(), [](const DeviceInfo& a, const DeviceInfo& b) {
        return preference(a) < preference(b);
    });
    return best->name;
}

std::unique_ptr<Device> open_device(const std::string& requested) {
    return open_device(requested, BackendOptions::from_environment());
}

std::unique_ptr<Device> open_device(const std::string& requested, const BackendOptions& options) {
    const std::string name = requested.empty() ? default_device_name() : requested;
    require(is_listed(name), TCA_ERROR_DEVICE_NOT_FOUND, "no device named '" + name + "' (available: " + listed_names() + ")");
    fault::arm_from_environment();  // a test hook (device/fault_injection.h); read here, never in ops
    const auto split = [&](std::unique_ptr<Device> d) { return make_split_device(std::move(d), options.max_buffer_bytes); };
    if (name == "cpu") return split(make_cpu_device());
    for (const auto& b : kBackends)
        if (b.open)
            if (int i = index_suffix(name, b.prefix); i >= 0) return split(b.open(i, options));
    throw Error(TCA_ERROR_DEVICE_NOT_FOUND, "no device named '" + name + "'");
}

bool component_built(const std::string& component) {
    if (component == "reference") return true;
    if (component == "opencl") return TCA_WITH_OPENCL;
    if (component == "vulkan") return TCA_WITH_VULKAN;
    if (component == "clblast") return TCA_WITH_CLBLAST;
    throw Error(TCA_ERROR_INVALID_ARGUMENT,
                "unknown component '" + component + "' (known: reference, opencl, vulkan, clblast)");
}

// ---- interop entry points of a backend left out at configure time --------------------------------
// The C API's interop calls exist in every build (the ABI does not depend on the configuration); for
// a backend that is not built they fail with TCA_ERROR_UNSUPPORTED and say why.
#if !TCA_WITH_OPENCL || !TCA_WITH_VULKAN
namespace {
[[noreturn]] void not_built(const char* what, const char* option) {
    throw Error(TCA_ERROR_UNSUPPORTED,
                std::string(what) + ": this libtca was built without it (" + option + "=OFF at configure time)");
}
}  // namespace
#endif

#if !TCA_WITH_OPENCL
std::unique_ptr<Device> make_opencl_device_external(void*, void*, void*, const BackendOptions&) {
    not_built("the OpenCL backend", "TCA_WITH_OPENCL");
}
Buffer opencl_wrap_buffer(Device&, void*) { not_built("the OpenCL backend", "TCA_WITH_OPENCL"); }
void opencl_wait_for(Device&, uint32_t, void* const*) { not_built("the OpenCL backend", "TCA_WITH_OPENCL"); }
void* opencl_last_event(Device&) { not_built("the OpenCL backend", "TCA_WITH_OPENCL"); }
#endif

#if !TCA_WITH_VULKAN
std::unique_ptr<Device> make_vulkan_device_external(const VulkanExternal&, const BackendOptions&) {
    not_built("the Vulkan backend", "TCA_WITH_VULKAN");
}
Buffer vulkan_wrap_buffer(Device&, uint64_t, uint64_t) { not_built("the Vulkan backend", "TCA_WITH_VULKAN"); }
void vulkan_begin_recording(Device&, void*) { not_built("the Vulkan backend", "TCA_WITH_VULKAN"); }
uint64_t vulkan_end_recording(Device&) { not_built("the Vulkan backend", "TCA_WITH_VULKAN"); }
void vulkan_release_recording(Device&, uint64_t) { not_built("the Vulkan backend", "TCA_WITH_VULKAN"); }
bool vulkan_recording_open(Device&) { return false; }
// No Vulkan, no validation layer: nothing was ever reported.
uint64_t vulkan_validation_message_count() { return 0; }
#endif

}  // namespace tca::detail
