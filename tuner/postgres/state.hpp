// What tunerd remembers about PostgreSQL between runs (state_dir/postgres-state.json): each
// setting's original value and whether it was in postgresql.auto.conf, what tunerd last applied,
// and when `tunerctl rollback --postgres` last ran. Written atomically, under a file lock.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "model/result.hpp"
#include "model/units.hpp"

namespace tuner::postgres {

struct SettingRecord {
    std::string original;                     // the configured value before tunerd's first change
    bool original_in_auto_conf = false;       // true: rollback SETs `original`; false: RESET
    std::optional<std::string> last_applied;  // what tunerd last set with ALTER SYSTEM
    friend bool operator==(const SettingRecord&, const SettingRecord&) = default;
};

struct PostgresState {
    std::map<std::string, SettingRecord> settings;
    // A rollback holds tunerd back until its config is reloaded or it restarts after this time.
    std::optional<WallClock::time_point> rolled_back_at;
    friend bool operator==(const PostgresState&, const PostgresState&) = default;
};

std::string postgres_state_path(const std::string& state_dir);    // .../postgres-state.json
std::string postgres_snippet_path(const std::string& state_dir);  // .../postgres-tunerd.conf

// A missing file is an empty state; an unreadable or malformed one is an error naming the file
// (apply and rollback then refuse: without the originals a rollback could not be exact).
Result<PostgresState> load_postgres_state(const std::string& path);
Status save_postgres_state(const std::string& path, const PostgresState& state);

// Writes a temporary file beside `path`, fsyncs it and renames it over `path`: readers see the
// old content or the new, never a torn file.
Status write_file_atomically(const std::string& path, const std::string& content);

// Exclusive flock on state_dir/postgres-state.lock while the daemon and tunerctl could both act.
class StateLock {
public:
    static Result<StateLock> acquire(const std::string& state_dir);
    StateLock(StateLock&& other) noexcept;
    StateLock& operator=(StateLock&&) = delete;
    ~StateLock();

private:
    explicit StateLock(int fd) : fd_(fd) {}
    int fd_ = -1;
};

}  // namespace tuner::postgres
