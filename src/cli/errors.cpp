#include "cli/errors.h"

#include <cstdio>
#include <filesystem>
#include <new>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tca/tca.hpp"

namespace tca::detail::cli {

namespace {

// nlohmann's messages start with "[json.exception.<kind>.<id>] ", also where the library quotes
// one inside its own message; the tag means nothing to a user.
std::string without_json_tags(std::string m) {
    for (size_t at; (at = m.find("[json.exception.")) != std::string::npos;) {
        const size_t end = m.find("] ", at);
        if (end == std::string::npos) break;
        m.erase(at, end + 2 - at);
    }
    return m;
}

int print(tca_status s, const std::string& message) {
    std::fprintf(stderr, "tca: error (%s): %s\n", tca_status_name(s), without_json_tags(message).c_str());
    return 1;
}

// tca::Exception (tca.hpp) reads "TCA_ERROR_X: message"; the status is printed once.
std::string without_status(const std::string& what, tca_status s) {
    const std::string prefix = std::string(tca_status_name(s)) + ": ";
    return what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what;
}

}  // namespace

int report_current_exception() {
    try {
        throw;
    } catch (const Error& e) {
        return print(e.code(), e.what());
    } catch (const Exception& e) {
        return print(e.status(), without_status(e.what(), e.status()));
    } catch (const nlohmann::json::exception& e) {
        return print(TCA_ERROR_IO, "invalid JSON data: " + std::string(e.what()));
    } catch (const std::filesystem::filesystem_error& e) {
        std::string where = e.path1().string();
        if (!e.path2().empty()) where += ", " + e.path2().string();
        return print(TCA_ERROR_IO, where + ": " + e.code().message());
    } catch (const std::bad_alloc&) {
        return print(TCA_ERROR_OUT_OF_MEMORY, "host out of memory");
    } catch (...) {
        // Not a failure tca knows how to explain: a bug, reported as such rather than as library text.
        return print(TCA_ERROR_INTERNAL, "unexpected internal failure (a bug in tca; please report the command)");
    }
}

}  // namespace tca::detail::cli
