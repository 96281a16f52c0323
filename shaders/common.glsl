// Included first by every shader: extensions, the mask value and the K/V buffer declaration.
//
// K/V storage: K and V may be f32 or f16. With native 16-bit storage (TCA_NATIVE_F16, the *_f16.comp
// wrappers) an f16 buffer is read as float16_t; otherwise the same bytes are read as 32-bit words and
// unpacked with unpackHalf2x16, which needs no device feature. The native variant is a separate module
// because the StorageBuffer16BitAccess capability is declared per module and a specialization
// constant cannot remove it; both variants convert exactly, so they give identical results.
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_arithmetic : enable
#extension GL_KHR_shader_subgroup_shuffle : enable
#ifdef TCA_NATIVE_F16
#extension GL_EXT_shader_16bit_storage : require
#endif

// Finite "minus infinity": a fully masked row can never produce NaN (exp(kMask - kMask) is never taken
// for a masked entry, and exp(kMask - m) underflows to 0 once a real score is seen).
// Real scores stay within +-TCA_SCORE_LIMIT (1e20, tca.h), ten orders of magnitude above it.
const float kMask = -1.0e30;

// exp(x - m) for a score x recomputed by a later pass against the max m an earlier pass found. The
// passes share the arithmetic, but a driver may contract it into FMAs differently per pipeline; a
// recomputed x above m by a few ulps would then give exp(ulp(1e20)) = inf. Clamping at 0 keeps every
// probability <= 1 / l whatever the rounding.
float exp_below(float x, float m) { return exp(min(x - m, 0.0)); }

// KV_BUFFER(binding, name) declares a read-only K/V buffer and `vec4 name_load4(uint e)`, the four
// elements e..e+3 as float (e in elements of the stored type; any alignment). Needs the
// specialization constant KV_F16 (0 f32, 1 f16, 2 bf16) to be declared before use. The native
// fp16-storage variant is built for f16 only; bf16 (the upper half of an f32) reads 32-bit words.
float bf16_lo(uint w) { return uintBitsToFloat(w << 16); }
float bf16_hi(uint w) { return uintBitsToFloat(w & 0xffff0000u); }
#ifdef TCA_NATIVE_F16
#define KV_BUFFER(B, NAME)                                                                          \
    layout(binding = B, std430) readonly buffer NAME##_h16 { float16_t NAME##_h[]; };              \
    vec4 NAME##_load4(uint e) {                                                                     \
        return vec4(float(NAME##_h[e]), float(NAME##_h[e + 1]), float(NAME##_h[e + 2]), float(NAME##_h[e + 3])); \
    }
#else
#define KV_BUFFER(B, NAME)                                                                          \
    layout(binding = B, std430) readonly buffer NAME##_f32 { float NAME##_f[]; };                  \
    layout(binding = B, std430) readonly buffer NAME##_u32 { uint NAME##_u[]; };                   \
    vec4 NAME##_load4(uint e) {                                                                     \
        if (KV_F16 == 0) return vec4(NAME##_f[e], NAME##_f[e + 1], NAME##_f[e + 2], NAME##_f[e + 3]); \
        const uint w = e >> 1;                                                                      \
        if (KV_F16 == 2u) {                                                                         \
            const uint x = NAME##_u[w], y = NAME##_u[w + 1];                                        \
            if ((e & 1u) == 0u) return vec4(bf16_lo(x), bf16_hi(x), bf16_lo(y), bf16_hi(y));        \
            const uint z = NAME##_u[w + 2];                                                         \
            return vec4(bf16_hi(x), bf16_lo(y), bf16_hi(y), bf16_lo(z));                            \
        }                                                                                           \
        if ((e & 1u) == 0u) return vec4(unpackHalf2x16(NAME##_u[w]), unpackHalf2x16(NAME##_u[w + 1])); \
        const vec2 a = unpackHalf2x16(NAME##_u[w]), b = unpackHalf2x16(NAME##_u[w + 1]),           \
                   c = unpackHalf2x16(NAME##_u[w + 2]);                                             \
        return vec4(a.y, b.x, b.y, c.x);                                                            \
    }
#endif
