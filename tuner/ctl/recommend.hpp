// `tunerctl recommend`: a one-shot dry run on this machine with no daemon: what tunerd would set
// (workers and threads, the memory ceiling, the database pools, PostgreSQL's settings beside
// their current values), each value with its reason. Never changes anything.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "model/config.hpp"
#include "model/snapshot.hpp"

namespace tuner::ctl {

struct Recommendation {
    // {"machine": {"cgroup", "cpu", "memory", "problems"}, "workers": {...}, "db_pool": {...},
    //  "postgres": {...}} (docs/api.md "tunerctl recommend").
    nlohmann::json json;
    std::string text;
};

// From one probe snapshot (tunerctl's own cgroup stands in for tunerd's) and the config, whose
// state.dir must be resolved (config::resolve_state_dir). Reads PostgreSQL's current settings
// when the config names a connection string file; writes nothing.
Recommendation recommend(const Snapshot& snapshot, const Config& config);

}  // namespace tuner::ctl
