#include "cli_run.h"

#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstdio>

namespace tca::detail::test {

CliRun run_cli(const std::string& args) {
    const std::string cmd = std::string(TCA_CLI_PATH) + " " + args + " 2>&1";
    CliRun r{-1, ""};
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) r.output.append(buf, n);
    const int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    // The CLI is its own process, so the test's validation listener cannot count its messages:
    // the library prints each one with this prefix, and one fails the test that ran the command.
    EXPECT_EQ(r.output.find("[vulkan validation]"), std::string::npos)
        << "Vulkan validation reported a message while running `tca " << args << "`:\n" << r.output;
    return r;
}

}  // namespace tca::detail::test
