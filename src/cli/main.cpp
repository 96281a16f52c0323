// tca — command-line front end. Sub-commands live in cmd_*.cpp files and register here.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
    CLI::App app{"tca: portable TCA-Attention (training-free context-adaptive sparse attention)"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string(TCA_VERSION_STRING));
    tca::cli::register_all(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const tca::Error& e) {
        std::fprintf(stderr, "tca: error (%s): %s\n", tca_status_name(e.code()), e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tca: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
