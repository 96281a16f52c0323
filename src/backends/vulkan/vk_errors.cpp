// Vulkan backend: error reporting (VkResult names and statuses) and the validation-layer message log.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "backends/vulkan/vk_context.h"

namespace tca::detail::vulkan {

namespace {


// Validation-layer messages of severity warning or error seen by this process: the library's own
// messengers and those the tests install on their own instances (vulkan_testing::record_validation_message)
// add here, and the test harness fails the test during which the count grew. Texts are kept up to a cap.
struct ValidationLog {
    std::mutex mu;
    std::vector<std::string> texts;
};
ValidationLog& validation_log() {
    static auto* log = new ValidationLog;  // never destroyed: devices closed during exit may still report
    return *log;
}
std::atomic<uint64_t> g_validation_messages{0};
constexpr size_t kMaxValidationTexts = 1000;

}  // namespace

void record_validation(const char* text) {
    ValidationLog& log = validation_log();
    std::lock_guard<std::mutex> lock(log.mu);
    if (log.texts.size() < kMaxValidationTexts) log.texts.emplace_back(text ? text : "(no message)");
    ++g_validation_messages;
}

const char* result_name(VkResult r) {
    switch (r) {
        case VK_SUCCESS: return "VK_SUCCESS";
        case VK_NOT_READY: return "VK_NOT_READY";
        case VK_TIMEOUT: return "VK_TIMEOUT";
        case VK_INCOMPLETE: return "VK_INCOMPLETE";
        case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
        case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
        case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
        case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
        case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
        case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
        case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
        case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
        case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
        case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
        case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
        case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
        case VK_ERROR_INVALID_SHADER_NV: return "VK_ERROR_INVALID_SHADER_NV";
        default: return "VkResult";
    }
}

tca_status status_of(VkResult r) {
    switch (r) {
        case VK_ERROR_OUT_OF_DEVICE_MEMORY:
        case VK_ERROR_OUT_OF_HOST_MEMORY: return TCA_ERROR_OUT_OF_MEMORY;
        case VK_ERROR_DEVICE_LOST: return TCA_ERROR_DEVICE_LOST;
        default: return TCA_ERROR_BACKEND;
    }
}

void fail(VkResult r, const char* what, tca_status code) {
    // Memory exhaustion and device loss keep their own codes whatever the call was.
    const tca_status s = status_of(r) != TCA_ERROR_BACKEND ? status_of(r) : code;
    throw Error(s, std::string("vulkan: ") + what + " failed: " + result_name(r) + " (" + std::to_string(int(r)) + ")");
}

bool env_flag(const char* name) {
    const char* v = std::getenv(name);
    return v && std::string(v) == "1";
}

VKAPI_ATTR VkBool32 VKAPI_CALL debug_callback(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                              VkDebugUtilsMessageTypeFlagsEXT, const VkDebugUtilsMessengerCallbackDataEXT* data,
                                              void*) {
    if (severity & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)) {
        const char* text = data && data->pMessage ? data->pMessage : "(no message)";
        record_validation(text);
        std::fprintf(stderr, "[vulkan validation] %s\n", text);
    }
    return VK_FALSE;
}

std::string hex(uint64_t v, int width) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%0*llx", width, static_cast<unsigned long long>(v));
    return buf;
}

std::string vendor_name(uint32_t id) {
    switch (id) {
        case 0x1002: return "AMD";
        case 0x10DE: return "NVIDIA";
        case 0x8086: return "Intel";
        case 0x13B5: return "ARM";
        case 0x5143: return "Qualcomm";
        case 0x1010: return "Imagination";
        case 0x106B: return "Apple";
        case 0x10005: return "Mesa";
        default: return "vendor 0x" + hex(id);
    }
}

bool has_extension(const std::vector<VkExtensionProperties>& exts, const char* name) {
    return std::any_of(exts.begin(), exts.end(), [&](const VkExtensionProperties& e) { return std::strcmp(e.extensionName, name) == 0; });
}

uint64_t validation_count() { return g_validation_messages.load(); }

std::vector<std::string> validation_texts(uint64_t from) {
    ValidationLog& log = validation_log();
    std::lock_guard<std::mutex> lock(log.mu);
    if (from >= log.texts.size()) return {};
    return std::vector<std::string>(log.texts.begin() + std::ptrdiff_t(from), log.texts.end());
}

}  // namespace tca::detail::vulkan
