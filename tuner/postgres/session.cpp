// libpq session (see session.hpp).
#include "tuner/postgres/session.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tuner/postgres/libpq.hpp"
#include "tuner/postgres/values.hpp"

namespace tuner::postgres {
namespace {

std::string trim_message(const char* message) {
    std::string s = message ? message : "";
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    // libpq's multi-line hints ("\n\tIs the server running...") read better on one line.
    for (char& c : s) {
        if (c == '\n' || c == '\t') c = ' ';
    }
    return redact_secrets(s);
}

struct ResultCloser {
    void operator()(PGresult* r) const { libpq().PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultCloser>;

}  // namespace

Result<std::string> read_conninfo_file(const std::string& path) {
    if (path.empty()) return make_error("", "no connection string file configured");
    std::ifstream in(path);
    if (!in) return system_error(path, "cannot read");
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::string text = buffer.str();
    const auto not_space = [](unsigned char c) { return !std::isspace(c); };
    text.erase(text.begin(), std::find_if(text.begin(), text.end(), not_space));
    text.erase(std::find_if(text.rbegin(), text.rend(), not_space).base(), text.end());
    if (text.empty()) return make_error(path, "empty connection string file");
    return text;
}

void Session::Closer::operator()(pg_conn* conn) const {
    libpq().PQfinish(conn);
}

Session::Session(pg_conn* conn, std::string where) : conn_(conn), where_(std::move(where)) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::~Session() = default;

Result<Session> Session::connect(const std::string& conninfo, Duration connect_timeout,
                                 std::string where) {
    if (!libpq().loaded()) return make_error(where, "libpq cannot be loaded: " + libpq().error);
    // Parse first: libpq's parse errors quote pieces of the string, which may be a password.
    char* parse_error = nullptr;
    PQconninfoOption* parsed = libpq().PQconninfoParse(conninfo.c_str(), &parse_error);
    if (!parsed) {
        libpq().PQfreemem(parse_error);
        return make_error(where, "malformed connection string (libpq cannot parse it)");
    }
    libpq().PQconninfoFree(parsed);

    const auto timeout_s = std::max<long long>(
        2, std::chrono::duration_cast<std::chrono::seconds>(connect_timeout).count());
    const std::string timeout = std::to_string(timeout_s);
    const std::string user_timeout_ms = std::to_string(timeout_s * 1000);
    // The string is expanded first; the keywords after it override what it says, so the
    // configured connect_timeout holds. Keepalives and tcp_user_timeout bound a silent server.
    const char* keywords[] = {"dbname",     "connect_timeout", "fallback_application_name",
                              "keepalives", "keepalives_idle", "tcp_user_timeout",
                              nullptr};
    const char* values[] = {conninfo.c_str(), timeout.c_str(),         "tunerd", "1",
                            timeout.c_str(),  user_timeout_ms.c_str(), nullptr};
    pg_conn* conn = libpq().PQconnectdbParams(keywords, values, 1);
    if (!conn) return make_error(where, "out of memory creating a libpq connection");
    if (libpq().PQstatus(conn) != CONNECTION_OK) {
        std::string message = trim_message(libpq().PQerrorMessage(conn));
        libpq().PQfinish(conn);
        return make_error(where, "cannot connect to PostgreSQL: " + message);
    }
    Session session(conn, std::move(where));
    // No statement may hold the database thread longer than this.
    const auto statement_ms = std::max<long long>(10'000, timeout_s * 2000);
    auto status = session.exec("SET statement_timeout = " + std::to_string(statement_ms));
    if (!status) return status.error();
    return session;
}

bool Session::healthy() const {
    return conn_ && libpq().PQstatus(conn_.get()) == CONNECTION_OK;
}

Error Session::error(const std::string& what) const {
    return make_error(where_, what);
}

Result<std::vector<Row>> Session::query(const std::string& sql,
                                        const std::vector<std::string>& params) {
    if (!conn_) return error("not connected");
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p.c_str());
    ResultPtr result(libpq().PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()),
                                          nullptr, values.empty() ? nullptr : values.data(),
                                          nullptr, nullptr, 0));
    const auto status = result ? libpq().PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
        const char* message = result ? libpq().PQresultErrorMessage(result.get())
                                     : libpq().PQerrorMessage(conn_.get());
        return error(trim_message(message));
    }
    std::vector<Row> rows;
    const int n_rows = libpq().PQntuples(result.get());
    const int n_cols = libpq().PQnfields(result.get());
    rows.reserve(static_cast<std::size_t>(n_rows));
    for (int r = 0; r < n_rows; ++r) {
        Row row;
        row.reserve(static_cast<std::size_t>(n_cols));
        for (int c = 0; c < n_cols; ++c) {
            if (libpq().PQgetisnull(result.get(), r, c))
                row.emplace_back(std::nullopt);
            else
                row.emplace_back(
                    std::string(libpq().PQgetvalue(result.get(), r, c),
                                static_cast<std::size_t>(libpq().PQgetlength(result.get(), r, c))));
        }
        rows.push_back(std::move(row));
    }
    return rows;
}

Status Session::exec(const std::string& sql) {
    auto result = query(sql);
    if (!result) return result.error();
    return {};
}

Result<std::string> Session::quote_literal(const std::string& value) {
    if (!conn_) return error("not connected");
    char* quoted = libpq().PQescapeLiteral(conn_.get(), value.c_str(), value.size());
    if (!quoted) return error(trim_message(libpq().PQerrorMessage(conn_.get())));
    std::string out(quoted);
    libpq().PQfreemem(quoted);
    return out;
}

}  // namespace tuner::postgres
