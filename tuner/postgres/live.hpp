// What a running PostgreSQL says about its settings: pg_settings (value, unit, source, context,
// pending_restart) and what postgresql.auto.conf holds (pg_file_settings), read through a Session.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/result.hpp"
#include "model/units.hpp"
#include "policies/db_pool.hpp"
#include "tuner/postgres/session.hpp"

namespace tuner::postgres {

struct LiveSetting {
    std::string name;
    std::string setting;  // pg_settings.setting, in `unit` ("16384" with unit "8kB")
    std::string unit;     // pg_settings.unit, "" when unitless
    std::string display;  // as SHOW prints it ("128MB")
    std::string source;   // "default", "configuration file", ...
    std::string context;  // "postmaster": changes need a restart
    bool pending_restart = false;
};

struct LiveState {
    WallClock::time_point read_at{};
    int server_version_num = 0;
    std::map<std::string, LiveSetting> settings;
    // postgresql.auto.conf as PostgreSQL reads it (pg_file_settings; superuser or granted).
    bool auto_conf_known = false;
    std::string auto_conf_error;  // why it is unknown
    std::map<std::string, std::string> auto_conf;

    [[nodiscard]] const LiveSetting* find(std::string_view name) const;
    // What is configured now: the postgresql.auto.conf value if set there, else the running one.
    // After ALTER SYSTEM of a restart-only setting the two differ until PostgreSQL restarts.
    [[nodiscard]] std::optional<std::string> configured(std::string_view name) const;
    [[nodiscard]] bool in_auto_conf(std::string_view name) const;
    // The numbers the pool policy needs; unknown ones keep PostgreSQL's defaults.
    [[nodiscard]] policies::PostgresServerFacts facts() const;
};

// Settings tunerd reads besides the ones it computes.
const std::vector<std::string>& server_fact_names();

// Reads pg_settings for `names` plus server_fact_names(), and postgresql.auto.conf. A missing
// pg_file_settings privilege is not an error here (auto_conf_known = false).
Result<LiveState> read_live_state(Session& session, const std::vector<std::string>& names);

}  // namespace tuner::postgres
