// The OpenCL backend: OpenCL 1.2 through the ICD loader, any platform.
//
// Kernels live in cl/*.cl, embedded at build time. A program is built lazily, once per device
// and set of build options (head dim, K/V type, tile sizes), and its binary is kept in an
// on-disk cache keyed by a hash of everything that could change the binary. Tile and
// work-group sizes come from one tuning table keyed by device properties.
//
// Every op: validate(), then one or more kernel launches on a single in-order queue with
// profiling enabled; when profiling is on, the op's device time spans its first launch's start
// to its last launch's end.
#include "backends/opencl_device.h"

#include <CL/cl.h>
#include <clblast.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <utility>
#include <vector>

#include "core/checked.h"
#include "device/backends.h"
#include "device/embedded.h"
#include "device/fault_injection.h"
#include "device/interop.h"
#include "device/decode_tuning.h"
#include "iface/iface_copy.h"
#include "iface/iface_decode.h"

namespace tca::detail {

namespace {

// ---- tuning ---------------------------------------------------------------------------------------

struct Tuning {
    int prefill_bq;       // query rows per work-group, one per work-item (also colsum's keys per group)
    int prefill_bk;       // keys per local-memory tile; lowered further when local memory is short
    int score_wg;         // work-items per importance-score chunk
    int score_chunk;      // keys per importance-score chunk (multiple of score_wg)
    int reduce_wg;        // metric and select work-groups (power of two)
    int rank_wg;          // block-ranking work-groups
    DecodeTuning decode;  // decode layout and split-K (device/decode_tuning.h)
};

// The first row whose device type matches (0 = any) and whose local memory is at least
// min_local wins; the last row is the default.
struct TuningRow {
    const char* what;
    cl_device_type type;
    cl_ulong min_local;
    Tuning t;
};

const TuningRow kTuning[] = {
    // CPU drivers (PoCL): local memory is ordinary cached memory, so bigger tiles amortise the
    // per-tile barriers; few compute units, so few decode splits.
    {"cpu driver", CL_DEVICE_TYPE_CPU, 0, {128, 64, 64, 4096, 64, 64, kDecodeCpuRow}},
    {"gpu, >= 64 KiB local memory", CL_DEVICE_TYPE_GPU, 64 * 1024, {64, 32, 128, 2048, 128, 128, kDecodeGpuRow}},
    {"gpu", CL_DEVICE_TYPE_GPU, 0, {32, 16, 128, 2048, 128, 128, kDecodeGpuRow}},
    {"default", 0, 0, {32, 16, 64, 2048, 64, 64, DecodeTuning{}}},
};

const Tuning& pick_tuning(cl_device_type type, cl_ulong local_mem) {
    for (const auto& row : kTuning)
        if ((row.type == 0 || (row.type & type)) && local_mem >= row.min_local) return row.t;
    return kTuning[std::size(kTuning) - 1].t;
}

// ---- errors ----------------------------------------------------------------------------------------

const char* cl_error_name(cl_int e) {
    switch (e) {
#define TCA_CL_ERR(x) \
    case x: return #x;
        TCA_CL_ERR(CL_DEVICE_NOT_FOUND)
        TCA_CL_ERR(CL_DEVICE_NOT_AVAILABLE)
        TCA_CL_ERR(CL_COMPILER_NOT_AVAILABLE)
        TCA_CL_ERR(CL_MEM_OBJECT_ALLOCATION_FAILURE)
        TCA_CL_ERR(CL_OUT_OF_RESOURCES)
        TCA_CL_ERR(CL_OUT_OF_HOST_MEMORY)
        TCA_CL_ERR(CL_PROFILING_INFO_NOT_AVAILABLE)
        TCA_CL_ERR(CL_BUILD_PROGRAM_FAILURE)
        TCA_CL_ERR(CL_INVALID_VALUE)
        TCA_CL_ERR(CL_INVALID_DEVICE)
        TCA_CL_ERR(CL_INVALID_CONTEXT)
        TCA_CL_ERR(CL_INVALID_COMMAND_QUEUE)
        TCA_CL_ERR(CL_INVALID_MEM_OBJECT)
        TCA_CL_ERR(CL_INVALID_BINARY)
        TCA_CL_ERR(CL_INVALID_BUILD_OPTIONS)
        TCA_CL_ERR(CL_INVALID_PROGRAM)
        TCA_CL_ERR(CL_INVALID_PROGRAM_EXECUTABLE)
        TCA_CL_ERR(CL_INVALID_KERNEL_NAME)
        TCA_CL_ERR(CL_INVALID_KERNEL)
        TCA_CL_ERR(CL_INVALID_ARG_INDEX)
        TCA_CL_ERR(CL_INVALID_ARG_VALUE)
        TCA_CL_ERR(CL_INVALID_ARG_SIZE)
        TCA_CL_ERR(CL_INVALID_KERNEL_ARGS)
        TCA_CL_ERR(CL_INVALID_WORK_DIMENSION)
        TCA_CL_ERR(CL_INVALID_WORK_GROUP_SIZE)
        TCA_CL_ERR(CL_INVALID_WORK_ITEM_SIZE)
        TCA_CL_ERR(CL_INVALID_GLOBAL_OFFSET)
        TCA_CL_ERR(CL_INVALID_EVENT)
        TCA_CL_ERR(CL_INVALID_BUFFER_SIZE)
        TCA_CL_ERR(CL_INVALID_GLOBAL_WORK_SIZE)
#undef TCA_CL_ERR
        default: return "unknown OpenCL error";
    }
}

bool is_memory_error(cl_int e) {
    return e == CL_OUT_OF_RESOURCES || e == CL_MEM_OBJECT_ALLOCATION_FAILURE || e == CL_OUT_OF_HOST_MEMORY;
}

[[noreturn]] void fail(cl_int e, const std::string& what, tca_status otherwise = TCA_ERROR_BACKEND) {
    throw Error(is_memory_error(e) ? TCA_ERROR_OUT_OF_MEMORY : otherwise,
                "opencl: " + what + " failed: " + cl_error_name(e) + " (" + std::to_string(e) + ")");
}

void check(cl_int e, const char* what) {
    if (e != CL_SUCCESS) fail(e, what);
}

// Queries on handles the caller gave us: a driver's "invalid object" is the caller's bad argument.
void check_handle(cl_int e, const char* what) {
    if (e != CL_SUCCESS) fail(e, what, TCA_ERROR_INVALID_ARGUMENT);
}

// ---- small RAII holders ------------------------------------------------------------------------------

template <class T, cl_int(CL_API_CALL* Release)(T)>
class Handle {
public:
    Handle() = default;
    explicit Handle(T h) : h_(h) {}
    Handle(Handle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, nullptr);
        }
        return *this;
    }
    ~Handle() { reset(); }
    void reset() {
        if (h_) Release(h_);
        h_ = nullptr;
    }
    T get() const { return h_; }

private:
    T h_ = nullptr;
};

using ContextHandle = Handle<cl_context, clReleaseContext>;
using QueueHandle = Handle<cl_command_queue, clReleaseCommandQueue>;
using MemHandle = Handle<cl_mem, clReleaseMemObject>;
using ProgramHandle = Handle<cl_program, clReleaseProgram>;
using KernelHandle = Handle<cl_kernel, clReleaseKernel>;
using EventHandle = Handle<cl_event, clReleaseEvent>;

// ---- device queries ----------------------------------------------------------------------------------

template <class Get, class Obj, class Param>
std::string info_string(Get get, Obj obj, Param param) {
    size_t n = 0;
    if (get(obj, param, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
    std::string s(n, '\0');
    if (get(obj, param, n, s.data(), nullptr) != CL_SUCCESS) return {};
    while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
    return s;
}

template <class T>
T device_value(cl_device_id d, cl_device_info param, T fallback = T{}) {
    T v{};
    return clGetDeviceInfo(d, param, sizeof v, &v, nullptr) == CL_SUCCESS ? v : fallback;
}

bool has_extension(const std::string& extensions, const char* name) {
    return (" " + extensions + " ").find(" " + std::string(name) + " ") != std::string::npos;
}

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

struct Entry {
    DeviceInfo info;
    cl_platform_id platform = nullptr;
    cl_device_id device = nullptr;
    std::string platform_version;
};

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

// ---- program cache -----------------------------------------------------------------------------------

// FNV-1a, 64 bit: the cache key and the payload checksum.
struct Fnv {
    uint64_t h = 0xcbf29ce484222325ull;
    Fnv& add(const void* data, size_t n) {
        const auto* p = static_cast<const unsigned char*>(data);
        for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
        return *this;
    }
    Fnv& add(const std::string& s) { return add(s.data(), s.size() + 1); }  // + the NUL: fields stay apart
};

std::string hex64(uint64_t v) {
    char b[17];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
    return b;
}

// File layout: magic, payload size, payload checksum (all little-endian u64), payload. The
// checksum catches truncated or damaged files before a driver sees them.
constexpr char kCacheMagic[8] = {'T', 'C', 'A', 'C', 'L', 'B', 'N', '1'};

bool read_cache_file(const std::string& path, std::vector<unsigned char>& payload) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    char magic[8];
    uint64_t size = 0, sum = 0;
    if (!f.read(magic, 8) || std::memcmp(magic, kCacheMagic, 8) != 0) return false;
    if (!f.read(reinterpret_cast<char*>(&size), 8) || !f.read(reinterpret_cast<char*>(&sum), 8)) return false;
    if (size == 0 || size > (1ull << 30)) return false;
    payload.resize(size);
    if (!f.read(reinterpret_cast<char*>(payload.data()), std::streamsize(size))) return false;
    if (f.peek() != std::char_traits<char>::eof()) return false;
    return Fnv().add(payload.data(), payload.size()).h == sum;
}

// Written beside its final name, then renamed: readers see the old entry or the whole new one.
bool write_cache_file(const std::string& path, const std::vector<unsigned char>& payload) {
    std::random_device rd;
    const std::string tmp = path + ".tmp-" + hex64((uint64_t(rd()) << 32) | rd());
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        const uint64_t size = payload.size(), sum = Fnv().add(payload.data(), payload.size()).h;
        f.write(kCacheMagic, 8);
        f.write(reinterpret_cast<const char*>(&size), 8);
        f.write(reinterpret_cast<const char*>(&sum), 8);
        f.write(reinterpret_cast<const char*>(payload.data()), std::streamsize(payload.size()));
        if (!f.flush()) {
            std::error_code ec;
            std::filesystem::remove(tmp, ec);
            return false;
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) std::filesystem::remove(tmp, ec);
    return !ec;
}

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

// ---- buffers and kernel arguments --------------------------------------------------------------------

struct ClBuffer : BufferImpl {
    MemHandle mem;
    const void* owner = nullptr;  // the device that allocated it
    fault::LiveBuffer live{Api::opencl};
};

// A tensor as a kernel sees it: buffer, element offset, head stride, token stride.
struct TensorArg {
    cl_mem mem;
    cl_long off, hs, ts;
};
// An int32/float32 array: buffer and offset in 4-byte elements (null buffer when absent).
struct ViewArg {
    cl_mem mem;
    cl_long off;
};

void set_arg(cl_kernel k, cl_uint& i, cl_mem m) { check(clSetKernelArg(k, i++, sizeof m, &m), "clSetKernelArg"); }
void set_arg(cl_kernel k, cl_uint& i, cl_int v) { check(clSetKernelArg(k, i++, sizeof v, &v), "clSetKernelArg"); }
void set_arg(cl_kernel k, cl_uint& i, cl_long v) { check(clSetKernelArg(k, i++, sizeof v, &v), "clSetKernelArg"); }
void set_arg(cl_kernel k, cl_uint& i, cl_float v) { check(clSetKernelArg(k, i++, sizeof v, &v), "clSetKernelArg"); }
void set_arg(cl_kernel k, cl_uint& i, const TensorArg& t) {
    set_arg(k, i, t.mem);
    set_arg(k, i, t.off);
    set_arg(k, i, t.hs);
    set_arg(k, i, t.ts);
}
// A family's parameter block (src/iface/iface_*.h), passed as one by-value struct argument.
template <class P>
struct ParamsArg {
    const P& p;
};
template <class P>
ParamsArg<P> params(const P& p) {
    return {p};
}
template <class P>
void set_arg(cl_kernel k, cl_uint& i, ParamsArg<P> a) {
    check(clSetKernelArg(k, i++, sizeof(P), &a.p), "clSetKernelArg");
}
void set_arg(cl_kernel k, cl_uint& i, const ViewArg& v) {
    set_arg(k, i, v.mem);
    set_arg(k, i, v.off);
}

// Global and local sizes; a zero local size lets the driver choose. Global sizes are rounded
// up to a multiple of the local size; kernels check their bounds.
struct Range {
    size_t n[3] = {1, 1, 1};
    cl_uint dims = 1;
    Range(size_t x) : dims(1) { n[0] = x; }
    Range(size_t x, size_t y) : dims(2) { n[0] = x, n[1] = y; }
    Range(size_t x, size_t y, size_t z) : dims(3) { n[0] = x, n[1] = y, n[2] = z; }
};
const Range kAnyLocal{0};

size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
int ceil_div(int a, int b) { return int((int64_t(a) + b - 1) / b); }  // a + b - 1 may pass INT_MAX

std::string kv_options(const Tensor& kv) {
    return "-D HEAD_DIM=" + std::to_string(kv.dim) + " -D KV_HALF=" + (kv.dtype == DType::f16 ? "1" : "0");
}
std::string define(const char* name, int value) { return std::string(" -D ") + name + "=" + std::to_string(value); }

// ---- the device ----------------------------------------------------------------------------------

class OpenCLDevice final : public Device {
public:
    OpenCLDevice(const Entry& e, const BackendOptions& options)
        : info_(e.info), device_(e.device), platform_version_(e.platform_version), cache_dir_(options.cache_dir) {
        cl_int err = CL_SUCCESS;
        const cl_context_properties props[] = {CL_CONTEXT_PLATFORM, reinterpret_cast<cl_context_properties>(e.platform),
                                               0};
        context_ = ContextHandle(clCreateContext(props, 1, &device_, nullptr, nullptr, &err));
        check(err, "clCreateContext");
        queue_ = QueueHandle(clCreateCommandQueue(context_.get(), device_, CL_QUEUE_PROFILING_ENABLE, &err));
        check(err, "clCreateCommandQueue");
        setup();
    }

    // On the caller's objects (interop): they were checked to fit together and are retained here, so
    // the handles release exactly the references this device took.
    OpenCLDevice(const Entry& e, cl_context context, cl_command_queue queue, const BackendOptions& options)
        : info_(e.info), device_(e.device), platform_version_(e.platform_version), cache_dir_(options.cache_dir) {
        check(clRetainContext(context), "clRetainContext");
        context_ = ContextHandle(context);
        check(clRetainCommandQueue(queue), "clRetainCommandQueue");
        queue_ = QueueHandle(queue);
        queue_profiling_ = device_value_of_queue(queue, CL_QUEUE_PROPERTIES) & CL_QUEUE_PROFILING_ENABLE;
        setup();
    }

    void setup() {
        local_mem_ = device_value<cl_ulong>(device_, CL_DEVICE_LOCAL_MEM_SIZE, 16 * 1024);
        compute_units_ = std::max<cl_uint>(1, device_value<cl_uint>(device_, CL_DEVICE_MAX_COMPUTE_UNITS));
        max_wg_ = device_value<size_t>(device_, CL_DEVICE_MAX_WORK_GROUP_SIZE, 64);
        tuning_ = pick_tuning(device_value<cl_device_type>(device_, CL_DEVICE_TYPE), local_mem_);
        for (int* wg : {&tuning_.prefill_bq, &tuning_.decode.wg, &tuning_.score_wg, &tuning_.reduce_wg, &tuning_.rank_wg})
            while (size_t(*wg) > max_wg_ && *wg > 1) *wg /= 2;  // sizes are powers of two
        if (!cache_dir_.empty()) {
            std::error_code ec;
            std::filesystem::create_directories(cache_dir_, ec);  // failure only means no caching
        }
    }

    ~OpenCLDevice() override {
        if (queue_.get()) clFinish(queue_.get());
        for (auto& p : pending_) release_pending(p);
    }

    const DeviceInfo& info() const override { return info_; }

    // ---- memory ----

    Buffer alloc(size_t bytes) override {
        require(bytes <= info_.max_allocation, TCA_ERROR_OUT_OF_MEMORY,
                "opencl: allocation of " + std::to_string(bytes) + " bytes exceeds " + info_.name +
                    "'s maximum allocation of " + std::to_string(info_.max_allocation) + " bytes");
        cl_int err = CL_SUCCESS;
        auto b = std::make_shared<ClBuffer>();
        b->mem = MemHandle(create_buffer(std::max<size_t>(bytes, 1), &err));
        if (err != CL_SUCCESS) fail(err, "clCreateBuffer of " + std::to_string(bytes) + " bytes");
        b->size = bytes;
        b->owner = this;
        return b;
    }

    void write(const BufView& dst, const void* src, size_t bytes) override {
        require(range_fits(dst.offset, bytes, dst.buf->size), TCA_ERROR_SHAPE_MISMATCH, "write past the end of a buffer");
        if (bytes)
            check(clEnqueueWriteBuffer(queue_.get(), mem(dst), CL_TRUE, dst.offset, bytes, src, 0, nullptr, nullptr),
                  "clEnqueueWriteBuffer");
    }
    void read(const BufView& src, void* dst, size_t bytes) override {
        require(range_fits(src.offset, bytes, src.buf->size), TCA_ERROR_SHAPE_MISMATCH, "read past the end of a buffer");
        if (bytes)
            check(clEnqueueReadBuffer(queue_.get(), mem(src), CL_TRUE, src.offset, bytes, dst, 0, nullptr, nullptr),
                  "clEnqueueReadBuffer");
    }
    void fill_zero(const BufView& dst, size_t bytes) override {
        require(range_fits(dst.offset, bytes, dst.buf->size), TCA_ERROR_SHAPE_MISMATCH, "fill past the end of a buffer");
        const cl_uchar zero = 0;
        if (bytes)
            check(clEnqueueFillBuffer(queue_.get(), mem(dst), &zero, 1, dst.offset, bytes, 0, nullptr, nullptr),
                  "clEnqueueFillBuffer");
    }
    void finish() override { check(clFinish(queue_.get()), "clFinish"); }
    void flush() override { check(clFlush(queue_.get()), "clFlush"); }

    // Timings need events with timestamps, which only a queue made with profiling has.
    void set_profiling(bool on) override {
        require(!on || queue_profiling_, TCA_ERROR_UNSUPPORTED,
                "opencl: stage timings need a command queue created with CL_QUEUE_PROFILING_ENABLE");
        profiling_ = on;
    }

    // The caller's cl_mem as one of this device's buffers: same cl_context required; retained here and
    // released (never freed) when the last view of it goes.
    Buffer wrap(cl_mem m) {
        cl_context owner = nullptr;
        check_handle(clGetMemObjectInfo(m, CL_MEM_CONTEXT, sizeof owner, &owner, nullptr), "clGetMemObjectInfo");
        require(owner == context_.get(), TCA_ERROR_INVALID_ARGUMENT,
                "opencl: the cl_mem belongs to another cl_context than this context's");
        cl_mem_object_type type = 0;
        check_handle(clGetMemObjectInfo(m, CL_MEM_TYPE, sizeof type, &type, nullptr), "clGetMemObjectInfo");
        require(type == CL_MEM_OBJECT_BUFFER, TCA_ERROR_INVALID_ARGUMENT, "opencl: the cl_mem is not a buffer");
        size_t bytes = 0;
        check_handle(clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof bytes, &bytes, nullptr), "clGetMemObjectInfo");
        check(clRetainMemObject(m), "clRetainMemObject");
        auto b = std::make_shared<ClBuffer>();
        b->mem = MemHandle(m);
        b->size = bytes;
        b->owner = this;
        return b;
    }

    std::vector<OpTiming> take_timings() override {
        finish();
        std::vector<OpTiming> out;
        for (auto& p : pending_) {
            cl_ulong t0 = 0, t1 = 0;
            check(clGetEventProfilingInfo(p.first, CL_PROFILING_COMMAND_START, sizeof t0, &t0, nullptr),
                  "clGetEventProfilingInfo");
            check(clGetEventProfilingInfo(p.last, CL_PROFILING_COMMAND_END, sizeof t1, &t1, nullptr),
                  "clGetEventProfilingInfo");
            out.push_back({p.op, t1 > t0 ? double(t1 - t0) * 1e-6 : 0.0});
            release_pending(p);
        }
        pending_.clear();
        return out;
    }

    // ---- ops ----

    void prefill(const PrefillArgs& a) override {
        validate(a);
        OpScope op(*this, a.sparse() ? "attend_sparse" : "attend_dense");
        const int bk = key_tile(a.q.dim, 2);
        const auto [k, bq] = fitted("prefill.cl", "attend", tuning_.prefill_bq,
                                    [&](int wg) { return kv_options(a.k) + define("BQ", wg) + define("BK", bk); });
        launch(k, Range(size_t(ceil_div(a.q.tokens, bq)) * bq, a.q.heads),
               Range(bq, 1), tensor(a.q), tensor(a.k), tensor(a.v), tensor(a.o), a.q.tokens, a.k.tokens, a.q_pos0,
               a.q.heads / a.k.heads, default_scale(a.scale, a.q.dim), cl_int(a.sparse()), a.window, view(a.kept_idx),
               a.kept_stride, view(a.kept_count));
    }

    // Enough split-K partitions to fill the device, so the choice depends on the number of heads.
    // Planned over the live rows (DecodeArgs::planned_rows), not segment 2's capacity.
    int decode_splits(const DecodeArgs& a) const override {
        const DecodeTuning& t = tuning_.decode;
        const int64_t n_max = std::max<int64_t>(1, a.planned_rows());
        const int64_t by_work = (n_max + t.min_keys - 1) / std::max(1, t.min_keys);
        const int by_occupancy = std::max(1, int(compute_units_) * t.wgs_per_cu / std::max(1, a.k1.heads));
        return int(std::max<int64_t>(1, std::min<int64_t>(by_work, by_occupancy)));
    }

    // Build constants of the decode layout for `a` (iface_decode.h): lanes per row, and the largest
    // tile (<= the tuning's) whose local memory fits the device.
    std::string decode_options(const DecodeArgs& a, int wg) const {
        const DecodeTuning& t = tuning_.decode;
        const int d4 = a.q.dim / 4, group = a.q.heads / a.k1.heads;
        int tpr = t.tpr > 0 ? std::min(t.tpr, d4) : d4;
        while (tpr > 1 && (d4 % tpr != 0 || wg % tpr != 0)) tpr /= 2;  // a power of two dividing both
        const int rp = wg / tpr;
        int tile = std::max(t.tile, rp);
        auto bytes = [&](int tl) {
            return size_t(group) * (2 * d4 * 16 + tl * 4 + (tpr > 1 ? size_t(tl) * tpr * 4 : 0) + 8);
        };
        while (tile > rp && bytes(tile) + 1024 > local_mem_) tile /= 2;
        tile = std::max(rp, tile / rp * rp);
        return kv_options(a.k1) + define("DEC_WG", wg) + define("DEC_GROUP", group) + define("DEC_TPR", tpr) +
               define("DEC_TILE", tile);
    }

    void decode(const DecodeArgs& a) override {
        validate(a);
        OpScope op(*this, "decode");
        const int hq = a.q.heads, hkv = a.k1.heads, d = a.q.dim;
        const bool seg2 = static_cast<bool>(a.k2.data);
        // Segment-2 counts live on the device: splits follow the caller's bound on them.
        const int n_max = std::max(1, checked_narrow<int>(a.planned_rows(), "decode keys"));
        int splits = a.splits > 0 ? a.splits : decode_splits(a);
        splits = std::clamp(splits, 1, n_max);
        const int split_len = ceil_div(n_max, splits);
        splits = ceil_div(n_max, split_len);

        DecodeParams p{};
        auto u32 = [](int64_t v, const char* what) { return checked_narrow<uint32_t>(v, what); };
        auto off = [&](const Tensor& t) { return u32(int64_t(t.data.offset / dtype_size(t.dtype)), "decode tensor offset"); };
        p.q_off = off(a.q), p.q_hs = u32(a.q.head_stride, "q head stride");
        p.o_off = off(a.o), p.o_hs = u32(a.o.head_stride, "o head stride");
        p.k1_off = off(a.k1), p.k1_hs = u32(a.k1.head_stride, "k1 head stride"), p.k1_ts = u32(a.k1.token_stride, "k1 token stride");
        p.v1_off = off(a.v1), p.v1_hs = u32(a.v1.head_stride, "v1 head stride"), p.v1_ts = u32(a.v1.token_stride, "v1 token stride");
        if (seg2) {
            p.k2_off = off(a.k2), p.k2_hs = u32(a.k2.head_stride, "k2 head stride"), p.k2_ts = u32(a.k2.token_stride, "k2 token stride");
            p.v2_off = off(a.v2), p.v2_hs = u32(a.v2.head_stride, "v2 head stride"), p.v2_ts = u32(a.v2.token_stride, "v2 token stride");
            p.n2_off = u32(int64_t(a.n2.offset / 4), "n2 offset"), p.k2_rows = u32(a.k2.tokens, "k2 rows");
        }
        p.n1 = u32(a.n1, "n1"), p.has2 = seg2 ? 1 : 0;
        p.split_len = u32(split_len, "decode split length"), p.nsplit = u32(splits, "decode splits");
        const size_t ml_floats = checked_product({hq, splits, 2}, "decode partials");
        const size_t o_floats = checked_product({hq, splits, d}, "decode partial outputs");
        p.part_o = u32(int64_t(ml_floats), "decode partials");
        p.part_merged = u32(int64_t(checked_add(ml_floats, o_floats, "decode partials")), "decode partials");
        if (a.probs) p.probs_off = u32(int64_t(a.probs.offset / 4), "probs offset"), p.probs_n = u32(a.probs_n, "probs_n");
        p.scale = default_scale(a.scale, d);
        const cl_mem part = scratch(kDecodePart, checked_mul(size_t(p.part_merged) + size_t(hq) * 2, 4, "decode partials"));

        const auto [split_kernel, wg] = fitted("decode.cl", "decode_split", tuning_.decode.wg,
                                               [&](int w) { return decode_options(a, w); });
        const std::string opts = decode_options(a, wg);
        const BufView k2 = seg2 ? a.k2.data : a.k1.data, v2 = seg2 ? a.v2.data : a.v1.data;
        launch(split_kernel, Range(size_t(splits) * wg, hkv), Range(wg, 1), mem(a.q.data), mem(a.k1.data),
               mem(a.v1.data), mem(k2), mem(v2), seg2 ? mem(a.n2) : mem(a.k1.data), part, params(p));
        launch(kernel("decode.cl", opts, "decode_merge"), Range(d / 4, hq), kAnyLocal, part, mem(a.o.data), params(p));
        if (a.probs)
            launch(kernel("decode.cl", opts, "decode_probs"), Range(size_t(ceil_div(a.probs_n, wg)) * wg, hkv), Range(wg, 1), mem(a.q.data),
                   mem(a.k1.data), part, mem(a.probs), params(p));
    }

    void score(const ScoreArgs& a) override {
        validate(a);
        OpScope op(*this, "score");
        const int hq = a.q.heads, hkv = a.k.heads, group = hq / hkv;
        const int wg = tuning_.score_wg, chunk = tuning_.score_chunk;
        const int chunks = ceil_div(a.n_keys, chunk);
        const cl_mem part = scratch(kScoreParts, checked_product({hq, chunks, 2, 4}, "score partials"));
        const cl_mem ml = scratch(kScoreMerged, size_t(hq) * 2 * 4);
        const std::string opts = kv_options(a.k) + define("SC_WG", wg);
        const float scale = default_scale(a.scale, a.q.dim);
        // One query head per KV head: its logits fit in s, so K is read once. Otherwise the
        // normalising pass recomputes the group's logits (s holds only one value per key).
        const cl_int logits_in_s = group == 1;
        launch(kernel("score.cl", opts, "score_stats"), Range(size_t(chunks) * wg, hkv), Range(wg, 1), tensor(a.q),
               a.q_row, tensor(a.k), a.n_keys, group, scale, chunk, view(a.s), a.s_stride, logits_in_s, part);
        launch(kernel("score.cl", opts, "score_merge"), Range(hq), kAnyLocal, part, chunks, ml);
        launch(kernel("score.cl", opts, "score_norm"), Range(a.n_keys, hkv), kAnyLocal, tensor(a.q), a.q_row,
               tensor(a.k), a.n_keys, group, scale, view(a.s), a.s_stride, logits_in_s, ml);
    }

    void metric(const MetricArgs& a) override {
        validate(a);
        OpScope op(*this, "metric");
        const int nb = n_blocks_of(a.n_global, a.block), wg = tuning_.reduce_wg;
        launch(kernel("select.cl", define("RED_WG", wg), "metric"), Range(size_t(nb) * wg, a.heads), Range(wg, 1),
               view(a.s), a.s_stride, a.n_global, a.block, a.alpha, view(a.h));
    }

    void rank(const RankArgs& a) override {
        validate(a);
        OpScope op(*this, "sort");
        const int wg = tuning_.rank_wg;
        launch(kernel("select.cl", define("RANK_WG", wg), "rank"), Range(size_t(ceil_div(a.n_blocks, wg)) * wg, a.heads),
               Range(wg, 1), view(a.h), a.n_blocks, view(a.order));
    }

    void select(const SelectArgs& a) override {
        validate(a);
        OpScope op(*this, "select");
        const int nb = n_blocks_of(a.n_global, a.block), wg = tuning_.reduce_wg;
        const cl_mem keep = scratch(kSelectKeep, checked_product({a.heads, nb, 4}, "select keep counts"));
        const cl_mem offsets = scratch(kSelectOffsets, checked_product({a.heads, nb, 4}, "select offsets"));
        const std::string opts = define("RED_WG", wg);
        launch(kernel("select.cl", opts, "select_offsets"), Range(wg, a.heads), Range(wg, 1), view(a.order),
               view(a.budget), nb, a.n_global, a.block, keep, offsets, view(a.count), a.idx_stride);
        launch(kernel("select.cl", opts, "select_tokens"), Range(size_t(nb) * wg, a.heads), Range(wg, 1), view(a.s),
               a.s_stride, a.n_global, a.block, keep, offsets, view(a.idx), a.idx_stride);
    }

    void gather(const GatherArgs& a) override {
        validate(a);
        OpScope op(*this, "gather");
        const int heads = a.src_k.heads;
        // Rows are copied as raw units, as wide as every offset and stride allows.
        const size_t es = dtype_size(a.src_k.dtype);
        size_t ub = 8;
        for (const Tensor* t : {&a.src_k, &a.src_v, &a.dst_k, &a.dst_v})
            while (ub > es && (t->data.offset % ub || (t->head_stride * es) % ub || (t->token_stride * es) % ub ||
                               (t->dim * es) % ub))
                ub /= 2;
        const int units = int(a.src_k.dim * es / ub);
        const std::string opts = std::string("-D UNIT_T=") + (ub == 8 ? "ulong" : ub == 4 ? "uint" : "ushort");
        int rows = a.count ? a.dst_k.tokens : a.uniform_count;
        if (a.count && a.idx) rows = std::min(rows, a.idx_stride);
        if (rows > 0)
            launch(kernel("gather.cl", opts, "gather_rows"), Range(units, rows, heads), kAnyLocal, in_units(a.src_k, ub),
                   in_units(a.src_v, ub), in_units(a.dst_k, ub), in_units(a.dst_v, ub), units, a.src_k.tokens, a.dst_k.tokens,
                   a.src_row0, view(a.idx), a.idx_stride, view(a.count), a.uniform_count, view(a.dst_off),
                   view(a.pos_out), a.pos_stride, a.pos_base);
        // A separate launch: every row copy has read dst_off before any length (maybe the same
        // buffer) is written.
        if (a.dst_len)
            launch(kernel("gather.cl", opts, "gather_len"), Range(heads), kAnyLocal, view(a.count), a.uniform_count,
                   view(a.dst_off), view(a.dst_len));
    }

    void colsum(const ColsumArgs& a) override {
        validate(a);
        OpScope op(*this, "colsum");
        const int L = a.k.tokens, hq = a.q.heads, hkv = a.k.heads, group = hq / hkv;
        const int bk = key_tile(a.q.dim, 1);
        const cl_mem stats = scratch(kColsumStats, checked_product({hq, L, 2, 4}, "colsum statistics"));
        const auto options = [&](int wg) { return kv_options(a.k) + define("BQ", wg) + define("BK", bk); };
        // Both kernels come from one program, so they share the work-group size.
        const int bq = std::min(fitted("colsum.cl", "colsum_stats", tuning_.prefill_bq, options).second,
                                fitted("colsum.cl", "colsum_cols", tuning_.prefill_bq, options).second);
        const float scale = default_scale(a.scale, a.q.dim);
        const Range tiles(size_t(ceil_div(L, bq)) * bq, hq);
        launch(kernel("colsum.cl", options(bq), "colsum_stats"), tiles, Range(bq, 1), tensor(a.q), tensor(a.k), L,
               group, scale, stats);
        launch(kernel("colsum.cl", options(bq), "colsum_cols"), Range(tiles.n[0], hkv), Range(bq, 1), tensor(a.q),
               tensor(a.k), L, group, scale, stats, view(a.c), a.c_stride);
    }

    // ---- roofline probes ----

    void stream_copy(const CopyArgs& a) override {
        validate(a);
        OpScope op(*this, "copy");
        const size_t units = a.bytes / 16, wg = std::min<size_t>(max_wg_, 256);
        CopyParams p{};
        p.src_off = checked_narrow<uint32_t>(a.src.offset / 16, "copy source offset");
        p.dst_off = checked_narrow<uint32_t>(a.dst.offset / 16, "copy destination offset");
        p.n = checked_narrow<uint32_t>(units, "copy size");
        p.gx = 0;  // a 1-D range on OpenCL
        launch(kernel("copy.cl", "", "copy_u4"), Range(units), Range(wg), mem(a.src), mem(a.dst), params(p));
    }

    // CLBlast's tuned GEMM. It may enqueue several kernels (padding, transposes), so the op is
    // timed between two markers rather than by one kernel's event.
    void gemm(const GemmArgs& a) override {
        validate(a);
        require(gemm_supported(a.dtype), TCA_ERROR_UNSUPPORTED,
                "opencl: " + info_.device + " has no cl_khr_fp16, so CLBlast HGEMM cannot run");
        OpScope op(*this, "gemm");
        marker();
        cl_command_queue q = queue_.get();
        const size_t es = dtype_size(a.dtype);
        const auto L = clblast::Layout::kRowMajor;
        const auto N = clblast::Transpose::kNo;
        clblast::StatusCode st;
        if (a.dtype == DType::f32)
            st = clblast::Gemm<float>(L, N, N, a.m, a.n, a.k, 1.0f, mem(a.a), a.a.offset / es, a.k, mem(a.b),
                                      a.b.offset / es, a.n, 0.0f, mem(a.c), a.c.offset / es, a.n, &q, nullptr);
        else
            st = clblast::Gemm<cl_half>(L, N, N, a.m, a.n, a.k, cl_half(0x3c00), mem(a.a), a.a.offset / es, a.k,
                                        mem(a.b), a.b.offset / es, a.n, cl_half(0), mem(a.c), a.c.offset / es, a.n,
                                        &q, nullptr);
        if (st != clblast::StatusCode::kSuccess) {
            const int code = int(st);
            if (code <= 0 && code >= -70) fail(cl_int(code), "CLBlast GEMM");  // an OpenCL error code
            throw Error(TCA_ERROR_BACKEND, "opencl: CLBlast GEMM failed with CLBlast status " + std::to_string(code));
        }
        marker();
    }
    bool gemm_supported(DType t) const override { return t == DType::f32 || info_.fp16_arithmetic; }
    std::string gemm_engine(DType t) const override {
        return gemm_supported(t) ? (t == DType::f32 ? "CLBlast SGEMM" : "CLBlast HGEMM") : "";
    }

    // ---- test hooks ----
    opencl_testing::ProgramCacheStats cache_stats() const { return stats_; }
    void build_for_test(const std::string& source, const std::string& options) { build(source, options); }
    // Test hook: another decode row (e.g. the GPU row on a CPU driver); sizes as setup() fits them.
    DecodeTuning set_decode_tuning(const DecodeTuning& t) {
        const DecodeTuning old = tuning_.decode;
        tuning_.decode = t;
        while (size_t(tuning_.decode.wg) > max_wg_ && tuning_.decode.wg > 1) tuning_.decode.wg /= 2;
        return old;
    }
    void release_scratch() {
        finish();  // enqueued kernels may use them
        for (auto& s : scratch_) s.mem.reset(), s.bytes = 0;
    }

private:
    enum ScratchSlot {
        kDecodePart, kScoreParts, kScoreMerged, kSelectKeep, kSelectOffsets, kColsumStats,
        kScratchSlots
    };

    struct Program {
        ProgramHandle program;
        std::map<std::string, KernelHandle> kernels;
    };

    struct PendingTiming {
        std::string op;
        cl_event first = nullptr, last = nullptr;
    };

    // Collects the events of one op's launches while profiling is on.
    struct OpScope {
        OpenCLDevice& dev;
        PendingTiming rec;
        OpScope(OpenCLDevice& d, const char* op) : dev(d) {
            rec.op = op;
            dev.current_ = &rec;
        }
        ~OpScope() {
            dev.current_ = nullptr;
            if (rec.first) dev.pending_.push_back(rec);
        }
    };

    static void release_pending(PendingTiming& p) {
        if (p.last && p.last != p.first) clReleaseEvent(p.last);
        if (p.first) clReleaseEvent(p.first);
        p.first = p.last = nullptr;
    }

    cl_mem mem(const BufView& v) const {
        auto* b = dynamic_cast<ClBuffer*>(v.buf.get());
        require(b && b->owner == this, TCA_ERROR_INVALID_ARGUMENT,
                "opencl: buffer does not belong to " + info_.name);
        return b->mem.get();
    }
    TensorArg tensor(const Tensor& t) const {
        const auto es = cl_long(dtype_size(t.dtype));
        return {mem(t.data), cl_long(t.data.offset) / es, t.head_stride, t.token_stride};
    }
    // The tensor addressed in units of `ub` bytes (ub divides its offset and strides).
    TensorArg in_units(const Tensor& t, size_t ub) const {
        const auto es = cl_long(dtype_size(t.dtype)), u = cl_long(ub);
        return {mem(t.data), cl_long(t.data.offset) / u, t.head_stride * es / u, t.token_stride * es / u};
    }
    ViewArg view(const BufView& v) const {
        if (!v) return {nullptr, 0};
        return {mem(v), cl_long(v.offset / 4)};
    }

    // Keys per local tile: the table's size, halved until `tiles` tiles of [bk, d] floats fit in
    // three quarters of local memory (the rest is left for the compiler's own use).
    int key_tile(int d, int tiles) const {
        int bk = tuning_.prefill_bk;
        while (bk > 4 && cl_ulong(tiles) * bk * d * 4 > local_mem_ * 3 / 4) bk /= 2;
        return bk;
    }

    cl_mem scratch(ScratchSlot slot, size_t bytes) {
        auto& s = scratch_[slot];
        if (s.bytes < bytes) {
            // A released buffer lives on until the queued commands using it have finished. The slot is
            // empty until the new one exists, so a failed allocation is retried, never a null buffer used.
            s.mem.reset();
            s.bytes = 0;
            cl_int err = CL_SUCCESS;
            s.mem = MemHandle(create_buffer(bytes, &err));
            if (err != CL_SUCCESS) fail(err, "scratch buffer of " + std::to_string(bytes) + " bytes");
            s.bytes = bytes;
        }
        return s.mem.get();
    }

    // Every device allocation: clCreateBuffer, or the failure a test injected (device/fault_injection.h).
    cl_mem create_buffer(size_t bytes, cl_int* err) {
        if (fault::inject(fault::Kind::alloc)) {
            *err = CL_MEM_OBJECT_ALLOCATION_FAILURE;
            return nullptr;
        }
        return clCreateBuffer(context_.get(), CL_MEM_READ_WRITE, bytes, nullptr, err);
    }

    // Builds (or loads from the cache) one program.
    ProgramHandle build(const std::string& source, const std::string& options) {
        // An injected build failure fires before the binary cache is looked at, so a warm cache cannot hide it.
        if (fault::inject(fault::Kind::build)) fail(CL_BUILD_PROGRAM_FAILURE, "clBuildProgram (injected)", TCA_ERROR_KERNEL_BUILD);
        const std::string key = hex64(Fnv()
                                          .add(source)
                                          .add(options)
                                          .add(info_.device)
                                          .add(info_.driver)
                                          .add(platform_version_)
                                          .h);
        const std::string path = cache_dir_.empty() ? "" : cache_dir_ + "/opencl-" + key + ".bin";
        if (!path.empty()) {
            std::vector<unsigned char> bin;
            const bool present = std::filesystem::exists(path);
            if (present && read_cache_file(path, bin)) {
                if (ProgramHandle p = from_binary(bin, options); p.get()) {
                    ++stats_.loaded;
                    return p;
                }
            }
            if (present) ++stats_.rejected;
        }
        ProgramHandle p = from_source(source, options);
        ++stats_.built;
        if (!path.empty()) {
            size_t n = 0;
            if (clGetProgramInfo(p.get(), CL_PROGRAM_BINARY_SIZES, sizeof n, &n, nullptr) == CL_SUCCESS && n > 0) {
                std::vector<unsigned char> bin(n);
                unsigned char* ptr = bin.data();
                if (clGetProgramInfo(p.get(), CL_PROGRAM_BINARIES, sizeof ptr, &ptr, nullptr) == CL_SUCCESS &&
                    write_cache_file(path, bin))
                    ++stats_.stored;
            }
        }
        return p;
    }

    // A cached binary the driver refuses is not an error: the caller rebuilds from source.
    ProgramHandle from_binary(const std::vector<unsigned char>& bin, const std::string& options) {
        const size_t n = bin.size();
        const unsigned char* ptr = bin.data();
        cl_int status = CL_SUCCESS, err = CL_SUCCESS;
        ProgramHandle p(clCreateProgramWithBinary(context_.get(), 1, &device_, &n, &ptr, &status, &err));
        if (err != CL_SUCCESS || status != CL_SUCCESS) return {};
        if (clBuildProgram(p.get(), 1, &device_, options.c_str(), nullptr, nullptr) != CL_SUCCESS) return {};
        return p;
    }

    ProgramHandle from_source(const std::string& source, const std::string& options) {
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

    cl_kernel kernel(const std::string& file, const std::string& options, const char* name) {
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
    template <class Options>
    std::pair<cl_kernel, int> fitted(const char* file, const char* name, int wg, const Options& options) {
        for (;;) {
            cl_kernel k = kernel(file, options(wg), name);
            size_t most = 0;
            check(clGetKernelWorkGroupInfo(k, device_, CL_KERNEL_WORK_GROUP_SIZE, sizeof most, &most, nullptr),
                  "clGetKernelWorkGroupInfo");
            if (size_t(wg) <= most || wg <= 8) return {k, wg};
            wg /= 2;
        }
    }

    // A marker command: with profiling on, its event brackets work enqueued by others (CLBlast).
    void marker() {
        cl_event ev = nullptr;
        check(clEnqueueMarkerWithWaitList(queue_.get(), 0, nullptr, profiling_ && current_ ? &ev : nullptr),
              "clEnqueueMarkerWithWaitList");
        if (ev) record_event(ev);
    }

    void record_event(cl_event ev) {
        if (!current_->first) {
            current_->first = current_->last = ev;
        } else {
            if (current_->last != current_->first) clReleaseEvent(current_->last);
            current_->last = ev;
        }
    }

    template <class... Args>
    void launch(cl_kernel k, Range global, Range local, const Args&... args) {
        cl_uint i = 0;
        (set_arg(k, i, args), ...);
        const bool any_local = local.n[0] == 0;
        for (cl_uint d = 0; d < global.dims; ++d) {
            if (global.n[d] == 0) return;  // nothing to do
            if (!any_local) global.n[d] = ceil_div(global.n[d], local.n[d]) * local.n[d];
        }
        cl_event ev = nullptr;
        const cl_int err = clEnqueueNDRangeKernel(queue_.get(), k, global.dims, nullptr, global.n,
                                                  any_local ? nullptr : local.n, 0, nullptr,
                                                  profiling_ && current_ ? &ev : nullptr);
        if (err != CL_SUCCESS) {
            char name[128] = "?";
            clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name - 1, name, nullptr);
            fail(err, std::string("launching kernel ") + name);
        }
        if (ev) record_event(ev);
    }

    struct Scratch {
        MemHandle mem;
        size_t bytes = 0;
    };

    static cl_command_queue_properties device_value_of_queue(cl_command_queue q, cl_command_queue_info param) {
        cl_command_queue_properties v = 0;
        check(clGetCommandQueueInfo(q, param, sizeof v, &v, nullptr), "clGetCommandQueueInfo");
        return v;
    }

    DeviceInfo info_;
    bool queue_profiling_ = true;  // false only on a caller's queue made without profiling
    cl_device_id device_;
    std::string platform_version_, cache_dir_;
    ContextHandle context_;
    QueueHandle queue_;
    cl_ulong local_mem_ = 0;
    cl_uint compute_units_ = 1;
    size_t max_wg_ = 64;
    Tuning tuning_{};
    std::map<std::string, Program> programs_;
    Scratch scratch_[kScratchSlots];
    PendingTiming* current_ = nullptr;
    std::vector<PendingTiming> pending_;
    opencl_testing::ProgramCacheStats stats_;
};

OpenCLDevice& as_opencl(Device& dev) {
    auto* d = dynamic_cast<OpenCLDevice*>(&dev.backend());
    require(d != nullptr, TCA_ERROR_INVALID_ARGUMENT, dev.info().name + " is not an OpenCL device");
    return *d;
}

}  // namespace

std::vector<DeviceInfo> opencl_devices() {
    std::vector<DeviceInfo> out;
    try {
        for (const auto& e : entries()) out.push_back(e.info);
    } catch (...) {
        out.clear();
    }
    return out;
}

std::unique_ptr<Device> make_opencl_device(int index, const BackendOptions& options) {
    const auto& all = entries();
    require(index >= 0 && size_t(index) < all.size(), TCA_ERROR_DEVICE_NOT_FOUND,
            "no OpenCL device opencl:" + std::to_string(index) + " (" + std::to_string(all.size()) + " found)");
    return std::make_unique<OpenCLDevice>(all[size_t(index)], options);
}

std::unique_ptr<Device> make_opencl_device_external(void* context_ptr, void* device_ptr, void* queue_ptr,
                                                    const BackendOptions& options) {
    auto context = static_cast<cl_context>(context_ptr);
    auto device = static_cast<cl_device_id>(device_ptr);
    auto queue = static_cast<cl_command_queue>(queue_ptr);
    require(context && device && queue, TCA_ERROR_INVALID_ARGUMENT, "opencl: null cl_context, cl_device_id or cl_command_queue");
    // The three must fit together: the queue on this context and device, the device in the context.
    cl_context queue_context = nullptr;
    cl_device_id queue_device = nullptr;
    check_handle(clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof queue_context, &queue_context, nullptr),
          "clGetCommandQueueInfo(CL_QUEUE_CONTEXT)");
    check_handle(clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof queue_device, &queue_device, nullptr),
          "clGetCommandQueueInfo(CL_QUEUE_DEVICE)");
    require(queue_context == context, TCA_ERROR_INVALID_ARGUMENT, "opencl: the command queue belongs to another cl_context");
    require(queue_device == device, TCA_ERROR_INVALID_ARGUMENT, "opencl: the command queue belongs to another device");
    cl_command_queue_properties props = 0;
    check_handle(clGetCommandQueueInfo(queue, CL_QUEUE_PROPERTIES, sizeof props, &props, nullptr), "clGetCommandQueueInfo");
    require(!(props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE), TCA_ERROR_UNSUPPORTED,
            "opencl: the command queue is out-of-order; libtca needs an in-order queue");
    cl_platform_id platform = nullptr;
    check_handle(clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof platform, &platform, nullptr), "clGetDeviceInfo(CL_DEVICE_PLATFORM)");
    // Named like the listing when it is one of the listed devices, so tuning and caching match.
    std::string name = "opencl:external";
    for (const auto& e : entries())
        if (e.device == device) name = e.info.name;
    return std::make_unique<OpenCLDevice>(make_entry(platform, device, name), context, queue, options);
}

Buffer opencl_wrap_buffer(Device& dev, void* mem) {
    auto* d = dynamic_cast<OpenCLDevice*>(&dev);
    require(d != nullptr, TCA_ERROR_INVALID_ARGUMENT, dev.info().name + " is not an OpenCL context: cannot wrap a cl_mem");
    require(mem != nullptr, TCA_ERROR_INVALID_ARGUMENT, "opencl: null cl_mem");
    return d->wrap(static_cast<cl_mem>(mem));
}

namespace opencl_testing {

ProgramCacheStats cache_stats(Device& dev) { return as_opencl(dev).cache_stats(); }
void build_source(Device& dev, const std::string& source, const std::string& options) {
    as_opencl(dev).build_for_test(source, options);
}
void release_scratch(Device& dev) { as_opencl(dev).release_scratch(); }
DecodeTuning set_decode_tuning(Device& dev, const DecodeTuning& t) { return as_opencl(dev).set_decode_tuning(t); }

}  // namespace opencl_testing

}  // namespace tca::detail
