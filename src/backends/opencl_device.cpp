// PLACEHOLDER until the opencl backend lands (being written now); replaced wholesale.
#include "device/backends.h"
namespace tca {
std::vector<DeviceInfo> opencl_devices() { return {}; }
std::unique_ptr<Device> make_opencl_device(int, const BackendOptions&) {
    throw Error(TCA_ERROR_DEVICE_NOT_FOUND, "opencl backend not built");
}

}  // namespace tca
