// Fault injection: a test hook that makes the Nth device allocation or the Nth kernel build fail,
// and a count of the device buffers alive in each backend.
//
// Why: an out-of-memory or a failed kernel build can strike any call at any of its allocations or
// builds, and every C API entry point must then return the right status, leak nothing and leave
// caches and tensors as they were. Real drivers fail rarely and never on demand, so the backends ask
// this module at their choke points (every creation of device memory, every program / shader module /
// pipeline build) whether this event must fail, and fail it the way the driver would.
//
// Arming: tests call arm(); a process may also set TCA_FAULT_INJECT=alloc:N or build:N, which
// open_device() reads once per device creation (never an op body). When nothing is armed, inject()
// is one relaxed atomic load.
#pragma once

#include <cstdint>

#include "device/device.h"

namespace tca::detail::fault {

enum class Kind { alloc, build };

// From now on the nth (1-based) event of `kind` fails, once (the events after it succeed, so that
// cleanup and a retried call run as after a transient failure). Resets the event counts. nth = 0
// disarms.
void arm(Kind kind, uint64_t nth);
void disarm();
// Whether an armed failure has been injected since the last arm().
bool fired();
// Events of `kind` seen while armed since the last arm().
uint64_t events(Kind kind);

// Backends, at a choke point: true when this allocation / build must fail. The caller then fails
// it the way the real API failure does (OpenCL / Vulkan error code through the backend's own error
// path), so the status is the real one: TCA_ERROR_OUT_OF_MEMORY, TCA_ERROR_KERNEL_BUILD.
bool inject(Kind kind);

// Reads TCA_FAULT_INJECT ("alloc:N" or "build:N"; unset or "" = nothing) and
// arms accordingly; throws TCA_ERROR_INVALID_ARGUMENT for anything else. open_device() calls it.
void arm_from_environment();

// Device buffers alive, per backend: every buffer object a backend holds device memory in (its
// alloc() results, wrapped caller buffers, internal scratch / staging it makes the same way).
int64_t live_buffers(Api api);

// A member of each backend's buffer type: counts the buffer alive from construction to destruction.
class LiveBuffer {
public:
    explicit LiveBuffer(Api api);
    ~LiveBuffer();
    LiveBuffer(const LiveBuffer&) = delete;
    LiveBuffer& operator=(const LiveBuffer&) = delete;

private:
    Api api_;
};

}  // namespace tca::detail::fault
