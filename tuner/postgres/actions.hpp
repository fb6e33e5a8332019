// The three things tunerd does to PostgreSQL, each a blocking function that returns its decisions:
// recommend (write state_dir/postgres-tunerd.conf), apply (ALTER SYSTEM SET + pg_reload_conf(),
// originals recorded first, administrators' changes respected) and rollback (restore originals).
// The database thread (actuator.hpp) and `tunerctl rollback --postgres` call them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model/decision.hpp"
#include "model/result.hpp"
#include "policies/postgres_settings.hpp"
#include "tuner/postgres/live.hpp"
#include "tuner/postgres/session.hpp"

namespace tuner::postgres {

struct PostgresReport {
    std::string action;               // "recommend", "apply", "rollback", "refresh"
    std::vector<Decision> decisions;  // subsystem "postgres", knob = setting name, Text values
    std::optional<LiveState> live;    // what the server said last
    std::optional<Error> error;       // the action as a whole failed (connection, state file)
    std::vector<std::string> notes;   // what it saw but did not act on
    bool retry_later = false;         // failed for a reason that may pass (server down)

    [[nodiscard]] bool ok() const { return !error.has_value(); }
};

struct ActionOptions {
    std::string state_dir;
    Duration settle_timeout = std::chrono::seconds(10);  // deadline for reloaded values
    Duration poll_interval = std::chrono::milliseconds(100);
    // A rollback after this instant holds apply back (the daemon's start or config reload).
    WallClock::time_point config_loaded_at{};
};

// Writes the snippet atomically; `live` (when known) gives the current values.
PostgresReport recommend_settings(const policies::PostgresSettingsResult& settings,
                                  const std::optional<LiveState>& live,
                                  const ActionOptions& options);

// Changes what is more than 5 % off, never restarts PostgreSQL.
PostgresReport apply_settings(Session& session, const policies::PostgresSettingsResult& settings,
                              const ActionOptions& options);

// Restores every original tunerd recorded (RESET where it was not in postgresql.auto.conf) and
// holds apply back until the config is reloaded or tunerd restarts.
PostgresReport rollback_settings(Session& session, const ActionOptions& options);

// The report of an action that could not reach PostgreSQL: every setting failed with `error`.
PostgresReport failed_report(std::string action, const policies::PostgresSettingsResult& settings,
                             const Error& error, bool retry_later);

}  // namespace tuner::postgres
