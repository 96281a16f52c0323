// OpenCL backend: kernel sources (embedded, includes expanded), program builds and the on-disk
// binary cache (device/kernel_cache.h) keyed by a hash of everything that could change the binary.
#include <algorithm>
#include <sstream>

#include "backends/opencl/cl_device.h"
#include "device/embedded.h"
#include "device/kernel_cache.h"

namespace tca::detail::opencl {

namespace {

// Embedded sources have no file system behind them: `#include "x"` lines are replaced by the
// embedded file x, recursively (cl/*.cl include cl/*.h, which include src/iface/*.h). Each file is
// inlined once per program, as if every header had an include guard.
void expand_into(const std::string& file, std::string& out, std::vector<std::string>& seen, int depth) {
    if (depth > 8) throw Error(TCA_ERROR_INTERNAL, "opencl: includes nest deeper than 8 at " + file);
    const EmbeddedFile* f = embedded_cl(file);
    if (!f) throw Error(TCA_ERROR_INTERNAL, "opencl: kernel source " + file + " was not embedded");
    seen.push_back(file);
    std::istringstream in(std::string(reinterpret_cast<const char*>(f->data), f->size));
    std::string line;
    while (std::getline(in, line)) {
        const auto q0 = line.find('"');
        if (line.rfind("#include", 0) == 0 && q0 != std::string::npos) {
            const std::string name = line.substr(q0 + 1, line.find('"', q0 + 1) - q0 - 1);
            if (std::find(seen.begin(), seen.end(), name) == seen.end()) expand_into(name, out, seen, depth + 1);
        } else {
            out += line;
            out += '\n';
        }
    }
}

std::string expand_source(const std::string& file) {
    std::string out;
    std::vector<std::string> seen;
    expand_into(file, out, seen, 0);
    return out;
}

}  // namespace

// Builds (or loads from the cache) one program.
ProgramHandle OpenCLDevice::build(const std::string& source, const std::string& options) {
    // An injected build failure fires before the binary cache is looked at, so a warm cache cannot hide it.
    if (fault::inject(fault::Kind::build)) fail(CL_BUILD_PROGRAM_FAILURE, "clBuildProgram (injected)", TCA_ERROR_KERNEL_BUILD);
    // Everything that could change the binary names the entry (device/kernel_cache.h).
    const uint64_t key = kernel_cache::Hash().add(source).add(options).add(info_.device).add(info_.driver).add(platform_version_).value();
    const std::string path = cache_dir_.empty() ? "" : kernel_cache::entry_path(cache_dir_, "opencl", key);
    if (!path.empty()) {
        std::vector<unsigned char> bin;
        const kernel_cache::Lookup found = kernel_cache::load(path, key, &bin);
        if (found == kernel_cache::Lookup::hit) {
            if (ProgramHandle p = from_binary(bin, options); p.get()) {
                ++stats_.loaded;
                return p;
            }
        }
        if (found != kernel_cache::Lookup::missing) ++stats_.rejected;
    }
    ProgramHandle p = from_source(source, options);
    ++stats_.built;
    if (!path.empty()) {
        size_t n = 0;
        if (clGetProgramInfo(p.get(), CL_PROGRAM_BINARY_SIZES, sizeof n, &n, nullptr) == CL_SUCCESS && n > 0) {
            std::vector<unsigned char> bin(n);
            unsigned char* ptr = bin.data();
            if (clGetProgramInfo(p.get(), CL_PROGRAM_BINARIES, sizeof ptr, &ptr, nullptr) == CL_SUCCESS &&
                kernel_cache::store(path, key, bin.data(), bin.size()))
                ++stats_.stored;
        }
    }
    return p;
}

// A cached binary the driver refuses is not an error: the caller rebuilds from source.
ProgramHandle OpenCLDevice::from_binary(const std::vector<unsigned char>& bin, const std::string& options) {
    const size_t n = bin.size();
    const unsigned char* ptr = bin.data();
    cl_int status = CL_SUCCESS, err = CL_SUCCESS;
    ProgramHandle p(clCreateProgramWithBinary(context_.get(), 1, &device_, &n, &ptr, &status, &err));
    if (err != CL_SUCCESS || status != CL_SUCCESS) return {};
    if (clBuildProgram(p.get(), 1, &device_, options.c_str(), nullptr, nullptr) != CL_SUCCESS) return {};
    return p;
}

ProgramHandle OpenCLDevice::from_source(const std::string& source, const std::string& options) {
    const char* text = source.c_str();
    const size_t len = source.size();
    cl_int err = CL_SUCCESS;
    ProgramHandle p(clCreateProgramWithSource(context_.get(), 1, &text, &len, &err));
    if (err != CL_SUCCESS) fail(err, "clCreateProgramWithSource", TCA_ERROR_KERNEL_BUILD);
    err = clBuildProgram(p.get(), 1, &device_, options.c_str(), nullptr, nullptr);
    if (err != CL_SUCCESS) {
        if (is_memory_error(err)) fail(err, "clBuildProgram");
        const std::string log = info_string(
            [&](cl_program prog, cl_program_build_info param, size_t size, void* value, size_t* ret) {
                return clGetProgramBuildInfo(prog, device_, param, size, value, ret);
            },
            p.get(), CL_PROGRAM_BUILD_LOG);
        const std::string first_line = source.substr(0, source.find('\n'));
        throw Error(TCA_ERROR_KERNEL_BUILD, std::string("opencl: building a program (") + first_line +
                                                ") with options '" + options + "' for " + info_.device +
                                                " failed: " + cl_error_name(err) + "\nbuild log:\n" + log);
    }
    return p;
}

cl_kernel OpenCLDevice::kernel(const std::string& file, const std::string& options, const char* name) {
    Program& prog = programs_[file + '\n' + options];
    if (!prog.program.get()) prog.program = build(expand_source(file), options);
    KernelHandle& k = prog.kernels[name];
    if (!k.get()) {
        cl_int err = CL_SUCCESS;
        k = KernelHandle(fault::inject(fault::Kind::build) ? (err = CL_INVALID_KERNEL, nullptr)
                                                           : clCreateKernel(prog.program.get(), name, &err));
        if (err != CL_SUCCESS) fail(err, std::string("clCreateKernel ") + name + " from " + file, TCA_ERROR_KERNEL_BUILD);
    }
    return k.get();
}

// A kernel whose work-group size is a build option: built for `wg`, then for half of it
// while the compiled kernel cannot run that many work-items (private arrays grow with the
// head dim, and a small GPU may not fit a full group of them).

size_t OpenCLDevice::max_work_group(cl_kernel k) const {
    size_t most = 0;
    check(clGetKernelWorkGroupInfo(k, device_, CL_KERNEL_WORK_GROUP_SIZE, sizeof most, &most, nullptr),
          "clGetKernelWorkGroupInfo");
    return most;
}

}  // namespace tca::detail::opencl
