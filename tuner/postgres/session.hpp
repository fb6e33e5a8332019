// One blocking libpq connection: connect with connect_timeout, run a statement, read rows as text.
// Used only from the database thread (or a one-shot CLI). Errors never carry the connection string.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/result.hpp"
#include "model/units.hpp"

struct pg_conn;

namespace tuner::postgres {

// The connection string from a file (admin_url_file or url_file), trimmed. Errors name the file,
// never its content.
Result<std::string> read_conninfo_file(const std::string& path);

using Row = std::vector<std::optional<std::string>>;  // nullopt = SQL NULL

class Session {
public:
    // `where` names the connection in errors ("database.admin_url_file"); the string itself never
    // appears. Blocks at most about connect_timeout (libpq's minimum is 2 s).
    static Result<Session> connect(const std::string& conninfo, Duration connect_timeout,
                                   std::string where);

    Session(Session&&) noexcept;
    Session& operator=(Session&&) noexcept;
    ~Session();

    // False once the server went away; the caller reconnects.
    [[nodiscard]] bool healthy() const;
    [[nodiscard]] const std::string& where() const { return where_; }

    // Text parameters $1, $2, ...; rows as text. Errors carry PostgreSQL's message, redacted.
    Result<std::vector<Row>> query(const std::string& sql,
                                   const std::vector<std::string>& params = {});
    Status exec(const std::string& sql);

    // A string literal for statements that take no parameters (ALTER SYSTEM): 'it''s'.
    Result<std::string> quote_literal(const std::string& value);

private:
    Session(pg_conn* conn, std::string where);
    Error error(const std::string& what) const;

    struct Closer {
        void operator()(pg_conn* conn) const;
    };
    std::unique_ptr<pg_conn, Closer> conn_;
    std::string where_;
};

}  // namespace tuner::postgres
