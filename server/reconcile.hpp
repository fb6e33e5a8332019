// Decide, then act: a worker's life as one enum, and plan_reconcile(), the pure function that
// says what the pool must do to reach its target (spawn, drain, kill, replace one worker).
// WorkerPool gathers the facts, asks plan_reconcile, and carries the answer out; the rules live
// here, where unit tests drive them without processes or sockets.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model/snapshot.hpp"
#include "model/units.hpp"

namespace tuner::server {

// The life of one worker process, in order. Only starting, ready, recycle_due and retiring
// count towards the target; recycle_due and retiring still take requests.
enum class Lifecycle {
    starting,      // spawned; waiting for its socket to accept (or health_path to answer 2xx)
    ready,         // taking requests
    recycle_due,   // taking requests; to be replaced (max_requests, max_worker_rss, threads)
    retiring,      // taking requests until its replacement is ready
    draining,      // no new requests; those in flight finish (drain_timeout)
    stopping,      // asked to exit (SIGTERM, SIGKILL after kill_timeout); an expected exit
    start_failed,  // killed for not becoming ready within startup_timeout: exits as a crash
    exited,        // reaped
};

const char* to_string(Lifecycle phase);
// What /workers shows.
WorkerState public_state(Lifecycle phase);
// Counts towards the pool's target (a live worker that is not on its way out).
bool counts_towards_target(Lifecycle phase);
// In the dispatcher's set (new requests may reach it).
bool takes_requests(Lifecycle phase);
// We asked it to exit: its exit is not a crash.
bool exit_expected(Lifecycle phase);

struct ReconcileInput {
    struct Worker {
        unsigned id = 0;
        Lifecycle phase = Lifecycle::starting;
        unsigned threads = 1;
        Clock::time_point spawned_at{};
        unsigned inflight = 0;
    };
    std::vector<Worker> workers;
    unsigned target = 0;
    unsigned threads = 1;            // the thread count workers should have
    bool at_memory_ceiling = false;  // a replacement may start only once the old one is gone
    Clock::time_point now{};
    Clock::time_point next_spawn_allowed{};  // crash backoff
};

struct ReconcilePlan {
    unsigned spawn = 0;
    std::vector<unsigned> drain;  // stop dispatching, finish in-flight, then stop
    std::vector<unsigned> kill;   // starting workers no longer needed: SIGKILL
    // One worker to replace: with `replacement_first` it retires (serves until the replacement,
    // counted in `spawn`, is ready); otherwise (memory ceiling) it is in `drain` already.
    struct Replace {
        unsigned id = 0;
        bool replacement_first = true;
        std::string threads_reason;  // set when the replacement is for a new thread count
    };
    std::optional<Replace> replace;
    // Spawning is held back by the crash backoff: reconcile again after this long.
    std::optional<Duration> retry_after;

    [[nodiscard]] bool empty() const {
        return spawn == 0 && drain.empty() && kill.empty() && !replace && !retry_after;
    }
};

// The whole policy of the pool's shape: scale up (held back by the crash backoff), scale down
// (starting workers first, then idle ready ones, then the youngest busy ones), let retiring
// workers go once nothing is starting, and replace one worker at a time (recycling or a new
// thread count) so capacity never dips, except at the memory ceiling, where the old one drains
// first.
ReconcilePlan plan_reconcile(const ReconcileInput& input);

}  // namespace tuner::server
