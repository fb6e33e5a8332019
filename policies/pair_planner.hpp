// The pair planner: threads per process as a second knob. When processes are capped by
// memory (or by the database's connection budget) and requests mostly wait, more threads per
// process carry the demand in memory that is already there (threads share the process's
// memory); when the CPU is saturated and latency grows from contention, fewer threads.
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

struct PairInputs {
    PoolShape current;
    unsigned threads_min = 1;  // workers.threads: the operator's start value
    unsigned threads_max = 1;  // workers.threads_max
    double slots_needed = 0;   // concurrency to carry at the target utilisation
    // Concurrency the pool may grow to this cycle (CPU knee, probing steps); unset = no limit.
    std::optional<double> slot_limit;
    std::function<unsigned(unsigned threads)> process_cap;  // memory ceiling, db cap, max
    std::string
        process_cap_text;  // why processes are capped: "memory ceiling 2 processes at 181MB p95"
    std::optional<double> cpu_useful_concurrency;
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
