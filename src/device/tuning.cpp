// Device classes and the TCA_TUNING override parser (tuning.h).
#include "device/tuning.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace tca::detail {

namespace {

std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool contains(const std::string& hay, const char* needle) { return hay.find(needle) != std::string::npos; }

std::string field_list(const std::vector<TuningField>& fields) {
    std::string s;
    for (const auto& f : fields) s += (s.empty() ? "" : ", ") + std::string(f.name);
    return s;
}

[[noreturn]] void bad(const std::string& item, const std::string& why) {
    throw Error(TCA_ERROR_INVALID_ARGUMENT, "TCA_TUNING: '" + item + "': " + why);
}

// A decimal integer of at most 9 digits (no sign, no spaces): larger is no tile size.
bool parse_int(const std::string& v, int* out) {
    if (v.empty() || v.size() > 9 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return false;
    *out = std::stoi(v);
    return true;
}

}  // namespace

const char* device_class_name(DeviceClass c) {
    switch (c) {
        case DeviceClass::cpu_driver: return "cpu driver";
        case DeviceClass::nvidia: return "nvidia";
        case DeviceClass::amd: return "amd";
        case DeviceClass::intel: return "intel";
        case DeviceClass::gpu: return "gpu";
        case DeviceClass::other: return "other";
    }
    return "other";
}

DeviceClass classify_device(const DeviceInfo& d) {
    if (d.type == TCA_DEVICE_CPU_DRIVER) return DeviceClass::cpu_driver;
    if (d.type != TCA_DEVICE_DISCRETE_GPU && d.type != TCA_DEVICE_INTEGRATED_GPU) return DeviceClass::other;
    const std::string v = lower(d.vendor);
    if (contains(v, "nvidia")) return DeviceClass::nvidia;
    if (contains(v, "amd") || contains(v, "advanced micro")) return DeviceClass::amd;
    if (contains(v, "intel")) return DeviceClass::intel;
    return DeviceClass::gpu;
}

void apply_tuning_overrides(const std::string& spec, const char* api, const std::vector<TuningField>& fields) {
    if (spec.empty()) return;
    size_t start = 0;
    while (start <= spec.size()) {
        const size_t comma = std::min(spec.find(',', start), spec.size());
        const std::string item = spec.substr(start, comma - start);
        start = comma + 1;
        if (item.empty()) bad(item, "empty item (items are separated by single commas)");
        const size_t eq = item.find('=');
        if (eq == std::string::npos) bad(item, "expected field=value");
        std::string name = item.substr(0, eq);
        const size_t dot = name.find('.');
        if (dot != std::string::npos) {
            const std::string prefix = name.substr(0, dot);
            if (prefix != "opencl" && prefix != "vulkan") bad(item, "unknown API '" + prefix + "' (opencl or vulkan)");
            if (prefix != api) continue;  // the other API's item
            name = name.substr(dot + 1);
        }
        auto f = std::find_if(fields.begin(), fields.end(), [&](const TuningField& t) { return name == t.name; });
        if (f == fields.end())
            bad(item, "no tuning field '" + name + "' in the " + api + " backend (fields: " + field_list(fields) + ")");
        int value = 0;
        if (!parse_int(item.substr(eq + 1), &value)) bad(item, "the value is not a non-negative decimal integer");
        if (value < f->min || value > f->max)
            bad(item, std::string(f->name) + " must be in [" + std::to_string(f->min) + ", " + std::to_string(f->max) + "]");
        if (f->power_of_two && (value & (value - 1)) != 0) bad(item, std::string(f->name) + " must be a power of two");
        *f->value = value;
    }
}

}  // namespace tca::detail
