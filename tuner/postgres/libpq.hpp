// libpq, loaded when tunerd first talks to PostgreSQL rather than when it starts. Linked
// directly, libpq brings OpenSSL, Kerberos, LDAP and GnuTLS into every tunerd, about 5 MB of
// resident memory (their relocations and constructors run at load), while most installations
// never configure a database. The functions are libpq's own (Debian's libpq5), found with
// dlsym; the declarations come from libpq-fe.h, so a signature mismatch does not compile.
#pragma once

#include <string>

#include <libpq-fe.h>

namespace tuner::postgres {

#define TUNER_LIBPQ_FUNCTIONS(X) \
    X(PQconnectdbParams)         \
    X(PQconninfoParse)           \
    X(PQconninfoFree)            \
    X(PQstatus)                  \
    X(PQerrorMessage)            \
    X(PQfinish)                  \
    X(PQfreemem)                 \
    X(PQexecParams)              \
    X(PQresultStatus)            \
    X(PQresultErrorMessage)      \
    X(PQntuples)                 \
    X(PQnfields)                 \
    X(PQgetvalue)                \
    X(PQgetlength)               \
    X(PQgetisnull)               \
    X(PQescapeLiteral)           \
    X(PQclear)

struct Libpq {
#define TUNER_LIBPQ_POINTER(name) decltype(&::name) name = nullptr;
    TUNER_LIBPQ_FUNCTIONS(TUNER_LIBPQ_POINTER)
#undef TUNER_LIBPQ_POINTER
    // Empty when loaded; else why not ("libpq.so.5: cannot open shared object file...").
    std::string error;
    [[nodiscard]] bool loaded() const {
        return error.empty();
    }
};

// Loads libpq.so.5 once (thread-safe) and returns its functions, or the reason it could not.
const Libpq& libpq();

}  // namespace tuner::postgres
