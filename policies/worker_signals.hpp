// What one control cycle measures from a Snapshot and the one before it: the load (λ, S, demand
// concurrency), the last cycle's throughput, CPU time per request, and pressure trends.
// The worker controller's rules read only these numbers, so tests can reason about them.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "model/snapshot.hpp"

namespace tuner::policies {

struct WorkerSignals {
    double elapsed_s = 0;  // since the previous sampled cycle; 0 on the first
    bool has_traffic = false;

    // From the front's window (smoothed over policy.window, lagging by about half of it).
    double arrival_rps = 0;      // λ
    double service_mean_ms = 0;  // S, upstream time per request
    double queue_wait_p95_ms = 0;
    double inflight_mean = 0;      // requests at workers (= λ × S in steady state, Little)
    double queue_length_mean = 0;  // requests waiting at the front
    // Concurrent requests the load brings: at workers plus waiting (window means). Under a
    // closed loop this is the number of clients, whatever today's capacity caps λ at.
    double demand_concurrency = 0;

    // The instant of the snapshot (the window's values when the front does not report them).
    double inflight_now = 0;  // requests at workers, summed over the workers
    double queue_now = 0;     // requests waiting at the front
    bool queue_now_measured = false;
    // Arrivals per second over the last cycle alone; unset when the front has no counter.
    std::optional<double> arrival_recent_rps;

    // From the last cycle alone, so a new pool size is judged without the window's lag.
    double throughput_rps = 0;         // requests the workers served per second
    bool throughput_measured = false;  // from per-worker counters (else the window's rate)

    // CPU seconds of the workers' process trees per served request, over the last few cycles
    // (Δ(sum of worker-tree cpu_seconds) / Δ(completed requests)).
    std::optional<double> cpu_ms_per_request;
    // Time per request the workers' threads spent runnable but waiting for a CPU (schedstat
    // run_delay over the same cycles): the part of S that is CPU queueing, not the app's waiting.
    std::optional<double> cpu_queue_ms_per_request;
    // The share of a request spent waiting on something other than the CPU (I/O, a database, a
    // sleep): 1 − (CPU + CPU queueing) / S. Without schedstat, 1 − CPU / S.
    double wait_share = 0;
    // CPU the workers' process trees used over the last cycle, in cores: all of them, and the
    // busiest one (a CPython process cannot use much more than one core: its GIL).
    double workers_cpu_cores = 0;
    double process_cpu_max_cores = 0;
    // A worker process was seen using more than one core: the app's threads run in parallel
    // (no GIL), so the CPU does not ask for more processes than concurrency does.
    bool multi_core_processes = false;
    // S without CPU queueing, smoothed: S − CPU queueing per request when schedstat tells it,
    // else S while the CPU had room (utilisation < 70 %); the current S until one is seen.
    double service_uncontended_ms = 0;

    double cpu_utilisation = 0;  // of the quota (or of the effective cores), last interval
    double cpu_capacity_cores = 1;
    double cpu_psi_some_avg10 = 0;
    double cpu_psi_rise = 0;  // avg10 now − avg10 of the previous snapshot
    double memory_psi_some_avg10 = 0;
    double memory_psi_rise = 0;
    std::uint64_t new_oom_kills = 0;  // since the previous snapshot

    // Requests per second the CPU quota could serve at the measured CPU cost.
    [[nodiscard]] std::optional<double> cpu_bound_rps() const;
    // Concurrent requests that keep the CPU busy at the uncontended service time: more
    // concurrency than this only queues at the CPU (Little's law at the CPU's throughput).
    [[nodiscard]] std::optional<double> cpu_useful_concurrency() const;
    // Cores the load would use if the pool carried all of it: the demand concurrency served at
    // the uncontended service time, at the measured CPU per request; at least what the workers
    // use now; at most the quota.
    [[nodiscard]] double cpu_cores_wanted() const;
};

nlohmann::json to_json(const WorkerSignals& s);

// Keeps the previous cycle's counters to turn cumulative ones into rates.
class SignalTracker {
public:
    // Cycles closer together than this (a "run a cycle now" request) reuse the last rates.
    explicit SignalTracker(Duration min_sample_interval);

    WorkerSignals update(const Snapshot& snapshot);
    [[nodiscard]] const WorkerSignals& last() const { return last_; }

private:
    struct WorkerCounters {
        pid_t pid = 0;
        bool ready = false;  // serving when sampled: its CPU since is the requests' cost
        std::uint64_t served = 0;
        double cpu_seconds = 0;
        std::optional<double> cpu_wait_seconds;
    };
    struct CostSample {
        double cpu_seconds = 0;
        double served = 0;
        double cpu_wait_seconds = 0;
        double wait_served = 0;  // requests of the workers whose CPU wait was known
    };

    void sample_rates(const Snapshot& snapshot, WorkerSignals& out);

    Duration min_sample_interval_;
    std::optional<Clock::time_point> sampled_at_;
    std::optional<std::uint64_t> accepted_total_;  // at sampled_at_
    std::map<unsigned, WorkerCounters> workers_;   // at sampled_at_
    std::deque<CostSample> recent_cost_;           // the last few cycles
    std::optional<std::uint64_t> oom_kills_;
    std::optional<double> cpu_psi_;
    std::optional<double> memory_psi_;
    double uncontended_ms_ = 0;
    bool multi_core_ = false;  // a process was seen above one core (sticky: it is the app's nature)
    WorkerSignals last_;
};

}  // namespace tuner::policies
