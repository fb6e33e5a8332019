// The decision log's rows: how runs, decisions, outcomes and samples are written to and read
// from the SQLite tables of decision_log_schema, each operation one function on a connection.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/decision.hpp"
#include "model/result.hpp"
#include "tuner/decision_log/log.hpp"
#include "tuner/decision_log/sqlite.hpp"

namespace tuner::decision_log::store {

struct RunRow {
    RunInfo info;
    std::string config_text;
};

// Runs are immutable: writing one twice keeps the first.
Status insert_run(sqlite3* db, const RunRow& run);
// Inserts, or for an id already there updates outcome and error (re-writing after recovery),
// except that a pending copy never overwrites an outcome: it is the older of the two.
Status upsert_decision(sqlite3* db, std::int64_t run_id, const Decision& decision);
Status update_outcome(sqlite3* db, std::uint64_t id, Outcome outcome, const std::string& error);
Status insert_sample(sqlite3* db, std::int64_t run_id, const Sample& sample);

// Deletes decisions and samples older than `cutoff`, then the runs started before it that no
// longer have any (never `keep_run_id`, the current run).
Status delete_older_than(sqlite3* db, WallClock::time_point cutoff, std::int64_t keep_run_id);

// Newest first (time, then id), at most `limit`.
Result<std::vector<Decision>> select_decisions(sqlite3* db,
                                               std::optional<WallClock::time_point> since,
                                               std::size_t limit);

// The largest id in `runs` or `decisions`, 0 when empty.
Result<std::int64_t> max_run_id(sqlite3* db);
Result<std::int64_t> max_decision_id(sqlite3* db);

}  // namespace tuner::decision_log::store
