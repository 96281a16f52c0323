// struct_size handling of the public structs (the rule is written down in tca.h, "Conventions").
//
// A caller compiled against older headers passes a smaller struct; one compiled against newer
// headers passes a bigger one. Both must work: the library accepts any struct_size from the size
// of the struct's first released version up, and reads or writes only the bytes both sides know
// (the first min(struct_size, sizeof) bytes). Fields a caller does not have read as their
// defaults. The first version's size is the offset just past its last field, not sizeof: sizeof
// includes trailing padding, which an older compiler's layout need not have given the caller.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>

#include "core/error.h"
#include "tca/tca.h"

namespace tca::detail::api {

#define TCA_FIELD_END(T, field) (offsetof(T, field) + sizeof(static_cast<T*>(nullptr)->field))

// Size of each struct's first released version (0.1.0). When a field is added to a struct, this
// stays where it is.
template <class T>
struct FirstVersion;
template <>
struct FirstVersion<tca_device_info> {
    static constexpr size_t size = TCA_FIELD_END(tca_device_info, subgroup_size);
    static constexpr const char* name = "tca_device_info";
};
template <>
struct FirstVersion<tca_counters> {
    static constexpr size_t size = TCA_FIELD_END(tca_counters, allocations);
    static constexpr const char* name = "tca_counters";
};
template <>
struct FirstVersion<tca_params> {
    static constexpr size_t size = TCA_FIELD_END(tca_params, alpha);
    static constexpr const char* name = "tca_params";
};
template <>
struct FirstVersion<tca_call_stats> {
    static constexpr size_t size = TCA_FIELD_END(tca_call_stats, kept_tokens);
    static constexpr const char* name = "tca_call_stats";
};
template <>
struct FirstVersion<tca_tensor_desc> {
    static constexpr size_t size = TCA_FIELD_END(tca_tensor_desc, token_stride);
    static constexpr const char* name = "tca_tensor_desc";
};
template <>
struct FirstVersion<tca_vulkan_handles> {
    static constexpr size_t size = TCA_FIELD_END(tca_vulkan_handles, enabled_features);
    static constexpr const char* name = "tca_vulkan_handles";
};
template <>
struct FirstVersion<tca_roofline> {
    static constexpr size_t size = TCA_FIELD_END(tca_roofline, f16_engine);
    static constexpr const char* name = "tca_roofline";
};

template <>
struct FirstVersion<tca_synth_spec> {
    static constexpr size_t size = TCA_FIELD_END(tca_synth_spec, seed);
    static constexpr const char* name = "tca_synth_spec";
};

template <>
struct FirstVersion<tca_profile_head> {
    static constexpr size_t size = TCA_FIELD_END(tca_profile_head, keep_ratio);
    static constexpr const char* name = "tca_profile_head";
};

template <>
struct FirstVersion<tca_cache_options> {
    static constexpr size_t size = TCA_FIELD_END(tca_cache_options, max_chunk);
    static constexpr const char* name = "tca_cache_options";
};

#undef TCA_FIELD_END

// The bytes of *p both sides know; throws TCA_ERROR_INVALID_ARGUMENT for a null pointer or a
// struct_size below the first version's (0 included). `what` names the argument ("info").
template <class T>
size_t known_bytes(const T* p, const char* what) {
    require(p != nullptr, TCA_ERROR_INVALID_ARGUMENT, std::string(what) + " is null");
    require(p->struct_size >= FirstVersion<T>::size, TCA_ERROR_INVALID_ARGUMENT,
            std::string(what) + "->struct_size is " + std::to_string(p->struct_size) + "; set it to sizeof(" +
                FirstVersion<T>::name + ") (at least " + std::to_string(FirstVersion<T>::size) + ")");
    return std::min(p->struct_size, sizeof(T));
}

// An input struct as this library's version sees it: the caller's known bytes over `defaults`.
template <class T>
T read_struct(const T* in, const char* what, const T& defaults = T{}) {
    const size_t n = known_bytes(in, what);
    T out = defaults;
    std::memcpy(static_cast<void*>(&out), in, n);
    out.struct_size = sizeof(T);
    return out;
}

// Writes `value` into the caller's struct, its known bytes only; the caller's struct_size stays.
template <class T>
void write_struct(T* out, const T& value, const char* what) {
    const size_t n = known_bytes(out, what);
    const size_t caller_size = out->struct_size;
    std::memcpy(static_cast<void*>(out), &value, n);
    out->struct_size = caller_size;
}

}  // namespace tca::detail::api
