// PostgreSQL setting values as text ("256MB", "16384" in 8kB pages, "60s") compared in base units,
// and the redaction that keeps connection strings and passwords out of every message.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tuner::postgres {

// A value in base units: bytes for memory settings, milliseconds for time settings, else the plain
// number. `text` is as PostgreSQL prints or accepts it ("256MB", "7864kB", "0.9", "60s"); a bare
// number is in `guc_unit`, pg_settings.unit ("8kB", "kB", "MB", "ms", "s", "min" or "").
// nullopt for non-numeric values (enums, booleans) and for units that do not fit the setting.
std::optional<double> parse_pg_value(std::string_view text, std::string_view guc_unit);

// The 5 % rule: a numeric setting is changed only when the configured value is more than 5 % off
// the wanted one; a textual one when the text differs (case-insensitively, as PostgreSQL's enums).
bool differs_enough_to_change(std::string_view configured, std::string_view wanted,
                              std::string_view guc_unit);

// The same setting value (within 1 %: PostgreSQL rounds to its unit, "7864kB" is 983 pages).
bool same_pg_value(std::string_view a, std::string_view b, std::string_view guc_unit);

// A PostgreSQL setting (GUC) name that may go into ALTER SYSTEM as it is: one or more
// '.'-separated parts (a custom setting is "extension.name"), each a letter or '_' followed by
// letters, digits and '_', at most 63 bytes (NAMEDATALEN - 1). ALTER SYSTEM takes no parameters,
// so a name is checked, never quoted: anything else ("work_mem; DROP ...", a quote, a space) is
// refused.
bool is_setting_name(std::string_view name);

// Removes what could be a credential from a message: `password=...` (quoted or not) and the
// userinfo of postgres:// and postgresql:// URIs. libpq's messages name hosts, never passwords;
// this is a second line of defence.
std::string redact_secrets(std::string_view text);

}  // namespace tuner::postgres
