// What the GPU backends' tuning tables share: the device classes their rows are keyed by, and the
// one documented override, TCA_TUNING (README, "Environment").
//
// Each backend keeps a struct of named fields (tile and work-group sizes) with one row per device
// class (CPU driver, NVIDIA, AMD, Intel, generic GPU; a GPU of another vendor falls back to the
// generic row), picks its row once when a context is created, then applies the override. Op bodies
// read the chosen struct only; no op reads the environment.
//
// Override syntax: comma-separated items "api.field=value" or "field=value", e.g.
//   TCA_TUNING="vulkan.attn_tpr=4,opencl.prefill_bq=64"
// An item with another API's prefix is left to that API; an unprefixed item applies to the API
// being opened and must name one of its fields. Values are decimal integers within each field's
// range (and powers of two where the field says so). Anything else fails the device's creation with
// TCA_ERROR_INVALID_ARGUMENT and a message naming the item and the valid fields.
#pragma once

#include <string>
#include <vector>

#include "device/device.h"

namespace tca::detail {

enum class DeviceClass { cpu_driver, nvidia, amd, intel, gpu, other };
const char* device_class_name(DeviceClass c);
// CPU drivers by type; GPUs by vendor name (NVIDIA, AMD, Intel), other GPUs as `gpu`.
DeviceClass classify_device(const DeviceInfo& d);

struct TuningField {
    const char* name;
    int* value;
    int min, max;
    bool power_of_two;
};

// Applies the items of `spec` meant for `api` ("opencl" or "vulkan") to `fields`. Throws as above.
void apply_tuning_overrides(const std::string& spec, const char* api, const std::vector<TuningField>& fields);

}  // namespace tca::detail
