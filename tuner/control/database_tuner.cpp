// The database side of a control cycle (see database_tuner.hpp).
#include "tuner/control/database_tuner.hpp"

#include <algorithm>
#include <fstream>

#include <spdlog/spdlog.h>

#include "model/log_text.hpp"
#include "tuner/decision_log/json.hpp"

namespace tuner {

namespace {

bool database_configured(const Config& config) {
    return !config.database.url_file.empty() || config.database.postgres != PostgresMode::off;
}

nlohmann::json pool_values_json(const policies::DbPoolValues& v) {
    return {{"pool_size", v.pool_size},
            {"max_overflow", v.max_overflow},
            {"pool_recycle_s", to_seconds(v.pool_recycle)},
            {"pool_timeout_s", to_seconds(v.pool_timeout)}};
}

}  // namespace

std::unique_ptr<DatabaseTuner> DatabaseTuner::create(const Config& config, Applier& applier,
                                                     server::WorkerPool& pool) {
    if (!database_configured(config)) return nullptr;
    return std::make_unique<DatabaseTuner>(config, applier, pool);
}

DatabaseTuner::DatabaseTuner(const Config& config, Applier& applier, server::WorkerPool& pool)
    : config_(config), applier_(applier), pool_(pool) {
    read_database_url();
    for (const Knob* k : {&knob::db_pool_size, &knob::db_pool_max_overflow, &knob::db_pool_recycle,
                          &knob::db_pool_timeout}) {
        applier_.set_actuator(*k, [this](const Decision&) { return publish_staged_pool(); });
    }
    auto options = postgres::actuator_options(config_, config_.state.dir);
    if (!options.conninfo_file.empty() || config_.database.postgres != PostgresMode::off) {
        // Reports arrive on the database thread with their outcomes set: record them as they are.
        actuator_ = std::make_unique<postgres::PostgresActuator>(
            std::move(options), [this](const postgres::PostgresReport& report) {
                // One report = one plan: the settings an apply (or rollback) changed together.
                const auto plan_id = applier_.next_plan_id();
                for (auto d : report.decisions) {
                    if (d.outcome == Outcome::unchanged) continue;
                    d.plan_id = plan_id;
                    applier_.record_done(d);
                }
            });
    }
}

DatabaseTuner::~DatabaseTuner() = default;

Status DatabaseTuner::publish_staged_pool() {
    // The four pool knobs reach workers together, through their environment (fixed at exec: new
    // values reach workers as they start or are recycled). The first of a plan's decisions
    // publishes them; the others find them published.
    std::optional<policies::DbPoolResult> staged;
    {
        std::lock_guard lock(mutex_);
        staged.swap(staged_pool_);
    }
    if (!staged) return {};
    pool_.set_worker_env(worker_env(*staged));
    std::lock_guard lock(mutex_);
    current_ = staged->values;
    return {};
}

void DatabaseTuner::read_database_url() {
    database_url_.clear();
    database_url_error_.clear();
    const auto& file = config_.database.url_file;
    if (file.empty()) return;
    std::ifstream in(file);
    if (!in) {
        database_url_error_ = "cannot read database.url_file \"" + file + "\"";
        spdlog::error(
            "event=database_url_unreadable file={} action=\"workers start without DATABASE_URL\"",
            log_quote(file));
        return;
    }
    std::getline(in, database_url_);
    while (!database_url_.empty() &&
           (database_url_.back() == '\r' || database_url_.back() == ' ')) {
        database_url_.pop_back();
    }
    if (database_url_.empty()) database_url_error_ = "database.url_file \"" + file + "\" is empty";
}

std::map<std::string, std::string> DatabaseTuner::worker_env(
    const policies::DbPoolResult& pool) const {
    std::map<std::string, std::string> env = pool.env;
    if (!database_url_.empty()) env["DATABASE_URL"] = database_url_;
    return env;
}

void DatabaseTuner::cycle(const Snapshot& snapshot, const policies::SeedResult& seed) {
    std::optional<policies::PostgresServerFacts> facts;
    if (actuator_) facts = actuator_->server_facts();
    std::optional<policies::DbPoolValues> current;
    {
        std::lock_guard lock(mutex_);
        current = current_;
    }
    auto plan = postgres::plan_database(snapshot, config_, seed, facts, current);
    const auto plan_id = plan.pool.decisions.empty() ? 0 : applier_.next_plan_id();
    {
        std::lock_guard lock(mutex_);
        staged_pool_ = plan.pool;
    }
    for (auto d : plan.pool.decisions) {
        d.plan_id = plan_id;
        applier_.apply(d);
    }
    if (actuator_ && config_.database.postgres != PostgresMode::off) {
        actuator_->set_target(config_.database.postgres, plan.settings);
    }
    std::lock_guard lock(mutex_);
    last_plan_ = std::move(plan);
}

std::optional<unsigned> DatabaseTuner::max_processes_by_db() const {
    std::lock_guard lock(mutex_);
    if (!last_plan_) return std::nullopt;
    return last_plan_->pool.max_processes_by_db;
}

nlohmann::json DatabaseTuner::explain() const {
    std::lock_guard lock(mutex_);
    nlohmann::json out = {
        {"postgres_mode", to_string(config_.database.postgres)},
        {"location", to_string(config_.database.location)},
        {"database_url", database_url_.empty() ? (database_url_error_.empty() ? "not configured"
                                                                              : database_url_error_)
                                               : "set (from database.url_file)"}};
    if (current_) out["workers_run_with"] = pool_values_json(*current_);
    if (last_plan_) {
        const auto& p = last_plan_->pool;
        nlohmann::json pool = pool_values_json(p.values);
        pool["connection_budget"] = p.connection_budget;
        pool["max_workers"] = last_plan_->max_workers;
        pool["wanted_max_connections"] = p.wanted_max_connections;
        pool["wanted_max_connections_formula"] = p.wanted_max_connections_formula;
        pool["max_processes_by_db"] =
            p.max_processes_by_db ? nlohmann::json(*p.max_processes_by_db) : nullptr;
        pool["reason"] = p.reason;
        if (p.pgbouncer) {
            pool["pgbouncer"] = {{"default_pool_size", p.pgbouncer->default_pool_size},
                                 {"max_client_conn", p.pgbouncer->max_client_conn}};
        }
        out["pool"] = std::move(pool);
        nlohmann::json settings = nlohmann::json::array();
        for (const auto& s : last_plan_->settings.settings) {
            settings.push_back({{"name", s.name},
                                {"value", s.value},
                                {"needs_restart", s.needs_restart},
                                {"formula", s.formula},
                                {"source", s.source}});
        }
        out["postgres_settings"] = std::move(settings);
        out["warnings"] = last_plan_->settings.warnings;
    }
    if (actuator_) {
        const auto st = actuator_->status();
        out["actuator"] = {{"connected", st.connected},
                           {"consecutive_failures", st.consecutive_failures},
                           {"last_error", st.last_error},
                           {"rolled_back", st.rolled_back_at.has_value()}};
    }
    return out;
}

void DatabaseTuner::rollback(std::function<void(nlohmann::json, int)> done) {
    if (!actuator_) {
        done({{"error", "no PostgreSQL connection configured (database.admin_url_file)"}}, 409);
        return;
    }
    actuator_->rollback([done = std::move(done)](const postgres::PostgresReport& report) {
        nlohmann::json decisions = nlohmann::json::array();
        for (const auto& d : report.decisions) decisions.push_back(decision_json(d));
        nlohmann::json body = {
            {"action", report.action}, {"decisions", decisions}, {"notes", report.notes}};
        if (report.error) body["error"] = report.error->to_string();
        const bool failed =
            std::any_of(report.decisions.begin(), report.decisions.end(),
                        [](const Decision& d) { return d.outcome == Outcome::failed; });
        done(std::move(body), report.ok() && !failed ? 200 : report.retry_later ? 503 : 502);
    });
}

void DatabaseTuner::reload(const Config& config) {
    {
        std::lock_guard lock(mutex_);
        config_ = config;
    }
    read_database_url();
    if (actuator_) actuator_->reconfigure(postgres::actuator_options(config, config.state.dir));
}

}  // namespace tuner
