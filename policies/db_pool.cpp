// Connection-pool sizing coupled to the worker pool and PostgreSQL's live max_connections
// (see db_pool.hpp).
#include "policies/db_pool.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/knobs.hpp"
#include "policies/registry.hpp"

namespace tuner::policies {
namespace {

using std::chrono::seconds;

// SQLAlchemy's QueuePool defaults are pool_size 5, max_overflow 10: overflow twice the pool.
constexpr unsigned kOverflowPerPooled = 2;
// SQLAlchemy's default pool_timeout.
constexpr seconds kSqlalchemyPoolTimeout{30};
// SQLAlchemy's docs ("Setting Pool Recycle") and the seeds recycle hourly when the server has no
// idle horizon of its own.
constexpr seconds kDefaultRecycle{3600};

std::int64_t whole_seconds(Duration d) {
    return std::chrono::duration_cast<seconds>(d).count();
}

// Under the server's horizon: a connection is replaced before the server may drop it idle.
seconds recycle_below(Duration horizon, std::string& why) {
    const std::int64_t horizon_s = whole_seconds(horizon);
    const std::int64_t margin_s = std::max<std::int64_t>(1, horizon_s / 10);
    const std::int64_t recycle_s =
        std::clamp<std::int64_t>(horizon_s - margin_s, 1, kDefaultRecycle.count());
    why += "below the server's horizon " + format_duration(horizon);
    return seconds{recycle_s};
}

// Stamped when recorded (the policy has no clock of its own here).
Decision pool_decision(const Knob& knob, KnobValue old_value, KnobValue new_value,
                       const DbPoolResult& r) {
    return make_decision(knob, {}, std::move(old_value), std::move(new_value),
                         {rule::db_pool, r.reason, r.inputs_json});
}

Seconds as_seconds(Duration d) {
    return Seconds{to_seconds(d)};
}

}  // namespace

DbPoolResult size_db_pool(const DbPoolInputs& in) {
    DbPoolResult r;
    const PostgresServerFacts facts = in.server.value_or(PostgresServerFacts{});
    const unsigned workers = std::max(1u, in.max_workers);
    unsigned pool_size = std::max(1u, in.threads);

    const unsigned reserved = facts.superuser_reserved_connections + kAdminReserveConnections;
    r.connection_budget = facts.max_connections > reserved ? facts.max_connections - reserved : 0;
    r.wanted_max_overflow = kOverflowPerPooled * pool_size;
    r.wanted_max_connections = workers * (pool_size + r.wanted_max_overflow) + reserved;
    r.wanted_max_connections_formula = fmt::format(
        "{} workers × (pool_size {} + max_overflow {}) + superuser_reserved {} "
        "+ admin reserve {} = {}",
        workers, pool_size, r.wanted_max_overflow, facts.superuser_reserved_connections,
        kAdminReserveConnections, r.wanted_max_connections);

    std::string reason = fmt::format(
        "pool_size {} = threads; budget {} = max_connections {}{} "
        "− superuser_reserved {} − admin {}",
        pool_size, r.connection_budget, facts.max_connections,
        in.server ? "" : " (not read yet: PostgreSQL's default)",
        facts.superuser_reserved_connections, kAdminReserveConnections);

    const unsigned per_worker = r.connection_budget / workers;
    unsigned max_overflow = 0;
    if (per_worker >= pool_size) {
        max_overflow = std::min(r.wanted_max_overflow, per_worker - pool_size);
        reason += fmt::format("; {} workers × ({} + {}) = {} ≤ {} → max_overflow {}", workers,
                              pool_size, max_overflow, workers * (pool_size + max_overflow),
                              r.connection_budget, max_overflow);
        if (max_overflow < r.wanted_max_overflow)
            reason += fmt::format(" (wanted {})", r.wanted_max_overflow);
    } else {
        // Even without overflow the pools would exceed the budget: fewer processes, or PgBouncer.
        unsigned cap = r.connection_budget / pool_size;
        if (cap == 0) {
            cap = 1;
            pool_size = std::max(1u, r.connection_budget);
        }
        r.max_processes_by_db = cap;
        r.pgbouncer =
            PgBouncerAdvice{r.connection_budget, workers * (pool_size + r.wanted_max_overflow)};
        reason += fmt::format(
            "; {} workers × {} = {} > {} even with max_overflow 0 → workers capped at {} "
            "(max_processes_by_db = budget / pool_size); to keep {} workers run PgBouncer in "
            "transaction pooling (pool_mode = transaction, default_pool_size = {}, "
            "max_client_conn = {}), point DATABASE_URL at it, or raise max_connections to {} "
            "(needs a restart)",
            workers, pool_size, workers * pool_size, r.connection_budget, cap, workers,
            r.pgbouncer->default_pool_size, r.pgbouncer->max_client_conn, r.wanted_max_connections);
    }

    std::string recycle_why;
    const Duration horizons[] = {facts.idle_session_timeout, facts.tcp_keepalives_idle};
    Duration horizon{0};
    for (const Duration h : horizons) {
        if (h.count() > 0 && (horizon.count() == 0 || h < horizon)) horizon = h;
    }
    seconds recycle = kDefaultRecycle;
    if (horizon.count() > 0) {
        recycle = recycle_below(horizon, recycle_why);
    } else {
        recycle_why = "no server idle horizon, SQLAlchemy's hourly recycle";
    }

    // A request waiting for a connection must give up before the front's 504 so the app answers.
    const seconds half_request = std::chrono::duration_cast<seconds>(in.request_timeout / 2);
    const seconds timeout = std::max(seconds{1}, std::min(kSqlalchemyPoolTimeout, half_request));

    reason += "; pool_recycle " + format_duration(recycle) + " (" + recycle_why +
              "); pool_timeout " + format_duration(timeout) +
              " (SQLAlchemy's 30s, at most half "
              "of request_timeout " +
              format_duration(in.request_timeout) + ")";
    r.reason = std::move(reason);

    r.values = DbPoolValues{pool_size, max_overflow, recycle, timeout};

    nlohmann::json inputs = {
        {"max_workers", workers},
        {"threads", in.threads},
        {"max_connections", facts.max_connections},
        {"max_connections_live", in.server.has_value()},
        {"superuser_reserved_connections", facts.superuser_reserved_connections},
        {"admin_reserve", kAdminReserveConnections},
        {"connection_budget", r.connection_budget},
        {"idle_session_timeout_s", to_seconds(facts.idle_session_timeout)},
        {"tcp_keepalives_idle_s", to_seconds(facts.tcp_keepalives_idle)},
        {"request_timeout_s", to_seconds(in.request_timeout)},
        {"wanted_max_connections", r.wanted_max_connections}};
    if (r.max_processes_by_db) inputs["max_processes_by_db"] = *r.max_processes_by_db;
    r.inputs_json = inputs.dump();

    const DbPoolValues& v = r.values;
    const auto* cur = in.current ? &*in.current : nullptr;
    if (!cur || cur->pool_size != v.pool_size)
        r.decisions.push_back(pool_decision(knob::db_pool_size,
                                            cur ? KnobValue{Count{cur->pool_size}} : KnobValue{},
                                            Count{v.pool_size}, r));
    if (!cur || cur->max_overflow != v.max_overflow)
        r.decisions.push_back(pool_decision(knob::db_pool_max_overflow,
                                            cur ? KnobValue{Count{cur->max_overflow}} : KnobValue{},
                                            Count{v.max_overflow}, r));
    if (!cur || cur->pool_recycle != v.pool_recycle)
        r.decisions.push_back(pool_decision(
            knob::db_pool_recycle, cur ? KnobValue{as_seconds(cur->pool_recycle)} : KnobValue{},
            as_seconds(v.pool_recycle), r));
    if (!cur || cur->pool_timeout != v.pool_timeout)
        r.decisions.push_back(pool_decision(
            knob::db_pool_timeout, cur ? KnobValue{as_seconds(cur->pool_timeout)} : KnobValue{},
            as_seconds(v.pool_timeout), r));

    r.env = {{"DB_POOL_SIZE", std::to_string(v.pool_size)},
             {"DB_MAX_OVERFLOW", std::to_string(v.max_overflow)},
             {"DB_POOL_RECYCLE", std::to_string(whole_seconds(v.pool_recycle))},
             {"DB_POOL_TIMEOUT", std::to_string(whole_seconds(v.pool_timeout))}};
    return r;
}

unsigned max_workers_for_pool(const SeedResult& seed, const PoolConfig& pool) {
    switch (pool.mode) {
        case PoolMode::fixed:
            return std::max(1u, pool.count);
        case PoolMode::formula:
            return std::max(1u, seed.workers);
        case PoolMode::adaptive:
            break;
    }
    // The adaptive controller grows up to workers.max, but never past the memory ceiling.
    return std::max(1u, std::min(pool.max, seed.memory_ceiling));
}

DbPoolInputs db_pool_inputs(const Snapshot& snapshot, const Config& config, const SeedResult& seed,
                            const std::optional<PostgresServerFacts>& server,
                            const std::optional<DbPoolValues>& current) {
    DbPoolInputs in;
    in.max_workers = max_workers_for_pool(seed, config.workers);
    // The pool's live threads once it runs (the controller may raise them), else the config's.
    in.threads = snapshot.pool.target > 0 ? snapshot.pool.threads : config.workers.threads;
    in.server = server;
    in.request_timeout = config.server.request_timeout;
    in.current = current;
    return in;
}

}  // namespace tuner::policies
