#include "device/fault_injection.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

namespace tca::detail::fault {

namespace {

// `armed` is the fast path's only read; the rest is guarded by the mutex.
std::atomic<bool> armed{false};
std::mutex mu;
Kind armed_kind = Kind::alloc;
uint64_t armed_nth = 0;
bool has_fired = false;
uint64_t counts[2] = {0, 0};

std::atomic<int64_t> live[3] = {0, 0, 0};  // by Api

int slot(Api api) { return api == Api::reference ? 0 : api == Api::opencl ? 1 : 2; }

}  // namespace

void arm(Kind kind, uint64_t nth) {
    std::lock_guard<std::mutex> lock(mu);
    armed_kind = kind;
    armed_nth = nth;
    has_fired = false;
    counts[0] = counts[1] = 0;
    armed.store(nth > 0, std::memory_order_relaxed);
}

void disarm() { arm(Kind::alloc, 0); }

bool fired() {
    std::lock_guard<std::mutex> lock(mu);
    return has_fired;
}

uint64_t events(Kind kind) {
    std::lock_guard<std::mutex> lock(mu);
    return counts[int(kind)];
}

bool inject(Kind kind) {
    if (!armed.load(std::memory_order_relaxed)) return false;
    std::lock_guard<std::mutex> lock(mu);
    const uint64_t n = ++counts[int(kind)];
    if (kind != armed_kind || armed_nth == 0) return false;
    const bool fail = n == armed_nth;
    has_fired = has_fired || fail;
    return fail;
}

void arm_from_environment() {
    const char* env = std::getenv("TCA_FAULT_INJECT");
    if (!env || !*env) return;
    const std::string s = env;
    const auto bad = [&] {
        throw Error(TCA_ERROR_INVALID_ARGUMENT, "TCA_FAULT_INJECT='" + s + "': expected alloc:N or build:N (N >= 1)");
    };
    const auto colon = s.find(':');
    if (colon == std::string::npos) bad();
    const std::string kind = s.substr(0, colon), rest = s.substr(colon + 1);
    if (kind != "alloc" && kind != "build") bad();
    if (rest.empty() || rest.size() > 18 || rest.find_first_not_of("0123456789") != std::string::npos) bad();
    const uint64_t nth = std::stoull(rest);
    if (nth == 0) bad();
    arm(kind == "alloc" ? Kind::alloc : Kind::build, nth);
}

int64_t live_buffers(Api api) { return live[slot(api)].load(); }

LiveBuffer::LiveBuffer(Api api) : api_(api) { ++live[slot(api_)]; }
LiveBuffer::~LiveBuffer() { --live[slot(api_)]; }

}  // namespace tca::detail::fault
