// Turns snapshots into per-cycle signals (see worker_signals.hpp).
#include "policies/worker_signals.hpp"

#include <algorithm>

namespace tuner::policies {
namespace {

// Cycles of CPU-cost history: enough requests for a stable ratio, short enough to follow a change.
constexpr std::size_t kCostCycles = 5;
// Below this CPU utilisation the service time is taken as free of CPU queueing.
constexpr double kUncontendedUtilisation = 0.7;
// Smoothing of the uncontended service time (an exponential moving average per cycle).
constexpr double kUncontendedAlpha = 0.2;
// A process using more CPU than this (cores) runs its threads in parallel: no GIL. Above 1 by a
// margin, so sampling noise on a GIL-bound process at 100 % of a core does not count.
constexpr double kMultiCoreProcess = 1.15;

double psi_avg10(const std::optional<PressureResource>& resource) {
    if (!resource || !resource->some) return 0;
    return resource->some->avg10;
}

}  // namespace

std::optional<double> WorkerSignals::cpu_bound_rps() const {
    if (!cpu_ms_per_request || *cpu_ms_per_request <= 0) return std::nullopt;
    return cpu_capacity_cores * 1000.0 / *cpu_ms_per_request;
}

std::optional<double> WorkerSignals::cpu_useful_concurrency() const {
    const auto rps = cpu_bound_rps();
    if (!rps || service_uncontended_ms <= 0) return std::nullopt;
    return *rps * service_uncontended_ms / 1000.0;
}

double WorkerSignals::cpu_cores_wanted() const {
    double cores = workers_cpu_cores;
    if (cpu_ms_per_request && service_uncontended_ms > 0) {
        // The window's mean lags a load step by half a window; what is there now does not.
        const double demand = std::max(demand_concurrency, inflight_now + queue_now);
        const double demand_rps = demand * 1000.0 / service_uncontended_ms;
        cores = std::max(cores, demand_rps * *cpu_ms_per_request / 1000.0);
    }
    return std::min(cores, cpu_capacity_cores);
}

nlohmann::json to_json(const WorkerSignals& s) {
    nlohmann::json j{
        {"arrival_rps", s.arrival_rps},
        {"throughput_rps", s.throughput_rps},
        {"service_mean_ms", s.service_mean_ms},
        {"service_uncontended_ms", s.service_uncontended_ms},
        {"queue_wait_p95_ms", s.queue_wait_p95_ms},
        {"inflight_mean", s.inflight_mean},
        {"queue_length_mean", s.queue_length_mean},
        {"demand_concurrency", s.demand_concurrency},
        {"inflight_now", s.inflight_now},
        {"queue_now", s.queue_now},
        {"wait_share", s.wait_share},
        {"cpu_utilisation", s.cpu_utilisation},
        {"workers_cpu_cores", s.workers_cpu_cores},
        {"process_cpu_max_cores", s.process_cpu_max_cores},
        {"multi_core_processes", s.multi_core_processes},
        {"cpu_capacity_cores", s.cpu_capacity_cores},
        {"cpu_psi_some_avg10", s.cpu_psi_some_avg10},
        {"memory_psi_some_avg10", s.memory_psi_some_avg10},
        {"new_oom_kills", s.new_oom_kills},
    };
    j["cpu_ms_per_request"] =
        s.cpu_ms_per_request ? nlohmann::json(*s.cpu_ms_per_request) : nlohmann::json();
    j["cpu_queue_ms_per_request"] =
        s.cpu_queue_ms_per_request ? nlohmann::json(*s.cpu_queue_ms_per_request) : nlohmann::json();
    j["arrival_recent_rps"] =
        s.arrival_recent_rps ? nlohmann::json(*s.arrival_recent_rps) : nlohmann::json();
    const auto useful = s.cpu_useful_concurrency();
    j["cpu_useful_concurrency"] = useful ? nlohmann::json(*useful) : nlohmann::json();
    return j;
}

SignalTracker::SignalTracker(Duration min_sample_interval)
    : min_sample_interval_(min_sample_interval) {}

WorkerSignals SignalTracker::update(const Snapshot& snapshot) {
    WorkerSignals out = last_;  // rates carry over when this cycle is too close to the last
    const WindowStats& w = snapshot.window;
    out.has_traffic = w.completed > 0;
    out.arrival_rps = w.arrival_rps;
    out.service_mean_ms = w.service.mean_ms;
    out.queue_wait_p95_ms = w.queue_wait.p95_ms;
    out.inflight_mean = w.inflight_mean;
    out.queue_length_mean = w.queue_length_mean;
    out.demand_concurrency = w.inflight_mean + w.queue_length_mean;
    out.queue_now_measured = w.queue_length_now.has_value();
    out.queue_now =
        w.queue_length_now ? static_cast<double>(*w.queue_length_now) : w.queue_length_mean;
    out.inflight_now = w.inflight_mean;
    if (!snapshot.pool.workers.empty()) {
        out.inflight_now = 0;
        for (const auto& worker : snapshot.pool.workers) out.inflight_now += worker.inflight;
    }
    out.cpu_capacity_cores = snapshot.cpu.quota_cores.value_or(snapshot.cpu.effective_cores);
    if (out.cpu_capacity_cores <= 0) out.cpu_capacity_cores = 1;
    out.cpu_utilisation = snapshot.cpu.utilisation.value_or(0);

    const double cpu_psi = psi_avg10(snapshot.pressure.cpu);
    const double memory_psi = psi_avg10(snapshot.pressure.memory);
    out.cpu_psi_some_avg10 = cpu_psi;
    out.memory_psi_some_avg10 = memory_psi;
    out.cpu_psi_rise = cpu_psi_ ? cpu_psi - *cpu_psi_ : 0;
    out.memory_psi_rise = memory_psi_ ? memory_psi - *memory_psi_ : 0;
    cpu_psi_ = cpu_psi;
    memory_psi_ = memory_psi;
    // A counter that went backwards (a new cgroup) is a restart, not a negative kill count.
    out.new_oom_kills = oom_kills_ && snapshot.memory.oom_kills > *oom_kills_
                            ? snapshot.memory.oom_kills - *oom_kills_
                            : 0;
    oom_kills_ = snapshot.memory.oom_kills;

    const bool due = !sampled_at_ || snapshot.taken_at - *sampled_at_ >= min_sample_interval_;
    if (due) sample_rates(snapshot, out);

    const double queue_ms = out.cpu_queue_ms_per_request.value_or(0);
    if (out.cpu_ms_per_request && out.service_mean_ms > 0) {
        out.wait_share =
            std::clamp(1.0 - (*out.cpu_ms_per_request + queue_ms) / out.service_mean_ms, 0.0, 1.0);
    } else {
        out.wait_share = 0;
    }
    if (out.has_traffic && out.service_mean_ms > 0) {
        if (out.cpu_queue_ms_per_request) {
            // What S would be with a CPU free for every request. It may come down at any load,
            // but rise only while the CPU has room: with the CPU saturated, a longer S can be
            // waiting the schedstat probe does not see (tunerd's own front starved of CPU, page
            // faults of workers starting), and a rising S₀ would let the pool grow into more of
            // it — a runaway measured under ASan, where the front costs ten times its CPU
            // (5 → 58 workers in 13 s, S₀ 58 → 196 ms, throughput 81 → 24 rps).
            const double free_cpu_ms =
                std::max(out.service_mean_ms - queue_ms, out.cpu_ms_per_request.value_or(0));
            if (uncontended_ms_ <= 0) {
                uncontended_ms_ = free_cpu_ms;
            } else if (free_cpu_ms < uncontended_ms_ ||
                       out.cpu_utilisation < kUncontendedUtilisation) {
                uncontended_ms_ += kUncontendedAlpha * 2 * (free_cpu_ms - uncontended_ms_);
            }
        } else if (uncontended_ms_ <= 0) {
            uncontended_ms_ = out.service_mean_ms;
        } else if (out.cpu_utilisation < kUncontendedUtilisation) {
            uncontended_ms_ += kUncontendedAlpha * (out.service_mean_ms - uncontended_ms_);
        }
    }
    out.service_uncontended_ms = uncontended_ms_;
    out.multi_core_processes = multi_core_;
    last_ = out;
    return out;
}

void SignalTracker::sample_rates(const Snapshot& snapshot, WorkerSignals& out) {
    std::map<unsigned, WorkerCounters> now;
    for (const auto& worker : snapshot.pool.workers) {
        WorkerCounters c;
        c.pid = worker.pid;
        c.ready = worker.state == WorkerState::ready;
        c.served = worker.served;
        if (const auto it = snapshot.worker_trees.find(worker.id);
            it != snapshot.worker_trees.end()) {
            c.cpu_seconds = it->second.cpu_seconds;
            c.cpu_wait_seconds = it->second.cpu_wait_seconds;
        }
        now[worker.id] = c;
    }

    out.elapsed_s =
        sampled_at_ ? std::chrono::duration<double>(snapshot.taken_at - *sampled_at_).count() : 0;
    out.throughput_measured = false;
    out.throughput_rps = snapshot.window.rate_rps;
    if (sampled_at_ && out.elapsed_s > 0 && !now.empty()) {
        double served = 0;
        CostSample cost;
        double busiest_process = 0;
        for (const auto& [id, c] : now) {
            const auto before = workers_.find(id);
            if (before == workers_.end()) {
                served += static_cast<double>(c.served);  // started since: counted from zero
                continue;
            }
            if (c.served < before->second.served) continue;  // restarted slot: no delta
            const auto delta = static_cast<double>(c.served - before->second.served);
            served += delta;
            // CPU cost only from the same process, serving in both cycles: a new worker's
            // start-up CPU (imports, warm-up, touching its memory) is not the cost of a request.
            if (c.pid != before->second.pid || !before->second.ready) continue;
            cost.served += delta;
            const double cpu = std::max(0.0, c.cpu_seconds - before->second.cpu_seconds);
            cost.cpu_seconds += cpu;
            if (c.cpu_wait_seconds && before->second.cpu_wait_seconds) {
                // A thread that exited takes its run_delay along: never a negative wait.
                cost.cpu_wait_seconds +=
                    std::max(0.0, *c.cpu_wait_seconds - *before->second.cpu_wait_seconds);
                cost.wait_served += delta;
            }
            busiest_process = std::max(busiest_process, cpu / out.elapsed_s);
        }
        out.workers_cpu_cores = cost.cpu_seconds / out.elapsed_s;
        out.process_cpu_max_cores = busiest_process;
        if (busiest_process > kMultiCoreProcess) multi_core_ = true;
        out.throughput_rps = served / out.elapsed_s;
        out.throughput_measured = true;
        recent_cost_.push_back(cost);
        if (recent_cost_.size() > kCostCycles) recent_cost_.pop_front();
        CostSample total;
        for (const auto& c : recent_cost_) {
            total.served += c.served;
            total.cpu_seconds += c.cpu_seconds;
            total.cpu_wait_seconds += c.cpu_wait_seconds;
            total.wait_served += c.wait_served;
        }
        if (total.served > 0 && total.cpu_seconds > 0) {
            out.cpu_ms_per_request = total.cpu_seconds * 1000.0 / total.served;
        }
        if (total.wait_served > 0) {
            out.cpu_queue_ms_per_request = total.cpu_wait_seconds * 1000.0 / total.wait_served;
        }
    }
    const auto& accepted = snapshot.window.accepted_total;
    out.arrival_recent_rps.reset();
    if (accepted && accepted_total_ && out.elapsed_s > 0 && *accepted >= *accepted_total_) {
        out.arrival_recent_rps = static_cast<double>(*accepted - *accepted_total_) / out.elapsed_s;
    }
    accepted_total_ = accepted;
    workers_ = std::move(now);
    sampled_at_ = snapshot.taken_at;
}

}  // namespace tuner::policies
