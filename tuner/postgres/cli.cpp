// The database plan of a cycle, and the one-call functions behind `tunerctl rollback --postgres`
// and the database section of `tunerctl recommend` (see actuator.hpp).
#include <cstdio>
#include <sstream>

#include "tuner/postgres/actuator.hpp"
#include "tuner/postgres/values.hpp"

namespace tuner::postgres {
namespace {

// sysexits.h
constexpr int kExitUnavailable = 69;
constexpr int kExitConfig = 78;

struct Connected {
    std::optional<Session> session;
    std::optional<Error> error;
};

Connected connect_with(const ActuatorOptions& options) {
    Connected c;
    auto conninfo = read_conninfo_file(options.conninfo_file);
    if (!conninfo) {
        c.error = conninfo.error();
        return c;
    }
    auto session = Session::connect(*conninfo, options.connect_timeout,
                                    options.conninfo_key + " (" + options.conninfo_file + ")");
    if (!session) {
        c.error = session.error();
        return c;
    }
    c.session.emplace(std::move(*session));
    return c;
}

nlohmann::json optional_json(const std::optional<unsigned>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

std::string pad(std::string s, std::size_t width) {
    if (s.size() < width) s.resize(width, ' ');
    return s + " ";
}

}  // namespace

DatabasePlan plan_database(const Snapshot& snapshot, const Config& config,
                           const policies::SeedResult& seed,
                           const std::optional<policies::PostgresServerFacts>& server,
                           const std::optional<policies::DbPoolValues>& current) {
    DatabasePlan plan;
    const auto pool_inputs = policies::db_pool_inputs(snapshot, config, seed, server, current);
    plan.max_workers = pool_inputs.max_workers;
    plan.pool = policies::size_db_pool(pool_inputs);
    plan.settings = policies::postgres_settings(
        policies::postgres_settings_inputs(snapshot, config, plan.pool.wanted_max_connections,
                                           plan.pool.wanted_max_connections_formula));
    return plan;
}

PostgresReport rollback_postgres(const Config& config) {
    const ActuatorOptions options = actuator_options(config, config.state.dir);
    PostgresReport report;
    report.action = "rollback";
    if (config.database.admin_url_file.empty()) {
        report.error =
            make_error("database.admin_url_file",
                       "not set: a rollback needs a connection with ALTER SYSTEM rights");
        return report;
    }
    if (config.state.dir.empty()) {
        report.error = make_error("state.dir", "not resolved: the originals live in the state dir");
        return report;
    }
    auto connected = connect_with(options);
    if (!connected.session) {
        report.error = *connected.error;
        report.retry_later = true;
        return report;
    }
    ActionOptions action;
    action.state_dir = options.state_dir;
    action.settle_timeout = options.settle_timeout;
    action.poll_interval = options.poll_interval;
    return rollback_settings(*connected.session, action);
}

int run_rollback_cli(const Config& config, std::ostream& out, std::ostream& err,
                     const std::function<void(const PostgresReport&)>& on_report) {
    const PostgresReport report = rollback_postgres(config);
    if (on_report) on_report(report);
    bool failed = false;
    for (const auto& d : report.decisions) {
        out << d.knob << ": " << to_string(d.old_value) << " -> " << to_string(d.new_value) << " ("
            << to_string(d.outcome) << ") " << d.reason << "\n";
        failed = failed || d.outcome == Outcome::failed;
    }
    for (const auto& n : report.notes) out << n << "\n";
    if (report.error) {
        err << "tunerctl rollback --postgres: " << report.error->to_string() << "\n";
        if (report.retry_later) return kExitUnavailable;
        if (report.error->where == "database.admin_url_file" || report.error->where == "state.dir")
            return kExitConfig;
        return 1;
    }
    if (!failed && !report.decisions.empty())
        out << "PostgreSQL settings restored; tunerd will not apply them again until its config "
               "is reloaded or it restarts\n";
    return failed ? 1 : 0;
}

DatabaseRecommendation recommend_database(const Config& config, const Snapshot& snapshot) {
    const ActuatorOptions options = actuator_options(config, config.state.dir);
    std::optional<LiveState> live;
    std::optional<Error> unreachable;
    if (!options.conninfo_file.empty()) {
        auto connected = connect_with(options);
        if (connected.session) {
            auto read = read_live_state(*connected.session, policies::postgres_setting_names());
            if (read)
                live = std::move(*read);
            else
                unreachable = read.error();
        } else {
            unreachable = connected.error;
        }
    }
    const auto seed = policies::seed_formula(policies::seed_inputs(snapshot, config));
    const DatabasePlan plan =
        plan_database(snapshot, config, seed, live ? std::optional(live->facts()) : std::nullopt);
    const auto& pool = plan.pool;
    const auto& v = pool.values;

    DatabaseRecommendation r;
    nlohmann::json pool_json = {
        {"max_workers", plan.max_workers},
        {"pool_size", v.pool_size},
        {"max_overflow", v.max_overflow},
        {"pool_recycle_s", to_seconds(v.pool_recycle)},
        {"pool_timeout_s", to_seconds(v.pool_timeout)},
        {"connection_budget", pool.connection_budget},
        {"max_connections_live",
         live ? nlohmann::json(live->facts().max_connections) : nlohmann::json(nullptr)},
        {"wanted_max_connections", pool.wanted_max_connections},
        {"max_processes_by_db", optional_json(pool.max_processes_by_db)},
        {"pgbouncer", pool.pgbouncer
                          ? nlohmann::json{{"pool_mode", "transaction"},
                                           {"default_pool_size", pool.pgbouncer->default_pool_size},
                                           {"max_client_conn", pool.pgbouncer->max_client_conn}}
                          : nlohmann::json(nullptr)},
        {"env", pool.env},
        {"reason", pool.reason}};

    const auto inputs = nlohmann::json::parse(plan.settings.inputs_json, nullptr, false);
    nlohmann::json settings = nlohmann::json::array();
    std::ostringstream table;
    for (const auto& s : plan.settings.settings) {
        std::optional<std::string> current;
        std::string unit;
        bool pending = false;
        if (live) {
            current = live->configured(s.name);
            if (const auto* ls = live->find(s.name)) {
                unit = ls->unit;
                pending = ls->pending_restart;
            }
        }
        const bool differs = !current || differs_enough_to_change(*current, s.value, unit);
        settings.push_back(
            {{"name", s.name},
             {"recommended", s.value},
             {"current", current ? nlohmann::json(*current) : nlohmann::json(nullptr)},
             {"differs", differs},
             {"needs_restart", s.needs_restart},
             {"pending_restart", pending},
             {"formula", s.formula},
             {"source", s.source}});
        table << "    " << pad(s.name, 34) << pad(s.value, 12) << pad(current.value_or("?"), 12)
              << (differs && current ? "*" : " ") << (s.needs_restart ? " (restart)" : "") << "\n";
    }
    nlohmann::json postgres_json = {
        {"mode", to_string(config.database.postgres)},
        {"location", to_string(config.database.location)},
        {"memory_bytes", inputs.is_object() ? inputs.value("memory_bytes", 0ULL) : 0ULL},
        {"memory_source", inputs.is_object() ? inputs.value("memory_source", "") : ""},
        {"connection", options.conninfo_file.empty() ? nlohmann::json(nullptr)
                                                     : nlohmann::json(options.conninfo_key)},
        {"reachable", live.has_value()},
        {"error", unreachable ? nlohmann::json(unreachable->to_string()) : nlohmann::json(nullptr)},
        {"settings", settings},
        {"warnings", plan.settings.warnings}};
    r.json = {{"db_pool", pool_json}, {"postgres", postgres_json}};

    std::ostringstream text;
    text << "Database\n  pools per worker: pool_size " << v.pool_size << ", max_overflow "
         << v.max_overflow << ", pool_recycle " << format_duration(v.pool_recycle)
         << ", pool_timeout " << format_duration(v.pool_timeout) << " (" << plan.max_workers
         << " workers at most)\n  " << pool.reason << "\n";
    text << "  PostgreSQL (" << postgres_json["memory_source"].get<std::string>() << " = "
         << format_size_approx(postgres_json["memory_bytes"].get<std::uint64_t>()) << "; mode "
         << to_string(config.database.postgres) << "; current values ";
    if (live)
        text << "from " << options.conninfo_key;
    else if (unreachable)
        text << "unknown: " << unreachable->to_string();
    else
        text << "unknown: no database.admin_url_file or database.url_file";
    text << ")\n    " << pad("setting", 34) << pad("recommended", 12) << pad("current", 12) << "\n"
         << table.str();
    if (live) text << "    * more than 5% off: tunerd would change it in apply mode\n";
    for (const auto& w : plan.settings.warnings) text << "  WARNING: " << w << "\n";
    r.text = text.str();
    return r;
}

}  // namespace tuner::postgres
