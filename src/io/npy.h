// .npy tensor files (NumPy format 1.0): float32, float16, uint8 and int32, C order, little-endian.
//
// Reading rejects anything else with TCA_ERROR_IO and a message naming the file and the problem
// (truncated data, an unsupported dtype, Fortran order, big-endian, a bad header or a repeated
// key in it, a shape whose element or byte count overflows 64 bits, a path that is not a regular
// file). Sizes are checked arithmetic against the file's real size, and a file's header is
// checked before its data is read. Writing is
// atomic: the bytes go to a temporary file beside the target, which is renamed over it only once
// complete, so an error never leaves a partial file behind.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tca::detail::io {

enum class NpyType { f32, f16, u8, i32 };
const char* npy_type_name(NpyType t);
size_t npy_type_size(NpyType t);

struct NpyArray {
    NpyType type = NpyType::f32;
    std::vector<int64_t> shape;
    std::vector<unsigned char> data;  // raw little-endian elements, C order

    int64_t elements() const;  // throws TCA_ERROR_INVALID_ARGUMENT when the count overflows
};

// Parses a whole .npy image held in memory; `what` names it in error messages.
NpyArray parse_npy(const std::vector<unsigned char>& bytes, const std::string& what);
// The bytes of a .npy file (version 1.0 header, padded to a multiple of 64 bytes).
std::vector<unsigned char> encode_npy(const NpyArray& a);

NpyArray read_npy(const std::string& path);
void write_npy(const std::string& path, const NpyArray& a);

// Reads a float tensor of the given rank (float16 is widened to float32). Throws TCA_ERROR_IO
// for another rank or dtype or a dimension outside [1, INT_MAX] (tensors keep them in ints), all
// found before the data is read, and TCA_ERROR_NONFINITE_INPUT for NaN/Inf.
std::vector<float> read_float_tensor(const std::string& path, int rank, std::vector<int64_t>& shape);

NpyArray make_f32(std::vector<int64_t> shape, const std::vector<float>& values);
NpyArray make_u8(std::vector<int64_t> shape, const std::vector<uint8_t>& values);

}  // namespace tca::detail::io
