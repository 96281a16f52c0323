// Kernel sources (cl/*.cl) and SPIR-V (shaders/*.comp compiled by glslc) embedded at build time,
// so the library needs no files at run time.
#pragma once

#include <cstddef>
#include <string>

namespace tca::detail {

struct EmbeddedFile {
    const char* name;  // file name without directory: "prefill.cl", "prefill.comp"
    const unsigned char* data;
    size_t size;  // bytes
};

// nullptr when no such file was embedded.
const EmbeddedFile* embedded_cl(const std::string& name);
const EmbeddedFile* embedded_spirv(const std::string& name);

}  // namespace tca::detail
