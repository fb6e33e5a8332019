// The pair planner: the (processes × threads) shape. Threads share a process's memory, so for
// requests that mostly wait the pool carries its concurrency with the fewest processes that the
// CPU work needs (a CPython process uses about one core: its GIL), raising threads not only when
// memory caps processes; when the CPU is saturated and latency grows from contention, fewer
// threads. A shape measured to serve no more than the current one is not planned.
// Sources: Little's law per process (Little 1961); gunicorn's gthread worker ("threads"
// setting); Netflix concurrency-limits' gradient RTT_noload / RTT_actual for contention.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "policies/cpu_knee.hpp"

namespace tuner::policies {

// Requests that wait at least this share of their service time are worth a thread each.
inline constexpr double kThreadsWaitShare = 0.5;
// Service time this many times its uncontended value, with the CPU saturated, is contention.
inline constexpr double kContentionRatio = 1.5;
// A CPython process serves its threads one at a time on its GIL: beyond this share of a core
// per process, threads wait for each other (measured: 5 × 8 served 323 rps, 2 × 16 298 rps for
// 5 ms CPU + 50 ms wait requests at ~1.9 cores), so the CPU work asks for more processes.
inline constexpr double kProcessCpuShare = 0.6;
// A shape change that rolls every process over is worth it only when the current thread count
// needs this many times the processes of the planned one (or cannot carry the load at all).
inline constexpr double kReshapeProcessRatio = 1.5;

// Processes the CPU work asks for: ceil(cores wanted / kProcessCpuShare) for single-core
// processes, 1 for processes that run threads in parallel.
unsigned processes_for_cpu(double cores_wanted, bool multi_core_processes);

// Concurrency may exceed what the CPU can use by this factor before threads are taken back
// (a little excess keeps the CPU busy through the randomness of arrivals).
inline constexpr double kContentionSlack = 1.2;
// Measured throughput decides between two thread counts once both were measured under today's
// load, with a dead band so noise cannot flap the pool: raising to a measured shape needs this
// gain over the current one (the knee's 5 %) ...
inline constexpr double kThreadsRaiseGain = 0.05;
// ... and contention takes threads back only when the current shape serves at most this much
// more than the lower one did (the extra concurrency is not paying for itself).
inline constexpr double kThreadsKeepGain = 0.02;
// A shape that serves this share of what the CPU can serve at today's cost per request wastes no
// CPU on its concurrency: fewer threads would only move the waiting from a core to the queue
// (measured, demo app at 2 cores: 2 × 16 served 376 rps at 97 % CPU, 2 × 10 292 rps).
inline constexpr double kCpuCapacityShare = 0.9;
// At that capacity, concurrency comes down only beyond this many times what the CPU can use
// (a CPU-bound release at 16 threads: 13 ×), and to no less than that.
inline constexpr double kCapacitySlack = 2.0;

struct PairInputs {
    PoolShape current;
    unsigned threads_min = 1;  // workers.threads: the operator's start value
    unsigned threads_max = 1;  // workers.threads_max
    double slots_needed = 0;   // concurrency to carry at the target utilisation
    // The requests there now (in flight + waiting) at the target utilisation: a load step shows
    // here a cycle or more before the window's averages see it.
    double slots_present = 0;
    // Concurrency the pool may grow to this cycle (CPU knee, probing steps); unset = no limit.
    std::optional<double> slot_limit;
    std::function<unsigned(unsigned threads)> process_cap;  // memory ceiling, db cap, max
    std::string
        process_cap_text;  // why processes are capped: "memory ceiling 2 processes at 181MB p95"
    std::optional<double> cpu_useful_concurrency;
    // Requests per second the CPU can serve at today's CPU per request (cores / cost).
    std::optional<double> cpu_bound_rps;
    // The fewest processes that carry the load's CPU work (1 when the app's threads run in
    // parallel), and why: "1.9 cores wanted at ≤ 0.6 core per process".
    unsigned processes_for_cpu = 1;
    std::string processes_for_cpu_text;
    // A thread change that is only an improvement (not needed to carry the load: fewer
    // processes, more for the CPU, contention) may happen now; false right after the last one,
    // since each rolls every process over.
    bool optional_change_allowed = true;
    // A load step: the need is far above the pool (queue-driven); a shape change that carries it
    // is needed now, however recent the last one.
    bool urgent = false;
    // The queue is growing or draining: the need is a transient estimate, not worth an optional
    // change (processes follow it; the shape waits until it settles).
    bool need_in_transition = false;
    // The busiest process uses about a core: on its GIL, threads wait for each other.
    bool processes_saturated = false;
    double wait_share = 0;
    double cpu_utilisation = 0;
    double service_ratio = 1;  // S / S_uncontended
    // Throughput measured at a shape under today's load (KneeDetector::measured_rps); nullopt =
    // not measured. Unset: the planner decides from the signals alone.
    std::function<std::optional<double>(const PoolShape&)> measured_rps;
};

struct PairPlan {
    PoolShape shape;
    std::string_view rule;
    std::string reason;
};

// A new (processes, threads) pair, or nullopt to keep the threads as they are. When a rule would
// act but measured throughput says no, `kept` (if given) gets why: "threads kept: ...".
std::optional<PairPlan> plan_pair(const PairInputs& in, std::string* kept = nullptr);

}  // namespace tuner::policies
