// One typed interface per kernel family, compiled by C++ (host), GLSL (shaders/, through glslc -I
// src/iface) and OpenCL C (cl/, through the embedded-include resolver). A family header declares:
//   - its parameter block with TCA_PARAMS_BEGIN(Name) ... TCA_PARAMS_END(Name): the Vulkan push
//     constants, the OpenCL by-value struct argument, the host struct, from one field list;
//   - its bindings (Vulkan descriptor slots) and its specialization constants (ids and defaults) as
//     #defines, so `layout(binding = X)` and `layout(constant_id = X)` see integer literals.
// Why one header and not three mirrored lists: a field added on one side only used to shift every
// later field silently. static_asserts in the host code check the struct sizes the GPU sees.
// Batched ops (Device::*_batch) pass one parameter block per entry in a table buffer instead
// (OpenCL: a __global pointer argument; GLSL: TCA_BATCH_BINDING below), from the same field list.
// Fields are 32-bit scalars only (TCA_U32, TCA_I32, TCA_F32), so the C++, std430 push-constant and
// OpenCL struct layouts are the same by construction: no padding rules differ between them.
#ifndef TCA_IFACE_COMMON_H
#define TCA_IFACE_COMMON_H

#if defined(__OPENCL_VERSION__) || defined(__OPENCL_C_VERSION__)
#define TCA_U32 uint
#define TCA_I32 int
#define TCA_F32 float
#define TCA_PARAMS_BEGIN(Name) typedef struct Name {
#define TCA_PARAMS_END(Name) } Name;
#elif defined(GL_core_profile) || defined(VULKAN)
#define TCA_U32 uint
#define TCA_I32 int
#define TCA_F32 float
#ifdef TCA_BATCH_BINDING
// A batched variant (a .comp that defines TCA_BATCH_BINDING, the family's TCA_*_BIND_TABLE): one
// dispatch serves many entries, workgroup z being the entry, whose parameter block is row z of a
// table in a storage buffer. The shader reads pc.<field> exactly as in the push-constant variant.
// std430 lays out a struct of 32-bit scalars as the C++ struct (no padding): one table row each.
#define TCA_PARAMS_BEGIN(Name) struct Name {
#define TCA_PARAMS_END(Name) }; \
    layout(binding = TCA_BATCH_BINDING, std430) readonly buffer TcaParamsTable { Name tca_params_table[]; };
#define pc tca_params_table[gl_WorkGroupID.z]
#else
// The push-constant block; the shader reads its fields as pc.<field>.
#define TCA_PARAMS_BEGIN(Name) layout(push_constant) uniform Name {
#define TCA_PARAMS_END(Name) } pc;
#endif
#else
#include <cstdint>
#define TCA_U32 std::uint32_t
#define TCA_I32 std::int32_t
#define TCA_F32 float
#define TCA_PARAMS_BEGIN(Name) struct Name {
#define TCA_PARAMS_END(Name) };
#endif

#endif
