// Runs the built `tca` binary (TCA_CLI_PATH) the way a user or an outside tool would. Kept apart
// from harness.h, which pulls in the device layer, so tests written against the public C++ header
// (tca.hpp) can use it too.
#pragma once

#include <string>

namespace tca::detail::test {

struct CliRun {
    int code;            // exit status; -1 when the process did not exit normally
    std::string output;  // stdout and stderr together
};

CliRun run_cli(const std::string& args);

}  // namespace tca::detail::test
