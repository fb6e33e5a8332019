// The decision log's SQLite schema and its forward migrations, tracked in PRAGMA user_version,
// and the two ways of opening a log file: the writer's (WAL, migrates) and a reader's.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "model/result.hpp"
#include "tuner/decision_log/sqlite.hpp"

namespace tuner::decision_log::schema {

// One step forward: the SQL that takes a database from to_version − 1 to to_version.
struct Migration {
    int to_version = 0;
    std::string description;  // shown in errors: "create runs, decisions and samples"
    std::string sql;
};

// The real steps, oldest first; the last one's to_version is the version this build writes.
const std::vector<Migration>& migrations();
int current_version();

// PRAGMA user_version: 0 for a database that holds no decision log yet.
Result<int> schema_version(sqlite3* db);

// Runs every step of `steps` above the stored version, each in its own transaction (a failed
// step leaves the database at the previous version). Refuses a database newer than `steps`.
Status migrate(sqlite3* db, const std::vector<Migration>& steps = migrations());

// The writer's connection: created if missing, WAL journal, a short busy timeout (the writer
// thread must not stall behind a lock), migrated to current_version(). Fails if the file can
// only be opened read-only.
Result<sqlite::Connection> open_for_writing(const std::string& path,
                                            std::chrono::milliseconds busy_timeout);

// A read-only connection to an existing log at exactly current_version() (tunerctl --db, queries
// beside the writer). Falls back to an immutable open when the -wal/-shm files cannot be made.
Result<sqlite::Connection> open_for_reading(const std::string& path,
                                            std::chrono::milliseconds busy_timeout);

}  // namespace tuner::decision_log::schema
