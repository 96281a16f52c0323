// Host tensors for the tools: the device a sub-command opens, tensor files as host tensors.
#pragma once

#include <memory>
#include <string>

#include "device/device.h"
#include "method/host_tensor.h"

namespace tca::detail::tools {

// --device if given, else $TCA_DEVICE, else the default device; says on stderr which one it opened.
std::unique_ptr<Device> open_cli_device(const std::string& flag);

// A rank-3 float tensor [heads, tokens, dim] from a .npy file (float32 or float16).
method::HostTensor load_tensor(const std::string& path, const char* what);

// Writes a host tensor as float32 .npy bytes (for an OutputBatch).
std::vector<unsigned char> tensor_npy_bytes(const method::HostTensor& t);

// Rows [t0, t0 + n) of every head.
method::HostTensor slice_tokens(const method::HostTensor& x, int t0, int n);

}  // namespace tca::detail::tools
