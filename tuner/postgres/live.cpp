// Reading pg_settings and pg_file_settings (see live.hpp).
#include "tuner/postgres/live.hpp"

#include <cmath>

#include "tuner/postgres/values.hpp"

namespace tuner::postgres {
namespace {

std::string text_or_empty(const std::optional<std::string>& v) {
    return v.value_or("");
}

// A unit-carrying setting in milliseconds (0 when absent or unparsable).
Duration live_duration(const LiveState& live, std::string_view name) {
    const auto* s = live.find(name);
    if (!s) return Duration{0};
    const auto ms = parse_pg_value(s->setting, s->unit);
    if (!ms || *ms <= 0) return Duration{0};
    return Duration{static_cast<Duration::rep>(std::llround(*ms))};
}

unsigned live_count(const LiveState& live, std::string_view name, unsigned fallback) {
    const auto* s = live.find(name);
    if (!s) return fallback;
    const auto n = parse_pg_value(s->setting, s->unit);
    return n && *n >= 0 ? static_cast<unsigned>(*n) : fallback;
}

}  // namespace

const LiveSetting* LiveState::find(std::string_view name) const {
    const auto it = settings.find(std::string(name));
    return it == settings.end() ? nullptr : &it->second;
}

std::optional<std::string> LiveState::configured(std::string_view name) const {
    const auto it = auto_conf.find(std::string(name));
    if (it != auto_conf.end()) return it->second;
    if (const auto* s = find(name)) return s->display;
    return std::nullopt;
}

bool LiveState::in_auto_conf(std::string_view name) const {
    return auto_conf.count(std::string(name)) > 0;
}

policies::PostgresServerFacts LiveState::facts() const {
    policies::PostgresServerFacts f;
    f.max_connections = live_count(*this, "max_connections", f.max_connections);
    f.superuser_reserved_connections =
        live_count(*this, "superuser_reserved_connections", f.superuser_reserved_connections);
    f.idle_session_timeout = live_duration(*this, "idle_session_timeout");
    f.tcp_keepalives_idle = live_duration(*this, "tcp_keepalives_idle");
    return f;
}

const std::vector<std::string>& server_fact_names() {
    static const std::vector<std::string> names = {
        "max_connections", "superuser_reserved_connections", "idle_session_timeout",
        "tcp_keepalives_idle", "server_version_num"};
    return names;
}

Result<LiveState> read_live_state(Session& session, const std::vector<std::string>& names) {
    // The names are tunerd's own constants; passed as one text[] parameter all the same.
    std::string array = "{";
    bool first = true;
    auto add = [&](const std::string& n) {
        if (!first) array += ",";
        array += n;
        first = false;
    };
    for (const auto& n : names) add(n);
    for (const auto& n : server_fact_names()) add(n);
    array += "}";

    auto rows = session.query(
        "SELECT name, setting, COALESCE(unit, ''), current_setting(name), source, context, "
        "pending_restart FROM pg_settings WHERE name = ANY($1::text[])",
        {array});
    if (!rows) return rows.error();

    LiveState live;
    live.read_at = WallClock::now();
    for (const auto& row : *rows) {
        LiveSetting s;
        s.name = text_or_empty(row[0]);
        s.setting = text_or_empty(row[1]);
        s.unit = text_or_empty(row[2]);
        s.display = text_or_empty(row[3]);
        s.source = text_or_empty(row[4]);
        s.context = text_or_empty(row[5]);
        s.pending_restart = text_or_empty(row[6]) == "t";
        live.settings[s.name] = std::move(s);
    }
    if (const auto* v = live.find("server_version_num")) {
        live.server_version_num = static_cast<int>(parse_pg_value(v->setting, "").value_or(0));
    }

    // Later lines of the file win, as when PostgreSQL reads it.
    auto file_rows = session.query(
        "SELECT name, setting FROM pg_file_settings "
        "WHERE sourcefile LIKE '%/postgresql.auto.conf' ORDER BY seqno");
    if (file_rows) {
        live.auto_conf_known = true;
        for (const auto& row : *file_rows) {
            live.auto_conf[text_or_empty(row[0])] = text_or_empty(row[1]);
        }
    } else if (!session.healthy()) {
        return file_rows.error();
    } else {
        live.auto_conf_error = file_rows.error().what;
    }
    return live;
}

}  // namespace tuner::postgres
