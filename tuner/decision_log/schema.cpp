// The decision log's schema, migrations and connection set-up (see schema.hpp).
#include "tuner/decision_log/schema.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <sqlite3.h>

namespace tuner::decision_log::schema {
namespace {

// Version 1. Times are RFC 3339 UTC text with milliseconds (tuner/decision_log/timestamps.hpp): it
// sorts in time order, so the time indexes serve "since" queries and retention. Knob values are
// stored with their type (value_type: count, bytes, seconds, text, none; "old,new" when the two
// differ): count INTEGER, bytes INTEGER (TEXT above 2^63 − 1), seconds REAL, text TEXT, none NULL.
constexpr const char* kVersion1 = R"sql(
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    started     TEXT NOT NULL,
    version     TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    config_text TEXT NOT NULL
);
CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER,
    time        TEXT NOT NULL,
    plan_id     INTEGER NOT NULL,
    subsystem   TEXT NOT NULL,
    knob        TEXT NOT NULL,
    value_type  TEXT NOT NULL,
    old_value,
    new_value,
    rule        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    inputs_json TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    error       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX decisions_by_time ON decisions(time);
CREATE TABLE samples (
    run_id                INTEGER,
    time                  TEXT NOT NULL,
    workers_target        INTEGER NOT NULL,
    workers_ready         INTEGER NOT NULL,
    threads               INTEGER NOT NULL,
    rps                   REAL NOT NULL,
    p95_ms                REAL NOT NULL,
    queue_wait_p95_ms     REAL NOT NULL,
    memory_usage_bytes    INTEGER NOT NULL,
    working_set_bytes     INTEGER NOT NULL,
    memory_limit_bytes    INTEGER NOT NULL,
    cpu_utilisation       REAL NOT NULL,
    psi_cpu_some_avg10    REAL NOT NULL,
    psi_memory_some_avg10 REAL NOT NULL
);
CREATE INDEX samples_by_time ON samples(time);
)sql";

// sqlite3_open_v2 with SQLITE_OPEN_URI reads '?', '#' and '%' as URI syntax: escape them.
std::string file_uri(const std::string& path, std::string_view query) {
    std::string uri = "file:";
    for (const char c : path) {
        if (c == '?' || c == '#' || c == '%') {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned char>(c));
            uri += buf;
        } else {
            uri += c;
        }
    }
    uri += "?";
    uri += query;
    return uri;
}

Status check_readable_version(sqlite3* db, const std::string& path) {
    auto version = schema_version(db);
    if (!version.ok()) return version.error();
    const int current = current_version();
    if (*version == 0) {
        return Error{"not a tunerd decision log (schema version 0: it holds no decision tables)",
                     path};
    }
    if (*version > current) {
        return Error{"schema version " + std::to_string(*version) +
                         " was written by a newer tunerd; this build reads version " +
                         std::to_string(current),
                     path};
    }
    if (*version < current) {
        return Error{"schema version " + std::to_string(*version) + " is older than this build's " +
                         std::to_string(current) + "; start tunerd once to migrate it",
                     path};
    }
    return {};
}

// SQLite's CANTOPEN reports the errno of its last fallback (often ENOENT from a read-only
// retry), not why creating the file failed: name the directory's problem instead.
std::string directory_problem(const std::string& path) {
    const std::filesystem::path dir = std::filesystem::path(path).parent_path();
    const std::string shown = dir.empty() ? "." : dir.string();
    std::error_code ec;
    if (!dir.empty() && !std::filesystem::is_directory(dir, ec)) {
        return "; the directory " + shown + " does not exist";
    }
    // Effective IDs and capabilities: what the writes will run with (access() checks the real
    // ones).
    if (::faccessat(AT_FDCWD, dir.empty() ? "." : dir.c_str(), W_OK, AT_EACCESS) != 0) {
        return "; the directory " + shown + " is not writable (" + std::strerror(errno) + ")";
    }
    return "";
}

// The log holds the config text, workers.env and all: it is for its owner only. SQLite creates
// the -wal, -shm and -journal files with the main file's permissions (findCreateFileMode in
// os_unix.c), so the main file is created 0600 before SQLite opens it. A log or side file left
// open to others (by an older tunerd) is narrowed to its owner. When the file cannot be opened
// here, SQLite's own open fails and says why.
void make_owner_only(const std::string& path) {
    const auto narrow = [](int fd) {
        struct stat st {};
        if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0 &&
            st.st_uid == ::geteuid()) {
            // Failing here (a file system without modes) leaves the file as it was; it is
            // still the log.
            (void)::fchmod(fd, st.st_mode & 0700);
        }
    };
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    narrow(fd);
    ::close(fd);
    for (const char* suffix : {"-wal", "-shm", "-journal"}) {
        const int side =
            ::open((path + suffix).c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (side < 0) continue;  // absent: SQLite creates it with the main file's mode
        narrow(side);
        ::close(side);
    }
}

}  // namespace

const std::vector<Migration>& migrations() {
    static const std::vector<Migration> steps = {
        {1, "create runs, decisions and samples", kVersion1},
    };
    return steps;
}

int current_version() {
    return migrations().back().to_version;
}

Result<int> schema_version(sqlite3* db) {
    auto version = sqlite::query_int(db, "PRAGMA user_version", "reading the schema version");
    if (!version.ok()) return version.error();
    return static_cast<int>(version->value_or(0));
}

Status migrate(sqlite3* db, const std::vector<Migration>& steps) {
    auto stored = schema_version(db);
    if (!stored.ok()) return stored.error();
    const int newest = steps.empty() ? 0 : steps.back().to_version;
    if (*stored > newest) {
        return Error{"schema version " + std::to_string(*stored) +
                         " was written by a newer tunerd; this build writes version " +
                         std::to_string(newest) + " and will not touch it",
                     sqlite::database_file(db)};
    }
    for (const Migration& step : steps) {
        if (step.to_version <= *stored) continue;
        const std::string doing = "migrating the decision log to schema version " +
                                  std::to_string(step.to_version) + " (" + step.description + ")";
        if (auto begun = sqlite::exec(db, "BEGIN IMMEDIATE", doing); !begun.ok()) return begun;
        Status done = sqlite::exec(db, step.sql, doing);
        if (done.ok()) {
            done =
                sqlite::exec(db, "PRAGMA user_version = " + std::to_string(step.to_version), doing);
        }
        if (done.ok()) done = sqlite::exec(db, "COMMIT", doing);
        if (!done.ok()) {
            (void)sqlite::exec(db, "ROLLBACK", "");
            return done;
        }
    }
    return {};
}

Result<sqlite::Connection> open_for_writing(const std::string& path,
                                            std::chrono::milliseconds busy_timeout) {
    make_owner_only(path);
    auto db = sqlite::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX);
    if (!db.ok()) {
        Error e = db.error();
        e.what += directory_problem(path);
        return e;
    }
    sqlite3* raw = db->get();
    // SQLite silently falls back to read-only when the file is not writable; say so now rather
    // than fail at the first write with a vaguer message.
    if (sqlite3_db_readonly(raw, "main") == 1) {
        return Error{
            "the database can only be opened read-only (file or directory not "
            "writable, or a read-only mount)",
            path};
    }
    sqlite3_busy_timeout(raw, static_cast<int>(busy_timeout.count()));
    {
        auto mode = sqlite::Statement::prepare(raw, "PRAGMA journal_mode = WAL");
        if (!mode.ok()) return mode.error();
        auto row = mode->step("switching the journal to WAL");
        if (!row.ok()) return row.error();
        const std::string got = *row ? mode->text(0) : "";
        if (got != "wal") {
            return Error{"could not switch the journal to WAL (got \"" + got + "\")", path};
        }
    }
    // In WAL mode NORMAL is durable across application crashes and much cheaper than FULL
    // (sqlite.org/pragma.html#pragma_synchronous); a power cut may lose the last commits.
    if (auto sync = sqlite::exec(raw, "PRAGMA synchronous = NORMAL", "setting synchronous");
        !sync.ok()) {
        return sync.error();
    }
    if (auto migrated = migrate(raw); !migrated.ok()) return migrated.error();
    return std::move(*db);
}

Result<sqlite::Connection> open_for_reading(const std::string& path,
                                            std::chrono::milliseconds busy_timeout) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return Error{"no such file", path};
    auto attempt = [&](bool immutable) -> Result<sqlite::Connection> {
        auto db = immutable ? sqlite::open(file_uri(path, "immutable=1"),
                                           SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, true)
                            : sqlite::open(path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
        if (!db.ok()) return db.error();
        sqlite3_busy_timeout(db->get(), static_cast<int>(busy_timeout.count()));
        if (auto checked = check_readable_version(db->get(), path); !checked.ok()) {
            return checked.error();
        }
        return std::move(*db);
    };
    auto db = attempt(false);
    // A WAL database needs its -shm file; a reader without write access to the directory of a
    // cleanly closed log cannot create it. Nobody is writing then, so an immutable open is safe.
    const auto needs_shm = [](const Error& e) {
        return e.what.find("SQLITE_CANTOPEN") != std::string::npos ||
               e.what.find("SQLITE_READONLY") != std::string::npos;
    };
    if (!db.ok() && needs_shm(db.error())) {
        auto fallback = attempt(true);
        if (fallback.ok()) return fallback;
    }
    return db;
}

}  // namespace tuner::decision_log::schema
