// A thin RAII layer over the sqlite3 C API for the decision log: connections and prepared
// statements that clean up after themselves, and SQLite failures as Error values naming the file.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "model/result.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace tuner::sqlite {

struct ConnectionCloser {
    void operator()(sqlite3* db) const;
};
using Connection = std::unique_ptr<sqlite3, ConnectionCloser>;

// The path of the connection's main database ("" for an in-memory one).
std::string database_file(sqlite3* db);

// The last failure on `db` as an Error: SQLite's message, the result code's name and the OS
// errno when there is one, what we were doing, and the database file as `where`.
Error last_error(sqlite3* db, int rc, std::string_view doing);

// Opens `path` with sqlite3_open_v2 flags; `uri` lets the caller pass "file:...?immutable=1".
Result<Connection> open(const std::string& path, int flags, bool uri = false);

// Runs one or more SQL statements that return no rows we need.
Status exec(sqlite3* db, std::string_view sql, std::string_view doing);

class Statement {
public:
    static Result<Statement> prepare(sqlite3* db, std::string_view sql);

    Statement(Statement&&) noexcept;
    Statement& operator=(Statement&&) noexcept;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    ~Statement();

    // Binds by 1-based index; a failure is remembered and reported by the next step().
    Statement& bind(int index, std::int64_t value);
    Statement& bind(int index, double value);
    Statement& bind(int index, std::string_view text);
    Statement& bind_null(int index);

    // Steps once: true when a row is ready, false when done.
    Result<bool> step(std::string_view doing);
    // Steps until done (for INSERT/UPDATE/DELETE) and resets, so the statement can run again.
    Status run(std::string_view doing);

    bool is_null(int column) const;
    bool is_text(int column) const;
    std::int64_t int64(int column) const;
    double real(int column) const;
    std::string text(int column) const;

private:
    Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
    void note_bind(int rc);

    sqlite3* db_ = nullptr;
    sqlite3_stmt* stmt_ = nullptr;
    int bind_rc_ = 0;  // the first failed bind, 0 = none
};

// The single integer a query like "SELECT max(id) FROM t" returns (nullopt for NULL).
Result<std::optional<std::int64_t>> query_int(sqlite3* db, std::string_view sql,
                                              std::string_view doing);

}  // namespace tuner::sqlite
