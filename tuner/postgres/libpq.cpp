// Loading libpq on first use (see libpq.hpp).
#include "tuner/postgres/libpq.hpp"

#include <dlfcn.h>

namespace tuner::postgres {
namespace {

Libpq load() {
    Libpq pq;
    void* handle = ::dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char* why = ::dlerror();
        pq.error = why ? why : "libpq.so.5 could not be loaded";
        return pq;
    }
#define TUNER_LIBPQ_RESOLVE(name)                                          \
    pq.name = reinterpret_cast<decltype(pq.name)>(::dlsym(handle, #name)); \
    if (!pq.name) {                                                        \
        pq.error = std::string("libpq.so.5 has no ") + #name;              \
        return pq;                                                         \
    }
    TUNER_LIBPQ_FUNCTIONS(TUNER_LIBPQ_RESOLVE)
#undef TUNER_LIBPQ_RESOLVE
    // The handle stays open for the life of the process, as a linked library would.
    return pq;
}

}  // namespace

const Libpq& libpq() {
    static const Libpq pq = load();
    return pq;
}

}  // namespace tuner::postgres
