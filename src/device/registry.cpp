#include "device/registry.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "device/backends.h"
#include "device/fault_injection.h"
#include "device/split_device.h"

namespace tca::detail {

namespace {

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
    return o;
}

const std::vector<DeviceInfo>& list_devices() {
    static const std::vector<DeviceInfo> all = [] {
        std::vector<DeviceInfo> v{cpu_device_info()};
        for (auto& d : opencl_devices()) v.push_back(d);
        for (auto& d : vulkan_devices()) v.push_back(d);
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
    if (int i = index_suffix(name, "opencl:"); i >= 0) return split(make_opencl_device(i, options));
    if (int i = index_suffix(name, "vulkan:"); i >= 0) return split(make_vulkan_device(i, options));
    throw Error(TCA_ERROR_DEVICE_NOT_FOUND, "no device named '" + name + "'");
}

}  // namespace tca::detail
