// Decide, then act: a worker's life as one enum, and plan_reconcile(), the pure function that
// says what the pool must do to reach its target (spawn, drain, kill, replace one worker).
// WorkerPool gathers the facts, asks plan_reconcile, and carries the answer out; the rules live
// here, where unit tests drive them without processes or sockets.
#pragma once

#include <deque>
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
// A process that still holds its memory (everything until it is reaped).
bool holds_memory(Lifecycle phase);
// In the dispatcher's set (new requests may reach it).
bool takes_requests(Lifecycle phase);
// We asked it to exit: its exit is not a crash.
bool exit_expected(Lifecycle phase);

// A place in the pool that one worker fills at a time. A crashed worker's replacement takes its
// slot, and with it the slot's crash history: the backoff is per slot, and reset by health.
struct SlotHistory {
    std::deque<Clock::time_point> deaths;  // unexpected exits within kRapidDeathWindow
    unsigned failed_starts = 0;            // deaths in a row of workers that never served
    unsigned restarts = 0;                 // replacements after a crash, ever
};

// Three deaths of one slot within this window make a crash loop even when each worker served
// (an app that dies on every request must not respawn in a tight loop).
inline constexpr auto kRapidDeathWindow = std::chrono::seconds(10);
inline constexpr unsigned kRapidDeaths = 3;

// How long the replacement after the `failures`-th failure in a row waits: 1 s, doubling, at
// most 30 s.
Duration crash_backoff(unsigned failures);

struct CrashVerdict {
    Duration backoff{0};
    std::string why;  // "served 120 requests: replaced at once", ...
};

// A worker of this slot died unexpectedly. One that was ready and served is replaced at once
// (a kill -9, an OOM kill of a healthy worker); one that died before serving, or the third death
// of the slot within kRapidDeathWindow, backs off and doubles. Updates the slot's history.
CrashVerdict judge_crash(SlotHistory& slot, bool served, Clock::time_point now);

struct ReconcileInput {
    struct Worker {
        unsigned id = 0;
        Lifecycle phase = Lifecycle::starting;
        unsigned threads = 1;
        Clock::time_point spawned_at{};
        unsigned inflight = 0;
        unsigned generation = 0;  // the restart generation it was started in
    };
    std::vector<Worker> workers;
    unsigned target = 0;
    unsigned threads = 1;  // the thread count workers should have
    // The most worker processes memory holds at once, counting every one still alive (starting,
    // serving, retiring, draining, stopping); unset = no limit applies. At it, a replacement
    // starts only once the old worker is gone. An absolute bound, so a figure computed before
    // this cycle's spawns cannot let more through.
    std::optional<unsigned> max_processes;
    Clock::time_point now{};
    // Vacant slots left by crashes, each with the time its replacement may start; at most as many
    // as the pool is short of its target (the pool drops the others).
    std::vector<Clock::time_point> vacant_slots;
    // A rolling restart is under way: ready workers of an older generation are replaced, one at
    // a time, each replacement ready before the old worker drains (at the memory ceiling the old
    // one drains first, as recycling does).
    std::optional<unsigned> restart_generation;
};

struct ReconcilePlan {
    unsigned spawn = 0;
    std::vector<unsigned> drain;  // stop dispatching, finish in-flight, then stop
    std::vector<unsigned> kill;   // starting workers no longer needed: SIGKILL
    // Workers to replace: with `replacement_first` each retires (serves until its replacement,
    // counted in `spawn`, is ready); otherwise (memory ceiling) it is in `drain` already.
    struct Replace {
        unsigned id = 0;
        bool replacement_first = true;
        std::string reason;  // set when the replacement is for a new thread count or a restart
    };
    std::vector<Replace> replace;
    // A slot's crash backoff holds its replacement back: reconcile again after this long.
    std::optional<Duration> retry_after;

    [[nodiscard]] bool empty() const {
        return spawn == 0 && drain.empty() && kill.empty() && replace.empty() && !retry_after;
    }
};

// The whole policy of the pool's shape: scale up (a slot in crash backoff waits), scale down
// (starting workers first, then idle ready ones, then the youngest busy ones), let retiring
// workers go once nothing is starting, and replace workers so capacity never dips: a new thread
// count for as many at once as memory has room for (a shape change takes one start-up, not one
// per process), a recycle or a restart one at a time; at the memory ceiling one at a time, the
// old one draining first.
ReconcilePlan plan_reconcile(const ReconcileInput& input);

}  // namespace tuner::server
