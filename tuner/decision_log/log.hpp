// The decision log: every Decision (and a Sample every 10 s) goes to SQLite (state_dir/tunerd.db,
// WAL) from one writer thread fed by a bounded queue, so a failing database never blocks the
// control loop; the recent decisions stay in memory and are written once the database recovers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/decision.hpp"
#include "model/result.hpp"
#include "model/units.hpp"

namespace tuner {

// What the control loop records every 10 s: the pool, the traffic, memory, CPU and pressure.
struct Sample {
    WallClock::time_point time{};  // the epoch = now, from the log's clock
    unsigned workers_target = 0;
    unsigned workers_ready = 0;
    unsigned threads = 0;
    double rps = 0;
    double p95_ms = 0;
    double queue_wait_p95_ms = 0;
    std::uint64_t memory_usage_bytes = 0;
    std::uint64_t working_set_bytes = 0;
    std::uint64_t memory_limit_bytes = 0;
    double cpu_utilisation = 0;  // of the quota (or the effective cores), 0..1+
    double psi_cpu_some_avg10 = 0;
    double psi_memory_some_avg10 = 0;
};

struct DecisionLogStats {
    std::uint64_t errors_total = 0;  // failed opens and writes (each retry that fails counts)
    std::uint64_t written_total =
        0;  // queue entries committed (runs, decisions, outcomes, samples)
    std::uint64_t dropped_total = 0;  // entries dropped from a full queue (samples go first)
    std::uint64_t queued = 0;         // entries waiting to be written, including the batch in hand
    bool healthy = true;              // false from a failure until the next successful write
    std::string last_error;           // "<file>: <what> (SQLITE_FULL, errno 28: ...) while ..."
    WallClock::time_point last_error_time{};
};

struct RunInfo {
    std::int64_t run_id = 0;  // 0 = start_run() not called yet
    WallClock::time_point started{};
    std::string version;
    std::string config_hash;
};

class DecisionLog {
public:
    struct Options {
        std::string path;  // the SQLite file; "" = memory only (nothing is written)
        std::size_t queue_capacity = 4096;
        std::size_t memory_keep = 1000;  // decisions kept for recent() and for re-writing
        Duration retention = std::chrono::hours(24 * 30);
        Duration retry_interval = std::chrono::seconds(5);
        Duration busy_timeout = std::chrono::milliseconds(100);  // the writer must not stall
        Duration drain_timeout = std::chrono::seconds(2);        // the destructor's bound
        std::function<WallClock::time_point()> now = [] { return WallClock::now(); };
    };

    // Opens (and migrates) the database, then starts the writer thread. Never throws on
    // database trouble: a failure shows in stats() and is retried every retry_interval.
    explicit DecisionLog(Options options);
    // Writes what it can within drain_timeout, then stops the writer thread.
    ~DecisionLog();
    DecisionLog(const DecisionLog&) = delete;
    DecisionLog& operator=(const DecisionLog&) = delete;

    // A new run (daemon start, or a reload the caller wants told apart); later records carry it.
    void start_run(std::string version, std::string config_hash, std::string config_text);
    RunInfo current_run() const;

    // Non-blocking: assigns the decision's id (also its time, if unset; rounded down to the
    // millisecond), keeps it in memory, queues the write and returns the id. Ids grow
    // monotonically and stay unique across restarts on the same file.
    std::uint64_t record(Decision decision);
    void record_outcome(std::uint64_t id, Outcome outcome, std::string error = {});
    void record_sample(const Sample& sample);

    // The last `limit` decisions from memory (at most memory_keep), newest first.
    std::vector<Decision> recent(std::size_t limit) const;
    // Decisions at or after `since`, newest first, at most `limit` (0 gives none): from the
    // database through a separate read connection when healthy (merged with what is still
    // queued), else from memory.
    Result<std::vector<Decision>> query(std::optional<WallClock::time_point> since,
                                        std::size_t limit) const;

    DecisionLogStats stats() const;
    // Waits until everything queued so far is written, or the timeout passes.
    void flush(Duration timeout);

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// Read-only access to a decision-log file without a daemon (tunerctl decisions --db FILE):
// decisions at or after `since`, newest first, at most `limit`.
Result<std::vector<Decision>> read_decisions(const std::string& path,
                                             std::optional<WallClock::time_point> since,
                                             std::size_t limit);

}  // namespace tuner
