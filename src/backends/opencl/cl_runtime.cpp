// OpenCL backend: platforms and devices, listed once in a stable order, and what is known of each.
#include <algorithm>

#include "backends/opencl/cl_common.h"

namespace tca::detail::opencl {

bool has_extension(const std::string& extensions, const char* name) {
    return (" " + extensions + " ").find(" " + std::string(name) + " ") != std::string::npos;
}

namespace {

// Vendor extensions that report a device-wide subgroup width (queried by extension, not vendor name).
constexpr cl_device_info kSubGroupSizesIntel = 0x4108;  // cl_intel_required_subgroup_size
constexpr cl_device_info kWarpSizeNV = 0x4003;          // cl_nv_device_attribute_query
constexpr cl_device_info kWavefrontWidthAMD = 0x4043;   // cl_amd_device_attribute_query

uint32_t subgroup_size_of(cl_device_id d, const std::string& ext) {
    if (has_extension(ext, "cl_intel_required_subgroup_size")) {
        size_t n = 0;
        if (clGetDeviceInfo(d, kSubGroupSizesIntel, 0, nullptr, &n) == CL_SUCCESS && n >= sizeof(size_t)) {
            std::vector<size_t> sizes(n / sizeof(size_t));
            if (clGetDeviceInfo(d, kSubGroupSizesIntel, n, sizes.data(), nullptr) == CL_SUCCESS)
                return static_cast<uint32_t>(*std::max_element(sizes.begin(), sizes.end()));
        }
    }
    if (has_extension(ext, "cl_nv_device_attribute_query")) return device_value<cl_uint>(d, kWarpSizeNV);
    if (has_extension(ext, "cl_amd_device_attribute_query")) return device_value<cl_uint>(d, kWavefrontWidthAMD);
    return 0;  // cl_khr_subgroups only reports sizes per kernel
}

}  // namespace

// What the library knows of one device (its listing name given).
Entry make_entry(cl_platform_id p, cl_device_id d, const std::string& name) {
    Entry e;
    e.platform = p;
    e.device = d;
    e.platform_version = info_string(clGetPlatformInfo, p, CL_PLATFORM_VERSION);
    DeviceInfo& i = e.info;
    i.name = name;
    i.api = Api::opencl;
    i.vendor = info_string(clGetDeviceInfo, d, CL_DEVICE_VENDOR);
    i.device = info_string(clGetDeviceInfo, d, CL_DEVICE_NAME);
    i.driver = info_string(clGetDeviceInfo, d, CL_DRIVER_VERSION);
    const auto type = device_value<cl_device_type>(d, CL_DEVICE_TYPE);
    if (type & CL_DEVICE_TYPE_GPU)
        i.type = device_value<cl_bool>(d, CL_DEVICE_HOST_UNIFIED_MEMORY) ? TCA_DEVICE_INTEGRATED_GPU
                                                                         : TCA_DEVICE_DISCRETE_GPU;
    else if (type & CL_DEVICE_TYPE_CPU)
        i.type = TCA_DEVICE_CPU_DRIVER;
    else
        i.type = TCA_DEVICE_OTHER;
    i.global_memory = device_value<cl_ulong>(d, CL_DEVICE_GLOBAL_MEM_SIZE);
    i.max_allocation = device_value<cl_ulong>(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
    const std::string ext = info_string(clGetDeviceInfo, d, CL_DEVICE_EXTENSIONS);
    i.fp16_storage = true;  // vload_half / vstore_half are core
    i.fp16_arithmetic = has_extension(ext, "cl_khr_fp16");
    i.subgroup_size = subgroup_size_of(d, ext);
    i.subgroup_ops = false;  // no kernel relies on subgroups
    return e;
}

namespace {

std::vector<Entry> enumerate() {
    std::vector<Entry> out;
    cl_uint np = 0;
    if (clGetPlatformIDs(0, nullptr, &np) != CL_SUCCESS || np == 0) return out;
    std::vector<cl_platform_id> platforms(np);
    if (clGetPlatformIDs(np, platforms.data(), nullptr) != CL_SUCCESS) return out;
    // The ICD loader lists platforms in directory order; sort so "opencl:N" stays put.
    auto key = [](cl_platform_id p) {
        return info_string(clGetPlatformInfo, p, CL_PLATFORM_NAME) + '\n' +
               info_string(clGetPlatformInfo, p, CL_PLATFORM_VENDOR) + '\n' +
               info_string(clGetPlatformInfo, p, CL_PLATFORM_VERSION);
    };
    std::stable_sort(platforms.begin(), platforms.end(), [&](auto a, auto b) { return key(a) < key(b); });
    for (cl_platform_id p : platforms) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &nd) != CL_SUCCESS || nd == 0) continue;
        std::vector<cl_device_id> devices(nd);
        if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, nd, devices.data(), nullptr) != CL_SUCCESS) continue;
        for (cl_device_id d : devices) out.push_back(make_entry(p, d, "opencl:" + std::to_string(out.size())));
    }
    return out;
}

}  // namespace

const std::vector<Entry>& entries() {
    static const std::vector<Entry> all = [] {
        try {
            return enumerate();
        } catch (...) {
            return std::vector<Entry>{};
        }
    }();
    return all;
}

}  // namespace tca::detail::opencl
