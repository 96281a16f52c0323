// tca devices: every device the library can use, with what matters for choosing one (through
// the public API's device listing, like any program choosing a device).
#include <cstdlib>

#include <fmt/core.h>

#include "cli/commands.h"
#include "tca/tca.hpp"

namespace tca::detail::cli {

namespace {

const char* type_name(tca_device_type t) {
    switch (t) {
        case TCA_DEVICE_DISCRETE_GPU: return "discrete GPU";
        case TCA_DEVICE_INTEGRATED_GPU: return "integrated GPU";
        case TCA_DEVICE_CPU_DRIVER: return "CPU driver";
        case TCA_DEVICE_REFERENCE: return "reference";
        case TCA_DEVICE_OTHER: return "other";
    }
    return "?";
}

}  // namespace

void register_devices(CLI::App& app) {
    auto* cmd = app.add_subcommand("devices", "List every device (reference, OpenCL, Vulkan) and the default choice");
    cmd->callback([] {
        // Throws TCA_ERROR_DEVICE_NOT_FOUND for a TCA_DEVICE that names no device: reporting it as
        // the default would send the user to a device no command can open.
        char def_name[sizeof(tca_device_info::name)];
        tca::check(tca_default_device_name(def_name, sizeof def_name));
        const std::string def = def_name;
        for (const auto& d : tca::devices()) {
            fmt::print("{}{:<10} {}\n", d.name == def ? "* " : "  ", d.name, d.device);
            fmt::print("    api {:<9}  type {:<14}  vendor {}\n", d.api, type_name(d.type), d.vendor);
            fmt::print("    driver {}\n", d.driver);
            fmt::print("    memory {:.1f} GiB  max allocation {:.1f} GiB  fp16 storage {}  fp16 math {}  subgroup {}{}\n",
                       d.global_memory / 1073741824.0, d.max_allocation / 1073741824.0, d.fp16_storage ? "yes" : "no",
                       d.fp16_arithmetic ? "yes" : "no", d.subgroup_size,
                       d.subgroup_ops ? " (ops)" : "");
        }
        const char* env = std::getenv("TCA_DEVICE");
        fmt::print("default: {}{}\n", def, env && *env ? " (from TCA_DEVICE)" : "");
    });
}

}  // namespace tca::detail::cli
