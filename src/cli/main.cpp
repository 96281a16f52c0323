// tca — command-line front end. Sub-commands live in cmd_*.cpp files and register here.
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/errors.h"
#include "core/error.h"

int main(int argc, char** argv) {
    CLI::App app{"tca: portable TCA-Attention (training-free context-adaptive sparse attention)"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string(TCA_VERSION_STRING));
    try {
        tca::detail::cli::register_all(app);
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);  // usage errors and --help: CLI11's own messages
    } catch (...) {
        return tca::detail::cli::report_current_exception();
    }
    return 0;
}
