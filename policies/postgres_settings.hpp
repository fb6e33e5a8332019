// PostgreSQL memory and planner settings for a web workload, computed on PostgreSQL's share of the
// memory this box really has, with max_connections sized by the pool policy (db_pool.hpp).
// Source: PGTune's "web" profile (github.com/le0pard/pgtune, configurationSlice.js);
// docs/policies.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.hpp"
#include "model/decision.hpp"
#include "model/snapshot.hpp"

namespace tuner::policies {

struct PostgresSettingsInputs {
    std::uint64_t memory_bytes = 0;  // PostgreSQL's memory ("RAM" in PGTune's formulas)
    std::string memory_source;       // "25% of 1GB cgroup limit", "database.memory"
    unsigned effective_cores = 1;
    Storage storage = Storage::ssd;
    unsigned max_connections = 100;       // what the pool policy needs (DbPoolResult)
    std::string max_connections_formula;  // how the pool policy got it, for the setting's formula
};

// One setting as PostgreSQL reads it, with how it was computed and where the formula comes from.
struct PostgresSetting {
    std::string name;    // "shared_buffers"
    std::string value;   // PostgreSQL's text: "256MB", "7864kB", "0.9", "200"
    KnobValue typed;     // ByteSize for memory, Count for integers, Text for fractions
    double numeric = 0;  // bytes for memory settings, else the plain number (for the 5 % rule)
    bool is_memory = false;
    bool needs_restart = false;  // postmaster context: takes effect only when PostgreSQL restarts
    std::string formula;         // "RAM/4 = 1GB/4"
    std::string source;          // "PGTune web", "PostgreSQL docs: wal_buffers", ...
};

struct PostgresSettingsResult {
    std::vector<PostgresSetting> settings;
    std::vector<std::string> warnings;  // e.g. below 256MB, PGTune's formulas are not optimal
    std::string inputs_json;            // every input number, as a JSON object

    [[nodiscard]] const PostgresSetting* find(std::string_view name) const;
};

// Pure: PGTune's web profile on inputs.memory_bytes, except max_connections (inputs).
PostgresSettingsResult postgres_settings(const PostgresSettingsInputs& inputs);

// PostgreSQL's memory: memory_share × the box's memory (the cgroup limit, else host MemTotal) when
// it runs on this box, database.memory when it is remote.
std::uint64_t postgres_memory_bytes(const DatabaseConfig& db, std::uint64_t box_memory_bytes);

// The inputs the daemon and `tunerctl recommend` use, from a Snapshot, the config and the
// max_connections the pool policy wants (DbPoolResult::wanted_max_connections).
PostgresSettingsInputs postgres_settings_inputs(const Snapshot& snapshot, const Config& config,
                                                unsigned max_connections,
                                                std::string max_connections_formula = "");

// A kB count as PostgreSQL and PGTune print it: whole GB, else whole MB, else kB
// (262144 -> "256MB", 7864 -> "7864kB").
std::string format_pg_memory_kb(std::uint64_t kilobytes);

// The names of every setting postgres_settings() may produce, in its order.
const std::vector<std::string>& postgres_setting_names();

}  // namespace tuner::policies
