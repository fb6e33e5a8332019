// The settings the PostgreSQL suites apply: PostgreSQL with 1GB on SSD, 2 cores and the 14
// connections of 3 workers × (1 + 2) + 3 + 2 — shared_buffers 256MB (pending restart) and
// work_mem (1GB − 256MB) / (14 × 3) / 2 = 9362kB (live after a reload).
#pragma once

#include "policies/postgres_settings.hpp"

namespace tuner::postgres::testing {

inline policies::PostgresSettingsResult one_gigabyte_settings() {
    policies::PostgresSettingsInputs in;
    in.memory_bytes = GiB;
    in.effective_cores = 2;
    in.max_connections = 14;
    return policies::postgres_settings(in);
}

}  // namespace tuner::postgres::testing
