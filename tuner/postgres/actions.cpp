// recommend, apply and rollback of PostgreSQL settings (see actions.hpp).
#include "tuner/postgres/actions.hpp"

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "model/knobs.hpp"
#include "tuner/postgres/state.hpp"
#include "tuner/postgres/values.hpp"

namespace tuner::postgres {
namespace {

constexpr const char* kPendingRestart =
    "pending restart: PostgreSQL uses it from its next restart (tunerd never restarts it)";

Decision postgres_decision(const std::string& name, KnobValue old_value, std::string new_value,
                           std::string rule, std::string reason, std::string inputs_json,
                           Outcome outcome) {
    Decision d = make_decision(knob::postgres_setting, WallClock::now(), std::move(old_value),
                               Text{std::move(new_value)},
                               {rule, std::move(reason), std::move(inputs_json)}, name);
    d.outcome = outcome;
    return d;
}

std::string rule_for(const policies::PostgresSetting& s) {
    return s.name == "max_connections" ? "db_pool_connections" : "pgtune_web";
}

std::string why(const policies::PostgresSetting& s) {
    std::string reason = s.formula + " (" + s.source + ")";
    if (s.needs_restart) reason += "; needs a restart";
    return reason;
}

KnobValue text_or_none(const std::optional<std::string>& v) {
    return v ? KnobValue{Text{*v}} : KnobValue{};
}

Decision failed_decision(const std::string& action, const policies::PostgresSetting& s,
                         const std::optional<std::string>& configured, const std::string& inputs,
                         const Error& error) {
    Decision d = postgres_decision(s.name, text_or_none(configured), s.value, rule_for(s),
                                   action + " failed: " + error.to_string() + "; " + why(s), inputs,
                                   Outcome::failed);
    d.error = error.to_string();
    return d;
}

// The one place a setting name enters SQL. ALTER SYSTEM takes no parameters: the name is
// checked (is_setting_name), never trusted, and the value goes in as a literal libpq quoted.
// No value: RESET.
Result<std::string> alter_system_sql(Session& session, const std::string& name,
                                     const std::optional<std::string>& value) {
    if (!is_setting_name(name)) {
        return make_error("ALTER SYSTEM",
                          "refused: " +
                              nlohmann::json(name).dump(-1, ' ', false,
                                                        nlohmann::json::error_handler_t::replace) +
                              " is not a PostgreSQL setting name");
    }
    if (!value) return "ALTER SYSTEM RESET " + name;
    auto literal = session.quote_literal(*value);
    if (!literal) return literal.error();
    return "ALTER SYSTEM SET " + name + " = " + *literal;
}

bool managed_by_tunerd(const std::string& name) {
    const auto& names = policies::postgres_setting_names();
    return std::find(names.begin(), names.end(), name) != names.end();
}

std::vector<std::string> names_of(const policies::PostgresSettingsResult& settings) {
    std::vector<std::string> names;
    for (const auto& s : settings.settings) names.push_back(s.name);
    return names;
}

// Where each changed setting ended after pg_reload_conf(): running with the wanted value, or
// flagged pending_restart, or neither by the deadline.
struct Settled {
    bool live = false;
    bool pending_restart = false;
};

// When this backend last loaded the configuration files (seconds since the epoch).
std::optional<double> conf_load_time(Session& session) {
    auto rows = session.query("SELECT extract(epoch FROM pg_conf_load_time())::float8");
    if (!rows || rows->empty() || !(*rows)[0][0]) return std::nullopt;
    return std::strtod((*rows)[0][0]->c_str(), nullptr);
}

// Reloads the configuration, then polls pg_settings until every setting in `wanted` is live or
// pending a restart. Our own backend applies the reload asynchronously (the postmaster signals
// it), so its pg_settings count only once pg_conf_load_time() moved past the reload.
std::map<std::string, Settled> reload_and_settle(Session& session,
                                                 const std::map<std::string, std::string>& wanted,
                                                 const ActionOptions& options,
                                                 PostgresReport& report) {
    std::map<std::string, Settled> result;
    if (wanted.empty()) return result;
    const auto loaded_before = conf_load_time(session);
    if (auto reloaded = session.exec("SELECT pg_reload_conf()"); !reloaded) {
        report.notes.push_back("pg_reload_conf() failed: " + reloaded.error().to_string());
        return result;
    }
    std::vector<std::string> names;
    for (const auto& [name, value] : wanted) names.push_back(name);
    const auto deadline = Clock::now() + options.settle_timeout;
    while (true) {
        const auto loaded_now = conf_load_time(session);
        const bool reloaded = loaded_before && loaded_now && *loaded_now > *loaded_before;
        bool all = false;
        if (reloaded) {
            auto live = read_live_state(session, names);
            if (live) {
                all = true;
                for (const auto& [name, value] : wanted) {
                    Settled st;
                    if (const auto* s = live->find(name)) {
                        st.live = same_pg_value(s->setting, value, s->unit);
                        st.pending_restart = s->pending_restart;
                    }
                    all = all && (st.live || st.pending_restart);
                    result[name] = st;
                }
                report.live = std::move(*live);
            }
        }
        if (all || Clock::now() >= deadline || !session.healthy()) return result;
        std::this_thread::sleep_for(options.poll_interval);
    }
}

// An administrator changed the setting since tunerd applied it: it is neither what tunerd last
// set nor the original (a rollback restores the original, so it is never mistaken for one).
bool changed_by_administrator(const SettingRecord& record, const std::string& configured,
                              const std::string& unit) {
    return record.last_applied && !same_pg_value(configured, *record.last_applied, unit) &&
           !same_pg_value(configured, record.original, unit);
}

std::string quote_conf(const std::string& value) {
    std::string out = "'";
    for (char c : value) {
        if (c == '\'') out += '\'';
        out += c;
    }
    return out + "'";
}

std::string format_time(WallClock::time_point t) {
    const std::time_t tt = WallClock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace

PostgresReport failed_report(std::string action, const policies::PostgresSettingsResult& settings,
                             const Error& error, bool retry_later) {
    PostgresReport report;
    report.action = std::move(action);
    report.error = error;
    report.retry_later = retry_later;
    for (const auto& s : settings.settings) {
        report.decisions.push_back(
            failed_decision(report.action, s, std::nullopt, settings.inputs_json, error));
    }
    return report;
}

PostgresReport recommend_settings(const policies::PostgresSettingsResult& settings,
                                  const std::optional<LiveState>& live,
                                  const ActionOptions& options) {
    PostgresReport report;
    report.action = "recommend";
    report.live = live;
    const std::string path = postgres_snippet_path(options.state_dir);

    std::string snippet =
        "# PostgreSQL settings recommended by tunerd (database.postgres = \"recommend\"), " +
        format_time(WallClock::now()) +
        ".\n# PGTune's web profile on PostgreSQL's memory, max_connections sized for the app's "
        "pools.\n# Use: include_if_exists = '" +
        path +
        "' at the end of postgresql.conf,\n# or ALTER SYSTEM SET each line. Lines marked "
        "(restart) take effect when PostgreSQL restarts.\n# inputs: " +
        settings.inputs_json + "\n";
    for (const auto& w : settings.warnings) snippet += "# WARNING: " + w + "\n";
    for (const auto& s : settings.settings) {
        snippet += "\n# " + s.formula + (s.needs_restart ? " (restart)" : "") + "\n";
        snippet += s.name + " = " + quote_conf(s.value) + "\n";
    }
    const auto written = write_file_atomically(path, snippet);
    if (!written) return failed_report("recommend", settings, written.error(), false);

    for (const auto& s : settings.settings) {
        std::optional<std::string> configured;
        std::string unit;
        if (live) {
            configured = live->configured(s.name);
            if (const auto* ls = live->find(s.name)) unit = ls->unit;
        }
        const bool differs = !configured || differs_enough_to_change(*configured, s.value, unit);
        std::string reason = why(s) + "; written to " + path;
        if (!differs)
            reason = "configured " + *configured + " is within 5% of " + s.value + "; " + reason;
        report.decisions.push_back(postgres_decision(
            s.name, text_or_none(configured), s.value, rule_for(s), std::move(reason),
            settings.inputs_json, differs ? Outcome::dry_run : Outcome::unchanged));
    }
    report.notes = settings.warnings;
    if (!live) report.notes.push_back("current values unknown: PostgreSQL not read");
    return report;
}

PostgresReport apply_settings(Session& session, const policies::PostgresSettingsResult& settings,
                              const ActionOptions& options) {
    const std::string state_path = postgres_state_path(options.state_dir);
    auto lock = StateLock::acquire(options.state_dir);
    if (!lock) return failed_report("apply", settings, lock.error(), false);
    auto loaded = load_postgres_state(state_path);
    if (!loaded) return failed_report("apply", settings, loaded.error(), false);
    PostgresState state = std::move(*loaded);

    PostgresReport report;
    report.action = "apply";
    report.notes = settings.warnings;
    if (state.rolled_back_at && *state.rolled_back_at > options.config_loaded_at) {
        report.notes.push_back("rolled back at " + format_time(*state.rolled_back_at) +
                               "; not applied again until tunerd's config is reloaded or it "
                               "restarts");
        return report;
    }

    auto live = read_live_state(session, names_of(settings));
    if (!live) return failed_report("apply", settings, live.error(), !session.healthy());
    if (!live->auto_conf_known) {
        const Error e = make_error(session.where(),
                                   "cannot read pg_file_settings (" + live->auto_conf_error +
                                       "): tunerd needs it to record originals for a rollback; "
                                       "connect as a superuser or grant SELECT on pg_file_settings "
                                       "and EXECUTE on pg_show_all_file_settings()");
        return failed_report("apply", settings, e, false);
    }
    report.live = *live;

    // Decide, and record originals and intents before any change.
    struct Change {
        const policies::PostgresSetting* setting;
        std::string configured;
        std::optional<SettingRecord> before;  // the record as it was, to undo the intent
    };
    std::vector<Change> changes;
    for (const auto& s : settings.settings) {
        const auto* ls = live->find(s.name);
        if (!ls) {
            report.decisions.push_back(failed_decision(
                "apply", s, std::nullopt, settings.inputs_json,
                make_error(session.where(), "PostgreSQL " +
                                                std::to_string(live->server_version_num) +
                                                " has no setting " + s.name)));
            continue;
        }
        const std::string configured = live->configured(s.name).value_or(ls->display);
        const auto it = state.settings.find(s.name);
        if (it != state.settings.end() &&
            changed_by_administrator(it->second, configured, ls->unit)) {
            report.decisions.push_back(postgres_decision(
                s.name, Text{configured}, s.value, rule_for(s),
                "skipped: an administrator set " + s.name + " to " + configured +
                    " after tunerd applied " + *it->second.last_applied + " (original " +
                    it->second.original + "); tunerd backs off instead of fighting. " + why(s),
                settings.inputs_json, Outcome::overridden));
            continue;
        }
        if (!differs_enough_to_change(configured, s.value, ls->unit)) {
            std::string reason = "configured " + configured + " is within 5% of " + s.value;
            if (ls->pending_restart) reason += "; " + std::string(kPendingRestart);
            report.decisions.push_back(postgres_decision(s.name, Text{configured}, s.value,
                                                         rule_for(s), reason + "; " + why(s),
                                                         settings.inputs_json, Outcome::unchanged));
            continue;
        }
        Change change{&s, configured, std::nullopt};
        if (it != state.settings.end()) {
            change.before = it->second;
        } else {
            state.settings[s.name] = SettingRecord{configured, live->in_auto_conf(s.name), {}};
        }
        state.settings[s.name].last_applied = s.value;
        changes.push_back(std::move(change));
    }
    if (changes.empty()) return report;

    if (auto saved = save_postgres_state(state_path, state); !saved) {
        for (const auto& c : changes) {
            report.decisions.push_back(failed_decision("apply", *c.setting, c.configured,
                                                       settings.inputs_json, saved.error()));
        }
        report.error = saved.error();
        return report;
    }

    std::map<std::string, std::string> altered;
    std::vector<const Change*> done;
    for (const auto& c : changes) {
        const auto& s = *c.setting;
        Status status = session.healthy()
                            ? Status{}
                            : Status{make_error(session.where(), "connection to PostgreSQL lost")};
        if (status) {
            auto sql = alter_system_sql(session, s.name, s.value);
            status = sql ? session.exec(*sql) : Status{sql.error()};
        }
        if (!status) {
            report.decisions.push_back(
                failed_decision("apply", s, c.configured, settings.inputs_json, status.error()));
            if (c.before)
                state.settings[s.name] = *c.before;
            else
                state.settings.erase(s.name);
            report.retry_later = report.retry_later || !session.healthy();
            continue;
        }
        altered[s.name] = s.value;
        done.push_back(&c);
    }

    std::map<std::string, Settled> settled = reload_and_settle(session, altered, options, report);
    for (const Change* c : done) {
        const auto& s = *c->setting;
        const Settled st = settled[s.name];
        std::string reason = "ALTER SYSTEM SET " + s.name + " = '" + s.value + "'; ";
        Outcome outcome = Outcome::applied;
        std::string error;
        if (st.live) {
            reason += "applied: live now";
        } else if (st.pending_restart) {
            reason += kPendingRestart;
        } else {
            outcome = Outcome::failed;
            error = "not live after pg_reload_conf() within " +
                    format_duration(options.settle_timeout) +
                    " and not pending a restart (see PostgreSQL's log and pg_file_settings.error)";
            reason += "failed: " + error;
        }
        Decision d = postgres_decision(s.name, Text{c->configured}, s.value, rule_for(s),
                                       reason + "; " + why(s), settings.inputs_json, outcome);
        d.error = error;
        report.decisions.push_back(std::move(d));
    }

    if (auto saved = save_postgres_state(state_path, state); !saved) {
        report.notes.push_back("could not record the outcome: " + saved.error().to_string());
    }
    return report;
}

PostgresReport rollback_settings(Session& session, const ActionOptions& options) {
    PostgresReport report;
    report.action = "rollback";
    const std::string state_path = postgres_state_path(options.state_dir);
    auto lock = StateLock::acquire(options.state_dir);
    if (!lock) {
        report.error = lock.error();
        return report;
    }
    auto loaded = load_postgres_state(state_path);
    if (!loaded) {
        report.error = loaded.error();
        return report;
    }
    PostgresState state = std::move(*loaded);

    std::vector<std::string> names;
    for (const auto& [name, record] : state.settings) names.push_back(name);
    auto live = read_live_state(session, names);
    if (!live) {
        report.error = live.error();
        report.retry_later = !session.healthy();
        return report;
    }
    report.live = *live;
    if (state.settings.empty())
        report.notes.push_back("nothing to roll back: tunerd changed nothing");

    std::map<std::string, std::string> restored;
    std::map<std::string, std::string> configured_before;
    for (auto it = state.settings.begin(); it != state.settings.end();) {
        const std::string& name = it->first;
        const SettingRecord& record = it->second;
        const auto* ls = live->find(name);
        const std::string unit = ls ? ls->unit : "";
        const std::string configured = live->configured(name).value_or("");
        const std::string inputs = "{}";
        if (!managed_by_tunerd(name)) {
            // Only what tunerd itself changes is restored: a state file that names another
            // setting (archive_command, say) was not written by tunerd; it is left untouched.
            Decision d = postgres_decision(
                name, Text{configured}, record.original, "rollback",
                "refused: " + name +
                    " is not a setting tunerd manages; left as is (compare postgresql.auto.conf "
                    "by hand)",
                inputs, Outcome::failed);
            d.error = "not a setting tunerd manages";
            report.decisions.push_back(std::move(d));
            ++it;
            continue;
        }
        if (changed_by_administrator(record, configured, unit)) {
            report.decisions.push_back(postgres_decision(
                name, Text{configured}, record.original, "rollback",
                "skipped: an administrator set " + name + " to " + configured +
                    " after tunerd applied " + *record.last_applied + "; left as is",
                inputs, Outcome::overridden));
            it = state.settings.erase(it);
            continue;
        }
        auto sql = alter_system_sql(
            session, name,
            record.original_in_auto_conf ? std::optional(record.original) : std::nullopt);
        if (!sql) {
            report.decisions.push_back(
                postgres_decision(name, Text{configured}, record.original, "rollback",
                                  "failed: " + sql.error().to_string(), inputs, Outcome::failed));
            report.decisions.back().error = sql.error().to_string();
            ++it;
            continue;
        }
        const std::string statement = *sql;
        if (auto status = session.exec(statement); !status) {
            Decision d = postgres_decision(name, Text{configured}, record.original, "rollback",
                                           statement + " failed: " + status.error().to_string(),
                                           inputs, Outcome::failed);
            d.error = status.error().to_string();
            report.decisions.push_back(std::move(d));
            report.retry_later = report.retry_later || !session.healthy();
            ++it;
            continue;
        }
        restored[name] = record.original;
        configured_before[name] = configured;
        it = state.settings.erase(it);
    }

    std::map<std::string, Settled> settled = reload_and_settle(session, restored, options, report);
    for (const auto& [name, original] : restored) {
        const Settled st = settled[name];
        const bool was_in_auto_conf =
            report.live && report.live->in_auto_conf(name);  // after the rollback
        std::string reason = was_in_auto_conf ? "restored the original from postgresql.auto.conf"
                                              : "ALTER SYSTEM RESET: the original was not set in "
                                                "postgresql.auto.conf";
        if (st.pending_restart) reason += "; " + std::string(kPendingRestart);
        reason += "; tunerd does not apply again until its config is reloaded or it restarts";
        report.decisions.push_back(postgres_decision(name, Text{configured_before[name]}, original,
                                                     "rollback", reason, "{}", Outcome::applied));
    }

    state.rolled_back_at = WallClock::now();
    if (auto saved = save_postgres_state(state_path, state); !saved) report.error = saved.error();
    return report;
}

}  // namespace tuner::postgres
