// libFuzzer harness: the .npy reader, from memory (parse_npy) and from a file (read_npy and
// read_float_tensor, which read the header first and the data after). An accepted array must
// hold exactly its shape's bytes and survive a write/read round trip unchanged.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "io/npy.h"

using namespace tca::detail;

namespace {

// The input as a regular file without touching the disk: a memfd, reopened by its /proc path.
const std::string& memfd_path(int& fd) {
    static int the_fd = -1;
    static std::string path;
    if (the_fd < 0) {
        the_fd = ::memfd_create("fuzz.npy", 0);
        if (the_fd < 0) fuzz::broken("memfd_create failed");
        path = "/proc/self/fd/" + std::to_string(the_fd);
    }
    fd = the_fd;
    return path;
}

void write_input(const uint8_t* data, size_t size) {
    int fd;
    memfd_path(fd);
    if (::ftruncate(fd, 0) != 0 || (size && ::pwrite(fd, data, size, 0) != ssize_t(size))) fuzz::broken("writing the memfd failed");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::vector<unsigned char> bytes(data, data + size);
    bool parsed = false;
    try {
        const io::NpyArray a = io::parse_npy(bytes, "fuzz.npy");
        parsed = true;
        fuzz::accepted();
        if (a.data.size() != size_t(a.elements()) * io::npy_type_size(a.type)) fuzz::broken("data size != shape x dtype size");
        const io::NpyArray b = io::parse_npy(io::encode_npy(a), "round trip");
        if (b.type != a.type || b.shape != a.shape || b.data != a.data) fuzz::broken("round trip changed the array");
    } catch (const Error& e) {
        fuzz::rejected(e, {TCA_ERROR_IO});
    }

    write_input(data, size);
    int fd;
    const std::string& path = memfd_path(fd);
    try {
        const io::NpyArray a = io::read_npy(path);
        if (!parsed) fuzz::broken("read_npy accepted what parse_npy rejected");
        if (a.data.size() != size_t(a.elements()) * io::npy_type_size(a.type)) fuzz::broken("file: data size != shape");
    } catch (const Error& e) {
        if (parsed) fuzz::broken("read_npy rejected what parse_npy accepted");
        fuzz::rejected(e, {TCA_ERROR_IO});
    }
    try {
        std::vector<int64_t> shape;
        const std::vector<float> t = io::read_float_tensor(path, 3, shape);
        if (shape.size() != 3 || t.size() != size_t(shape[0]) * size_t(shape[1]) * size_t(shape[2]))
            fuzz::broken("float tensor size != its shape");
    } catch (const Error& e) {
        // Rank, dtype and dimension range are further checks; the seeds include rank-2 and uint8
        // files, so a rejection here is not a failed seed.
        if (e.code() != TCA_ERROR_IO && e.code() != TCA_ERROR_NONFINITE_INPUT) fuzz::rejected(e, {TCA_ERROR_IO});
    }
    return 0;
}
