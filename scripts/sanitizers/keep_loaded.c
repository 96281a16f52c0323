/* Preloaded by scripts/sanitize: keeps the driver and layer libraries named in
 * $TCA_SANITIZE_KEEP_LOADED (':'-separated) resident for the whole process.
 *
 * The Vulkan loader dlclose()s layers and drivers in vkDestroyInstance. LeakSanitizer checks at
 * exit, when those libraries are gone, so their leaks show as "<unknown module>" frames that no
 * suppression can name (and memory they still held through their own globals counts as lost).
 * Opening each one here first with RTLD_NODELETE keeps it mapped (the loader's own dlopen/dlclose
 * only move a reference count): what such a library keeps in its globals stays reachable, as for
 * any library loaded to the end, a real leak inside it is reported under its name, and a leak in
 * libtca still fails the test.
 * RTLD_LOCAL: nothing here is added to the global symbol scope, so no symbol is interposed.
 * Only sanitized processes act on the list: the shells, ctest and tools that inherit LD_PRELOAD
 * do not load the drivers for nothing. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

__attribute__((constructor)) static void tca_keep_loaded(void) {
    const char* list = getenv("TCA_SANITIZE_KEEP_LOADED");
    if (list == NULL || dlsym(RTLD_DEFAULT, "__asan_init") == NULL) return;
    char* copy = strdup(list);
    if (copy == NULL) return;
    for (char* save = NULL, *lib = strtok_r(copy, ":", &save); lib; lib = strtok_r(NULL, ":", &save)) {
        /* A library this machine lacks is simply not kept: its API then has no device here. */
        (void)dlopen(lib, RTLD_LAZY | RTLD_LOCAL | RTLD_NODELETE);
    }
    free(copy);
}
