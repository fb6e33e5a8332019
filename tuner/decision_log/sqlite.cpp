// The RAII SQLite layer of the decision log (see sqlite.hpp).
#include "tuner/decision_log/sqlite.hpp"

#include <cstring>
#include <utility>

#include <sqlite3.h>

namespace tuner::sqlite {
namespace {

// sqlite3_errstr() gives prose only; operators grep logs for the code's name.
const char* primary_code_name(int rc) {
    switch (rc & 0xff) {
        case SQLITE_ERROR:
            return "SQLITE_ERROR";
        case SQLITE_PERM:
            return "SQLITE_PERM";
        case SQLITE_BUSY:
            return "SQLITE_BUSY";
        case SQLITE_LOCKED:
            return "SQLITE_LOCKED";
        case SQLITE_NOMEM:
            return "SQLITE_NOMEM";
        case SQLITE_READONLY:
            return "SQLITE_READONLY";
        case SQLITE_IOERR:
            return "SQLITE_IOERR";
        case SQLITE_CORRUPT:
            return "SQLITE_CORRUPT";
        case SQLITE_FULL:
            return "SQLITE_FULL";
        case SQLITE_CANTOPEN:
            return "SQLITE_CANTOPEN";
        case SQLITE_PROTOCOL:
            return "SQLITE_PROTOCOL";
        case SQLITE_SCHEMA:
            return "SQLITE_SCHEMA";
        case SQLITE_CONSTRAINT:
            return "SQLITE_CONSTRAINT";
        case SQLITE_MISMATCH:
            return "SQLITE_MISMATCH";
        case SQLITE_MISUSE:
            return "SQLITE_MISUSE";
        case SQLITE_NOTADB:
            return "SQLITE_NOTADB";
        default:
            return "SQLITE_?";
    }
}

}  // namespace

std::string database_file(sqlite3* db) {
    const char* name = db ? sqlite3_db_filename(db, "main") : nullptr;
    return name ? name : "";
}

void ConnectionCloser::operator()(sqlite3* db) const {
    sqlite3_close_v2(db);
}

Error last_error(sqlite3* db, int rc, std::string_view doing) {
    std::string what = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    what += " (";
    what += primary_code_name(rc);
    if (rc != (rc & 0xff)) what += ", extended code " + std::to_string(rc);
    const int os_errno = db ? sqlite3_system_errno(db) : 0;
    if (os_errno != 0)
        what += ", errno " + std::to_string(os_errno) + ": " + std::strerror(os_errno);
    what += ")";
    if (!doing.empty()) what += " while " + std::string(doing);
    return Error{std::move(what), database_file(db)};
}

Result<Connection> open(const std::string& path, int flags, bool uri) {
    sqlite3* raw = nullptr;
    const int rc =
        sqlite3_open_v2(path.c_str(), &raw, flags | (uri ? SQLITE_OPEN_URI : 0), nullptr);
    Connection db(raw);
    if (rc != SQLITE_OK) {
        Error e = last_error(db.get(), rc, "opening the database");
        if (e.where.empty()) e.where = path;
        return e;
    }
    sqlite3_extended_result_codes(db.get(), 1);
    return db;
}

Status exec(sqlite3* db, std::string_view sql, std::string_view doing) {
    const std::string text(sql);
    const int rc = sqlite3_exec(db, text.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return last_error(db, rc, doing);
    return {};
}

Result<Statement> Statement::prepare(sqlite3* db, std::string_view sql) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(stmt);
        return last_error(db, rc, "preparing \"" + std::string(sql.substr(0, 60)) + "\"");
    }
    return Statement(db, stmt);
}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)), bind_rc_(other.bind_rc_) {}

Statement& Statement::operator=(Statement&& other) noexcept {
    if (this != &other) {
        sqlite3_finalize(stmt_);
        db_ = other.db_;
        stmt_ = std::exchange(other.stmt_, nullptr);
        bind_rc_ = other.bind_rc_;
    }
    return *this;
}

Statement::~Statement() {
    sqlite3_finalize(stmt_);
}

void Statement::note_bind(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == 0) bind_rc_ = rc;
}

Statement& Statement::bind(int index, std::int64_t value) {
    note_bind(sqlite3_bind_int64(stmt_, index, value));
    return *this;
}

Statement& Statement::bind(int index, double value) {
    note_bind(sqlite3_bind_double(stmt_, index, value));
    return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
    note_bind(sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                                SQLITE_TRANSIENT));
    return *this;
}

Statement& Statement::bind_null(int index) {
    note_bind(sqlite3_bind_null(stmt_, index));
    return *this;
}

Result<bool> Statement::step(std::string_view doing) {
    if (bind_rc_ != 0) return last_error(db_, bind_rc_, doing);
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return last_error(db_, rc, doing);
}

Status Statement::run(std::string_view doing) {
    for (;;) {
        auto row = step(doing);
        if (!row.ok()) {
            sqlite3_reset(stmt_);
            return row.error();
        }
        if (!*row) break;
    }
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    return {};
}

bool Statement::is_null(int column) const {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

bool Statement::is_text(int column) const {
    return sqlite3_column_type(stmt_, column) == SQLITE_TEXT;
}

std::int64_t Statement::int64(int column) const {
    return sqlite3_column_int64(stmt_, column);
}

double Statement::real(int column) const {
    return sqlite3_column_double(stmt_, column);
}

std::string Statement::text(int column) const {
    const auto* data = sqlite3_column_text(stmt_, column);
    const int size = sqlite3_column_bytes(stmt_, column);
    return data ? std::string(reinterpret_cast<const char*>(data), static_cast<std::size_t>(size))
                : std::string();
}

Result<std::optional<std::int64_t>> query_int(sqlite3* db, std::string_view sql,
                                              std::string_view doing) {
    auto stmt = Statement::prepare(db, sql);
    if (!stmt.ok()) return stmt.error();
    auto row = stmt->step(doing);
    if (!row.ok()) return row.error();
    if (!*row || stmt->is_null(0)) return std::optional<std::int64_t>{};
    return std::optional<std::int64_t>{stmt->int64(0)};
}

}  // namespace tuner::sqlite
