// The adaptive rules of the worker controller, in precedence order (memory, bounds, the CPU knee,
// threads, growth, scale-down), and the limits on growth. decide_adaptive() runs them; the first
// that proposes a change wins.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "policies/memory_pressure.hpp"
#include "policies/pair_planner.hpp"
#include "policies/registry.hpp"
#include "policies/worker_cycle.hpp"

namespace tuner::policies {
namespace {

// Growth waits for the judgement of the last increase when the CPU is this busy: the knee is
// only possible near saturation, and judging needs the new shape's own throughput.
constexpr double kJudgeAboveUtilisation = 0.8;
// Near the CPU's useful concurrency the pool grows by this factor per step (each one judged):
// a step adds up to 25 % capacity, well above the knee's 5 % noise threshold.
constexpr double kProbeFactor = 1.25;
// λ-driven growth only when the need exceeds the pool by more than this (Kubernetes HPA's
// tolerance, halved: the window already smooths the rate).
constexpr double kGrowthTolerance = 0.05;
// After a thread change (which rolls every process over), one that is only an improvement waits
// this long; one the load needs does not.
constexpr auto kThreadsCooldown = std::chrono::seconds(20);
// What the CPU can use, for requests that mostly wait (see growth_slot_limit).
constexpr double kWaitingSlack = 2;
// A load is known from this long after it began: the window's rate and service time then
// describe it, not the first requests' burst.
constexpr auto kLoadEvidence = std::chrono::seconds(2);
// A process using this much of a core is at its GIL's limit (sampling noise keeps a saturated
// one a little below 1).
constexpr double kSaturatedProcessCores = 0.85;
// The processes the CPU work asks for fall only after being lower for this long.
constexpr auto kCpuProcessesHold = std::chrono::seconds(30);
// A queue-driven need this many times the pool's concurrency is a load step: growth does not wait
// for the last resize (see growth_hold).
constexpr double kUrgentGrowth = 1.5;
// A memory-pressure mark older than this no longer holds growth back by itself (the memory
// ceiling and the headroom still do).
constexpr auto kPressureMarkExpiry = std::chrono::minutes(10);
// Growth to this many times the processes the CPU work needs, at one thread each, names
// workers.threads_max in its reason (reshape's kReshapeProcessRatio judges the same excess).
constexpr unsigned kThreadsHintProcesses = 2;

}  // namespace

using cycle_text::below_min_text;
using cycle_text::workers_text;

std::optional<WorkerController::Proposal> WorkerController::memory_rules(const Cycle& c) {
    const MemoryPressure mp = memory_pressure(c.snapshot, c.signals, c.estimate.p95_bytes);
    if (mp.pressing) {
        // Remember at what count and size it came: growing back there needs evidence.
        if (!pressure_mark_ || pressure_mark_->processes > c.current ||
            c.now - pressure_mark_->at > std::chrono::seconds(5)) {
            pressure_mark_ = PressureMark{c.current, c.estimate.p95_bytes, mp.line_bytes, c.now};
        }
        // Workers still draining free their memory soon: release more only on a new OOM kill.
        const bool releasing = c.snapshot.pool.draining > 0 && c.signals.new_oom_kills == 0;
        if (c.current <= 1 || releasing) {
            c.notes->emplace_back("memory_pressure", "memory pressure: " + mp.cause +
                                                         (releasing ? " (workers draining)" : ""));
            return std::nullopt;
        }
        const unsigned to = c.current - std::min(mp.release_workers, c.current - 1);
        // The load stays: what processes are released, threads carry (they share the memory
        // that is already there), in the same plan, so the pool serves at once at its safe shape.
        const unsigned threads = std::clamp(
            std::max(c.threads, static_cast<unsigned>(std::ceil(c.need.slots() / to - 1e-9))),
            threads_min(), threads_max());
        Proposal p{to, threads, std::string(rule::memory_pressure), "", to_json(mp)};
        p.reason = fmt::format("{} → release {}: {} → {}{}", mp.cause, c.current - to, c.current,
                               workers_text(to), below_min_text(to, config_.workers.min));
        if (threads != c.threads) {
            p.reason += fmt::format("; threads {} → {} carry the load ({} concurrent)", c.threads,
                                    threads, text::number(c.need.slots()));
        }
        p.reason += fmt::format("; no growth back to {} while processes stay this large",
                                workers_text(pressure_mark_->processes));
        return p;
    }
    if (c.current > c.cap) {
        Proposal p{c.cap, c.threads, std::string(rule::memory_ceiling), "",
                   nlohmann::json::object()};
        if (max_processes_by_db_ && c.cap == *max_processes_by_db_ &&
            c.cap < c.ceiling.memory_ceiling) {
            p.reason = "database connection budget allows " + workers_text(c.cap);
        } else {
            p.reason =
                fmt::format("memory ceiling {} = {} budget / {} per worker ({}, p95 {})",
                            c.ceiling.memory_ceiling, format_size_approx(c.ceiling.budget_bytes),
                            format_size_approx(c.estimate.bytes), c.estimate.basis,
                            format_size_approx(c.estimate.p95_bytes));
        }
        p.reason += fmt::format(" → {} → {}{}", c.current, workers_text(c.cap),
                                below_min_text(c.cap, config_.workers.min));
        p.inputs = {{"memory_ceiling", c.ceiling.memory_ceiling}};
        return p;
    }
    return std::nullopt;
}

std::optional<WorkerController::Proposal> WorkerController::bounds_rule(const Cycle& c) {
    unsigned workers = c.current;
    if (workers > config_.workers.max) workers = config_.workers.max;
    if (workers < c.lo && !memory_hold(c, c.lo)) workers = c.lo;
    const unsigned threads = std::clamp(c.threads, threads_min(), threads_max());
    if (workers == c.current && threads == c.threads) return std::nullopt;
    Proposal p{workers, threads, std::string(rule::bounds), "", nlohmann::json::object()};
    p.reason = fmt::format("bounds workers.min..max {}..{}, threads {}..{}", config_.workers.min,
                           config_.workers.max, threads_min(), threads_max());
    if (c.lo < config_.workers.min) p.reason += fmt::format(" (memory ceiling {})", c.lo);
    p.reason += fmt::format(" → {} → {}", c.current, workers_text(workers));
    if (threads != c.threads) p.reason += fmt::format(", threads {} → {}", c.threads, threads);
    return p;
}

std::optional<WorkerController::Proposal> WorkerController::knee_rule(const Cycle& c) {
    if (!c.knee.found) return std::nullopt;
    const Knee& k = *c.knee.found;
    unsigned threads = std::clamp(k.settle.threads, threads_min(), threads_max());
    unsigned processes = k.settle.processes;
    // Right after a thread change the knee settles at the concurrency it found, in processes of
    // the current thread count, rather than rolling every process over once more.
    if (threads != c.threads && threads_changed_at_ &&
        c.now - *threads_changed_at_ < kThreadsCooldown) {
        processes = std::max(1u, static_cast<unsigned>(std::ceil(
                                     static_cast<double>(k.settle.slots()) / c.threads - 1e-9)));
        threads = c.threads;
    }
    const unsigned workers = std::clamp(
        processes, c.lo, std::min(config_.workers.max, process_cap(c.snapshot, threads)));
    const double gain = k.previous_rps > 0 ? k.probed_rps / k.previous_rps - 1 : 0;
    std::string reason = "CPU " + text::percent(k.cpu_utilisation) + " of " +
                         text::number(c.signals.cpu_capacity_cores, 1) + " cores";
    if (k.cpu_psi_rise >= 1) reason += ", CPU PSI +" + text::number(k.cpu_psi_rise, 0);
    reason += "; " + to_string(k.previous) + " → " + to_string(k.probed) + ": " +
              text::rps(k.previous_rps) + " → " + text::rps(k.probed_rps) + " (" +
              (gain >= 0 ? "+" : "") + text::percent(gain) + ") → knee: settle at " +
              to_string(PoolShape{workers, threads}) + " (" + text::rps(k.settle_rps) + ", best " +
              text::rps(k.best_rps) + ")";
    if (workers == c.current && threads == c.threads) {
        c.notes->emplace_back("cpu_knee", "cpu_knee: " + reason);
        return std::nullopt;
    }
    return Proposal{workers, threads, std::string(rule::cpu_knee), reason, to_json(k)};
}

std::optional<WorkerController::Proposal> WorkerController::threads_rule(const Cycle& c) {
    if (threads_max() <= threads_min()) return std::nullopt;
    PairInputs in;
    in.current = PoolShape{c.current, c.threads};
    in.threads_min = threads_min();
    in.threads_max = threads_max();
    in.slots_needed = c.need.slots();
    in.slots_present = (c.signals.inflight_now + c.signals.queue_now) / c.need.target_utilisation;
    in.slot_limit = growth_slot_limit(c);
    in.process_cap = [&](unsigned t) {
        const unsigned cap = std::min(config_.workers.max, process_cap(c.snapshot, t));
        const auto fit = memory_fit(c, t);
        return fit ? std::clamp(*fit, 1u, cap) : cap;
    };
    if (max_processes_by_db_ && c.cap == *max_processes_by_db_ &&
        c.cap < c.ceiling.memory_ceiling) {
        in.process_cap_text = "database connection budget " + workers_text(c.cap);
    } else if (c.hi == config_.workers.max && c.hi < c.cap) {
        in.process_cap_text = fmt::format("workers.max {}", c.hi);
    } else {
        in.process_cap_text = fmt::format("memory ceiling {} processes at {} p95", c.cap,
                                          format_size_approx(c.estimate.p95_bytes));
    }
    in.cpu_useful_concurrency = c.signals.cpu_useful_concurrency();
    in.cpu_bound_rps = c.signals.cpu_bound_rps();
    const double cores = c.signals.cpu_cores_wanted();
    const unsigned for_cpu = processes_for_cpu(cores, c.signals.multi_core_processes);
    if (for_cpu >= cpu_processes_ || c.now - cpu_processes_at_ > kCpuProcessesHold ||
        c.signals.multi_core_processes) {
        cpu_processes_ = for_cpu;
        cpu_processes_at_ = c.now;
    }
    in.processes_for_cpu = cpu_processes_;
    in.optional_change_allowed =
        !threads_changed_at_ || c.now - *threads_changed_at_ >= kThreadsCooldown;
    // A load step: what the queue asks, as far as the CPU can use it, is half as much again.
    in.urgent = c.need.queue_driven && c.need.queue == QueueState::standing &&
                std::min(c.need.slots(), in.slot_limit.value_or(c.need.slots())) >=
                    kUrgentGrowth * static_cast<double>(c.current * c.threads);
    // A load that just began has not shown itself yet (the window's averages lag by seconds):
    // an optional change waits for it.
    in.need_in_transition = c.need.queue == QueueState::growing ||
                            c.need.queue == QueueState::draining || !traffic_since_ ||
                            c.now - *traffic_since_ < kLoadEvidence;
    in.processes_saturated = !c.signals.multi_core_processes &&
                             c.signals.process_cpu_max_cores >= kSaturatedProcessCores;
    if (c.signals.multi_core_processes) {
        in.processes_for_cpu_text = "the app's processes run threads on several cores";
    } else if (cores > 0) {
        in.processes_for_cpu_text = fmt::format(
            "{} cores of CPU work at ≤ {} core per process → ≥ {}", text::number(cores, 1),
            text::number(kProcessCpuShare, 1), workers_text(for_cpu));
    }
    in.wait_share = c.signals.wait_share;
    in.cpu_utilisation = c.signals.cpu_utilisation;
    in.service_ratio = c.signals.service_uncontended_ms > 0
                           ? c.signals.service_mean_ms / c.signals.service_uncontended_ms
                           : 1;
    in.measured_rps = [&](const PoolShape& shape) {
        return knee_.measured_rps(shape, c.now, c.signals.cpu_ms_per_request);
    };
    std::string kept;
    const auto plan = plan_pair(in, &kept);
    if (!kept.empty()) c.notes->emplace_back("threads_kept", kept);
    if (!plan) return std::nullopt;
    // Raising threads is growth; lowering them waits only for the last change to be seen.
    auto hold = plan->rule == rule::threads_wait_share ? growth_hold(c) : settling_hold(c);
    if (!hold && plan->shape.processes > c.current) hold = memory_hold(c, plan->shape.processes);
    if (hold) {
        c.notes->emplace_back("hold", "threads held: " + *hold);
        return std::nullopt;
    }
    return Proposal{
        std::clamp(plan->shape.processes, 1u,
                   std::min(config_.workers.max, process_cap(c.snapshot, plan->shape.threads))),
        plan->shape.threads,
        std::string(plan->rule),
        plan->reason,
        {{"slots_needed", in.slots_needed},
         {"wait_share", in.wait_share},
         {"service_ratio", in.service_ratio}}};
}

std::optional<WorkerController::Proposal> WorkerController::growth_rule(const Cycle& c) {
    if (c.need.workers <= c.current || c.current >= c.hi) {
        if (c.need.workers > c.current) {
            c.notes->emplace_back(
                "capped",
                fmt::format("need {} workers, capped at {} (memory ceiling {}, workers.max {})",
                            c.need.workers, c.hi, c.ceiling.memory_ceiling, config_.workers.max));
        }
        return std::nullopt;
    }
    // A queue that just formed and still grows may be a closed loop's step (it will stand in a
    // cycle and show the whole demand) or an open-loop burst. When threads can change, processes
    // at today's thread count may be the wrong ones to add: one cycle to see which it is, so the
    // shape that carries the demand comes in one change instead of two.
    if (threads_max() > threads_min() && c.need.queue == QueueState::growing && queue_since_ &&
        c.now - *queue_since_ < config_.policy.interval * 3 / 2) {
        c.notes->emplace_back("hold", "growth held: a queue just formed; one cycle to see it");
        return std::nullopt;
    }
    if (threads_max() > threads_min() && !c.need.queue_driven &&
        (!traffic_since_ || c.now - *traffic_since_ < kLoadEvidence)) {
        return std::nullopt;  // the load just began: its λ and S are not known yet
    }
    // A tolerance on λ-driven growth, as the HPA has: rounding a need of 20.05 up to 21 is
    // noise, not load. A queue is no noise.
    if (!c.need.queue_driven &&
        c.need.slots() / c.threads <= static_cast<double>(c.current) * (1 + kGrowthTolerance)) {
        return std::nullopt;
    }
    if (auto hold = growth_hold(c); hold || (hold = memory_hold(c, c.current + 1))) {
        c.notes->emplace_back("hold", "growth held: " + *hold);
        return std::nullopt;
    }
    unsigned target = std::min(c.need.workers, c.hi);
    std::string limits;
    if (const auto limit = growth_slot_limit(c)) {
        const unsigned by_limit = std::max(1u, static_cast<unsigned>(*limit / c.threads + 1e-9));
        if (by_limit < target) {
            target = by_limit;
            if (const auto& knee = knee_.knee()) {
                limits = "; CPU knee at " + to_string(knee->settle) + " (" +
                         text::rps(knee->settle_rps) + ")";
            } else if (const auto useful = c.signals.cpu_useful_concurrency();
                       useful && c.current * c.threads * kProbeFactor < *useful) {
                limits = "; the CPU can use ~" + text::number(*useful) + " concurrent (" +
                         text::number(c.signals.cpu_capacity_cores, 1) + " cores / " +
                         text::ms(c.signals.cpu_ms_per_request.value_or(0)) +
                         " CPU per request × " + text::ms(c.signals.service_uncontended_ms) + ")";
            } else {
                limits = "; CPU " + text::percent(c.signals.cpu_utilisation) + ": probing by ×" +
                         text::number(kProbeFactor, 2);
            }
        }
    }
    if (const auto fit = memory_fit(c, c.threads); fit && *fit < target) {
        target = std::max(c.current, *fit);
        limits +=
            "; memory headroom: " + format_size_approx(c.snapshot.memory.unreclaimable_bytes()) +
            " unreclaimable fits " + workers_text(*fit) + " under the limit minus " +
            format_size_approx(memory_headroom_bytes(c.snapshot.memory.limit_bytes));
    }
    if (target <= c.current) {
        c.notes->emplace_back("capped", "growth capped" + limits);
        return std::nullopt;
    }
    Proposal p{target, c.threads,
               std::string(c.need.queue_driven ? rule::queue_growth : rule::littles_law), "",
               nlohmann::json::object()};
    backlog_growth_ = c.need.queue_driven &&
                      (c.need.queue == QueueState::growing || c.need.queue == QueueState::draining);
    p.reason =
        fmt::format("{}{}; memory ceiling {}", c.need_text(), limits, c.ceiling.memory_ceiling);
    if (c.need.workers > c.hi && c.hi == config_.workers.max && c.hi < c.ceiling.memory_ceiling) {
        p.reason += fmt::format("; workers.max {}", config_.workers.max);
    }
    p.reason += threads_hint(c, target);
    p.reason += fmt::format(" → {} → {}", c.current, workers_text(target));
    return p;
}

std::string WorkerController::threads_hint(const Cycle& c, unsigned target) const {
    if (threads_max() > threads_min() || c.signals.wait_share < kThreadsWaitShare) return "";
    const unsigned for_cpu =
        processes_for_cpu(c.signals.cpu_cores_wanted(), c.signals.multi_core_processes);
    if (target < kThreadsHintProcesses * for_cpu) return "";
    // Processes a slot each, where the CPU work needs `for_cpu`: threads (or an event loop's
    // concurrency) would carry the waiting at a fraction of the memory (docs/operations.md, "An
    // event-loop app").
    return fmt::format(
        "; requests wait {} of their time and {} would do the CPU work: set workers.threads_max "
        "above {} if the app serves requests concurrently (thread-safe, or an event loop)",
        text::percent(c.signals.wait_share), workers_text(for_cpu), threads_min());
}

std::optional<WorkerController::Proposal> WorkerController::scale_down_rule(const Cycle& c) {
    if (!c.step) return std::nullopt;
    const unsigned to = std::max(c.step->to, c.lo);
    if (to >= c.current) return std::nullopt;
    Proposal p{to, c.threads, std::string(rule::scale_down), "", nlohmann::json::object()};
    backlog_growth_ = false;
    p.reason = fmt::format(
        "utilisation below {} for {} s ({}; largest need in the last {}: {}) → step {} → {}",
        text::percent(c.need.target_utilisation * kShrinkBand), text::number(c.step->low_for_s),
        c.need_text(), format_duration(config_.policy.scale_down_cooldown), c.step->recommendation,
        c.current, workers_text(to));
    p.inputs = {{"recommendation", c.step->recommendation}, {"low_for_s", c.step->low_for_s}};
    return p;
}

// ---- growth limits -------------------------------------------------------------------------

std::optional<double> WorkerController::growth_slot_limit(const Cycle& c) const {
    if (const auto& knee = knee_.knee()) return static_cast<double>(knee->settle.slots());
    auto useful = c.signals.cpu_useful_concurrency();
    if (!useful) return std::nullopt;
    // Requests that mostly wait keep the CPU busy only with concurrency to spare: their CPU phases
    // come in bursts, and on a GIL a process serves them one at a time (measured: 40 slots served
    // 337 rps where the formula's 19 served ~290). When threads may rise, those slots are
    // threads, cheap; processes are not.
    if (c.signals.wait_share >= kThreadsWaitShare && threads_max() > threads_min()) {
        *useful *= kWaitingSlack;
    }
    const double current = static_cast<double>(c.current) * c.threads;
    // Well below what the CPU can use: straight there. Near or beyond it (the estimate may be off
    // either way), by steps large enough for the knee judgement to tell a gain from noise.
    if (current * kProbeFactor < *useful) return *useful;
    return std::max(std::ceil(current * kProbeFactor), current + 1);
}

std::optional<unsigned> WorkerController::memory_fit(const Cycle& c, unsigned threads) const {
    // The seed formula's ceiling sees only tunerd and the workers; whatever else lives in the
    // cgroup (a cron job, tmpfs) shows in its unreclaimable memory. A growth step never projects
    // that past the limit minus the headroom. The active page cache (the app's modules, shared by
    // every worker) is left out: the kernel reclaims it before it OOM-kills, as memory_pressure
    // judges.
    const MemoryInfo& m = c.snapshot.memory;
    const std::uint64_t line = m.line_bytes();
    if (line == 0 || m.unreclaimable_bytes() == 0) return std::nullopt;
    const auto processes = static_cast<double>(
        c.snapshot.worker_trees.empty() ? c.current : c.snapshot.worker_trees.size());
    const auto per_new = memory_.estimate(threads, config_.workers);
    // The live processes grow too when their thread count rises.
    const double growth_of_live =
        processes * std::max(0.0, static_cast<double>(per_new.p95_bytes) -
                                      static_cast<double>(c.estimate.p95_bytes));
    const double free = static_cast<double>(line - std::min(line, memory_headroom_bytes(line))) -
                        static_cast<double>(m.unreclaimable_bytes()) - growth_of_live;
    const double more =
        std::floor(free / static_cast<double>(std::max<std::uint64_t>(1, per_new.bytes)));
    return static_cast<unsigned>(std::max(0.0, processes + more));
}

std::optional<std::string> WorkerController::settling_hold(const Cycle& c) const {
    // The last resize must be complete and seen for a whole cycle first: a cycle in which new
    // workers became ready mixes two capacities (unless a worker never gets ready).
    const auto& pool = c.snapshot.pool;
    const auto in_place = knee_.in_place_since();
    if (!in_place && (!resized_at_ || c.now - *resized_at_ < config_.workers.startup_timeout)) {
        return fmt::format("the last resize is still in progress ({} starting, {} draining)",
                           pool.starting, pool.draining);
    }
    if (in_place && c.now - *in_place < config_.policy.interval / 2) {
        return "the pool just got complete at " + to_string(PoolShape{c.current, c.threads}) +
               ": one cycle to see it";
    }
    return std::nullopt;
}

std::optional<std::string> WorkerController::memory_hold(const Cycle& c, unsigned processes) const {
    if (!c.estimate.measured && c.snapshot.memory.limited) {
        return "no worker's memory measured yet: the pool grows once one has been";
    }
    if (!pressure_mark_ || processes < pressure_mark_->processes) return std::nullopt;
    // Evidence that the count fits now: processes clearly smaller, or a higher limit; or long
    // enough that the mark says nothing about today's app.
    const bool smaller = static_cast<double>(c.estimate.p95_bytes) <
                         0.9 * static_cast<double>(pressure_mark_->per_process_bytes);
    const bool more_room = c.snapshot.memory.limit_bytes > pressure_mark_->line_bytes;
    if (smaller || more_room || c.now - pressure_mark_->at > kPressureMarkExpiry)
        return std::nullopt;
    return fmt::format("memory pressure came at {} of {} p95; processes are {} p95 now",
                       workers_text(pressure_mark_->processes),
                       format_size_approx(pressure_mark_->per_process_bytes),
                       format_size_approx(c.estimate.p95_bytes));
}

std::optional<std::string> WorkerController::growth_hold(const Cycle& c) const {
    // A queue calling for half as much again as the pool (a load step) does not wait for the last
    // resize to land or be judged: the pool chases the latest target, and every second the
    // clients wait costs more than a worker too many (the knee and scale-down trim it later).
    // Only below what the CPU can use: beyond it every step is judged by its throughput.
    const double slots = static_cast<double>(c.current * c.threads);
    const auto useful = c.signals.cpu_useful_concurrency();
    if (c.need.queue_driven && c.need.slots() >= kUrgentGrowth * slots &&
        (!useful || slots * kProbeFactor < *useful) && !knee_.knee()) {
        return std::nullopt;
    }
    if (auto settling = settling_hold(c)) return settling;
    if (knee_.judging() && c.signals.cpu_utilisation >= kJudgeAboveUtilisation) {
        return "measuring throughput at " + to_string(PoolShape{c.current, c.threads}) +
               " before growing further (CPU " + text::percent(c.signals.cpu_utilisation) + ")";
    }
    return std::nullopt;
}

}  // namespace tuner::policies
