// The database side of a control cycle (DESIGN "Policies" 4–5): sizes the app's connection pools
// for the worker pool and the server's live connection budget, hands the pools' numbers (and
// DATABASE_URL) to workers through their environment, caps processes when the budget cannot
// hold them, and gives the PostgreSQL actuator its target settings. Exists only when a database
// is configured (database.url_file, or database.postgres not "off").
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "model/config.hpp"
#include "model/snapshot.hpp"
#include "policies/seed_formula.hpp"
#include "server/pool.hpp"
#include "tuner/control/apply.hpp"
#include "tuner/postgres/actuator.hpp"

namespace tuner {

class DatabaseTuner {
public:
    // nullptr when the config names no database. config.state.dir must be resolved.
    static std::unique_ptr<DatabaseTuner> create(const Config& config, Applier& applier,
                                                 server::WorkerPool& pool);
    DatabaseTuner(const Config& config, Applier& applier, server::WorkerPool& pool);
    ~DatabaseTuner();

    // One control cycle, on the control thread.
    void cycle(const Snapshot& snapshot, const policies::SeedResult& seed);
    // The most worker processes the connection budget allows, when it caps them.
    [[nodiscard]] std::optional<unsigned> max_processes_by_db() const;
    // What it decided and saw, for /performance: pool sizes, PostgreSQL target, actuator status.
    [[nodiscard]] nlohmann::json explain() const;
    // SIGHUP: new config (connection string files re-read; a rollback hold lifted).
    void reload(const Config& config);
    // Restores PostgreSQL's original settings (POST /postgres/rollback); `done` gets the report
    // as JSON and an HTTP status (200 done, 409 no PostgreSQL configured, 503 unreachable, 502 a
    // setting failed), on the database thread. Its decisions are recorded.
    void rollback(std::function<void(nlohmann::json report, int http_status)> done);

private:
    void read_database_url();
    std::map<std::string, std::string> worker_env(const policies::DbPoolResult& pool) const;
    // The actuator of the db_pool knobs: hands the cycle's staged pool sizes to the workers.
    Status publish_staged_pool();

    mutable std::mutex mutex_;
    Config config_;
    Applier& applier_;
    server::WorkerPool& pool_;
    std::unique_ptr<postgres::PostgresActuator> actuator_;
    std::string database_url_;  // never logged
    std::string database_url_error_;
    std::optional<policies::DbPoolValues> current_;      // what workers run with
    std::optional<policies::DbPoolResult> staged_pool_;  // decided this cycle, not yet published
    std::optional<postgres::DatabasePlan> last_plan_;
};

}  // namespace tuner
