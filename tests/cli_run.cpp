#include "cli_run.h"

#include <sys/wait.h>

#include <cstdio>

namespace tca::test {

CliRun run_cli(const std::string& args) {
    const std::string cmd = std::string(TCA_CLI_PATH) + " " + args + " 2>&1";
    CliRun r{-1, ""};
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) r.output.append(buf, n);
    const int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

}  // namespace tca::test
