// The app's database connection pools (SQLAlchemy's pool_size, max_overflow, pool_recycle,
// pool_timeout), sized so that all workers together never open more connections than PostgreSQL
// accepts. DESIGN.md "Policies" 4; docs/policies.md "Database policies".
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/config.hpp"
#include "model/decision.hpp"
#include "model/snapshot.hpp"
#include "policies/seed_formula.hpp"

namespace tuner::policies {

// Connections kept free beyond superuser_reserved_connections, for an administrator's psql and
// tunerd's own actuator.
inline constexpr unsigned kAdminReserveConnections = 2;

// What the server says (pg_settings). The live max_connections is the input: a recommended new
// value counts only after PostgreSQL restarts.
struct PostgresServerFacts {
    unsigned max_connections = 100;  // PostgreSQL's defaults until read
    unsigned superuser_reserved_connections = 3;
    Duration idle_session_timeout{0};  // 0 = none
    Duration tcp_keepalives_idle{0};   // 0 = the OS default, no horizon of the server's own
    friend bool operator==(const PostgresServerFacts&, const PostgresServerFacts&) = default;
};

// The four numbers every worker's pool runs with.
struct DbPoolValues {
    unsigned pool_size = 0;
    unsigned max_overflow = 0;
    Duration pool_recycle{0};
    Duration pool_timeout{0};
    friend bool operator==(const DbPoolValues&, const DbPoolValues&) = default;
};

struct DbPoolInputs {
    unsigned max_workers = 1;  // the most worker processes that can exist (max_workers_for_pool)
    unsigned threads = 1;      // concurrent requests per worker
    std::optional<PostgresServerFacts> server;  // unset: not read yet, PostgreSQL's defaults
    Duration request_timeout = std::chrono::seconds(60);
    std::optional<DbPoolValues> current;  // what workers run with now: old values of decisions
};

// When the connection budget cannot hold every worker: PgBouncer in transaction pooling mode
// lets max_workers × (pool_size + max_overflow) client connections share the server's budget.
struct PgBouncerAdvice {
    unsigned default_pool_size = 0;  // server connections PgBouncer may open: the budget
    unsigned max_client_conn = 0;    // what the app's pools may open against PgBouncer
};

struct DbPoolResult {
    DbPoolValues values;
    unsigned connection_budget = 0;    // max_connections − superuser_reserved − admin reserve
    unsigned wanted_max_overflow = 0;  // 2 × pool_size (SQLAlchemy's default ratio, 5 + 10)
    unsigned wanted_max_connections = 0;  // for max_workers with the wanted overflow + reserves
    std::string wanted_max_connections_formula;   // "3 workers × (1 + 2) + 3 reserved + 2 = 14"
    std::optional<unsigned> max_processes_by_db;  // set when the budget caps the worker count
    std::optional<PgBouncerAdvice> pgbouncer;     // set together with max_processes_by_db
    std::string reason;                           // every number, for logs and tunerctl
    std::string inputs_json;
    std::vector<Decision> decisions;  // db_pool.* knobs that differ from `current` (all if unset)
    std::map<std::string, std::string> env;  // DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_POOL_RECYCLE, ...
};

// Pure: pool_size = threads; max_overflow so that max_workers × (pool_size + max_overflow) fits
// the live connection budget; pool_recycle under the server's idle horizon; pool_timeout under
// server.request_timeout.
DbPoolResult size_db_pool(const DbPoolInputs& inputs);

// The most worker processes that can exist at once in the pool's mode: `count` when fixed, the
// seed formula's answer in formula mode, else workers.max bounded by the memory ceiling.
unsigned max_workers_for_pool(const SeedResult& seed, const PoolConfig& pool);

// The inputs the daemon and `tunerctl recommend` use.
DbPoolInputs db_pool_inputs(const Snapshot& snapshot, const Config& config, const SeedResult& seed,
                            const std::optional<PostgresServerFacts>& server,
                            const std::optional<DbPoolValues>& current = std::nullopt);

}  // namespace tuner::policies
