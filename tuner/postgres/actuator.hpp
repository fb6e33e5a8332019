// The PostgreSQL actuator: its own thread owns the libpq connection and works a queue (the newest
// target settings, rollbacks, refreshes of the live facts), so no caller ever blocks on the
// database; failures become failed decisions and are retried with exponential backoff.
// Also the one-call functions behind `tunerctl rollback --postgres` and `tunerctl recommend`.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "model/config.hpp"
#include "model/snapshot.hpp"
#include "policies/db_pool.hpp"
#include "policies/postgres_settings.hpp"
#include "tuner/postgres/actions.hpp"

namespace tuner::postgres {

struct ActuatorOptions {
    std::string state_dir;      // resolved (config::resolve_state_dir)
    std::string conninfo_file;  // admin_url_file; in recommend/off mode url_file if no admin file
    std::string conninfo_key;   // "database.admin_url_file": how errors name the connection
    Duration connect_timeout = std::chrono::seconds(5);
    Duration settle_timeout = std::chrono::seconds(10);
    Duration poll_interval = std::chrono::milliseconds(100);
    Duration retry_initial = std::chrono::seconds(1);  // then ×2 per failure
    Duration retry_max = std::chrono::minutes(5);
    Duration refresh_interval = std::chrono::seconds(60);  // re-read live facts for the pool policy
};

// The options for a config: which connection string file, the timeouts.
ActuatorOptions actuator_options(const Config& config, std::string state_dir);

struct ActuatorStatus {
    bool connected = false;
    unsigned consecutive_failures = 0;
    std::string last_error;  // redacted; "" after a success
    std::optional<WallClock::time_point> next_retry;
    std::optional<WallClock::time_point> rolled_back_at;  // seen in the state file
};

class PostgresActuator {
public:
    using ReportCallback = std::function<void(const PostgresReport&)>;

    // Starts the database thread. `on_report` runs on that thread after every action, with its
    // decisions (log them through apply()/the decision log) and the live state.
    PostgresActuator(ActuatorOptions options, ReportCallback on_report);
    // Stops the thread; waits at most for the libpq call in progress (bounded by its timeouts).
    ~PostgresActuator();
    PostgresActuator(const PostgresActuator&) = delete;
    PostgresActuator& operator=(const PostgresActuator&) = delete;

    // The settings wanted now, in `mode` (off: none). Level-triggered: the thread works on the
    // newest target; a target equal to the last one done is not done again.
    void set_target(PostgresMode mode, policies::PostgresSettingsResult settings);
    // A config reload: new options; lifts the hold of an earlier rollback; redoes the target.
    void reconfigure(ActuatorOptions options);
    // Restores the originals (also what `tunerctl rollback --postgres` does without a daemon).
    std::future<PostgresReport> rollback();
    // The same, with `done` called on the database thread when it is over (or the actuator
    // stops): for callers that must not block, like the admin API.
    void rollback(std::function<void(const PostgresReport&)> done);
    // Reads the live settings now.
    std::future<PostgresReport> refresh();

    // The last live state read, and the numbers the pool policy needs from it.
    [[nodiscard]] std::optional<LiveState> live() const;
    [[nodiscard]] std::optional<policies::PostgresServerFacts> server_facts() const;
    [[nodiscard]] ActuatorStatus status() const;

private:
    struct Job {
        std::string action;  // "rollback" | "refresh"
        std::promise<PostgresReport> promise;
        std::function<void(const PostgresReport&)> done;  // optional, besides the promise
    };
    struct Target {
        PostgresMode mode = PostgresMode::off;
        policies::PostgresSettingsResult settings;
    };

    void run();
    std::future<PostgresReport> enqueue(std::string action,
                                        std::function<void(const PostgresReport&)> done = {});
    // These run on the database thread without the mutex (they block on libpq).
    Result<Session*> session_for(const ActuatorOptions& options, bool reconnect);
    PostgresReport run_target(const Target& target, const ActuatorOptions& options,
                              WallClock::time_point loaded_at, bool reconnect);
    PostgresReport run_job(const std::string& action, const ActuatorOptions& options,
                           WallClock::time_point loaded_at, bool reconnect);
    // These run with the mutex held.
    Duration backoff_locked() const;
    void record_locked(const PostgresReport& report);

    ReportCallback on_report_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    ActuatorOptions options_;
    WallClock::time_point config_loaded_at_;
    std::optional<Target> target_;
    bool target_pending_ = false;
    std::deque<Job> jobs_;
    Clock::time_point retry_at_{};
    Clock::time_point refresh_at_{};
    unsigned failures_ = 0;
    ActuatorStatus status_;
    std::optional<LiveState> live_;
    bool stop_ = false;
    bool reconnect_ = false;          // the options changed: open a new connection
    std::optional<Session> session_;  // only the thread touches it
    std::thread thread_;
};

// The database plan of one cycle: the pools, then PostgreSQL's settings for the connections they
// need. Pure.
struct DatabasePlan {
    unsigned max_workers = 0;  // the most worker processes the pools are sized for
    policies::DbPoolResult pool;
    policies::PostgresSettingsResult settings;
};
DatabasePlan plan_database(const Snapshot& snapshot, const Config& config,
                           const policies::SeedResult& seed,
                           const std::optional<policies::PostgresServerFacts>& server,
                           const std::optional<policies::DbPoolValues>& current = std::nullopt);

// `tunerctl rollback --postgres`: one blocking attempt with database.admin_url_file;
// config.state.dir must be resolved. The report's decisions go to the decision log.
PostgresReport rollback_postgres(const Config& config);
// Prints the decisions; exit status 0 done, 69 PostgreSQL unreachable, 78 no admin_url_file or
// state dir, 1 some setting failed.
// `on_report` (when set) gets the report first, e.g. to write its decisions to the decision log.
int run_rollback_cli(const Config& config, std::ostream& out, std::ostream& err,
                     const std::function<void(const PostgresReport&)>& on_report = {});

// The database section of `tunerctl recommend`: recommended vs current values (read from
// PostgreSQL when a connection string file is configured), as JSON and as text. Never writes.
struct DatabaseRecommendation {
    nlohmann::json json;
    std::string text;
};
DatabaseRecommendation recommend_database(const Config& config, const Snapshot& snapshot);

}  // namespace tuner::postgres
