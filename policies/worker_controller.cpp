// The worker controller's cycle: modes, rule precedence and decisions (see worker_controller.hpp;
// each rule's formula and source are in docs/policies.md and in the registry).
#include "policies/worker_controller.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "policies/memory_pressure.hpp"
#include "policies/pair_planner.hpp"
#include "policies/reason_text.hpp"
#include "policies/registry.hpp"

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
// Scale-down steps are at least this far apart (a fraction of scale_down_cooldown), so each
// step's effect is seen before the next.
constexpr int kStepsPerCooldown = 6;

Duration step_dwell(const PolicyConfig& policy) {
    return std::max(policy.interval, policy.scale_down_cooldown / kStepsPerCooldown);
}

std::string workers_text(unsigned n) {
    return std::to_string(n) + (n == 1 ? " worker" : " workers");
}

std::string below_min_text(unsigned to, unsigned min_workers) {
    if (to >= min_workers) return "";
    return "; below workers.min " + std::to_string(min_workers) + ": memory does not allow it";
}

}  // namespace

struct WorkerController::Cycle {
    explicit Cycle(const Snapshot& s) : snapshot(s), now(s.taken_at) {}

    const Snapshot& snapshot;
    Clock::time_point now;
    unsigned current = 0;  // the pool's target
    unsigned threads = 1;  // the pool's threads per worker
    WorkerSignals signals;
    WorkerNeed need;
    KneeDetector::Event knee;
    ProcessMemoryEstimate estimate;  // per process at the current thread count
    SeedResult ceiling;              // the seed formula at that estimate
    unsigned cap = 1;  // processes memory (the ceiling) and the db budget allow; not workers.max
    unsigned lo = 1;   // workers.min, unless the memory ceiling is lower
    unsigned hi = 1;   // workers.max, unless the memory ceiling is lower
    std::optional<ScaleDownGovernor::Step> step;
    std::vector<std::pair<std::string, std::string>>* notes = nullptr;  // (key, text)

    // "queue wait p95 120 ms; queue growing: ...; λ=310 rps, S=55 ms → need 22 workers at 80 %
    // utilisation": every number the need came from.
    [[nodiscard]] std::string need_text() const {
        const auto& s = signals;
        std::string t;
        if (need.queue_driven) {
            t = "queue wait p95 " + text::ms(s.queue_wait_p95_ms) + "; " + queue_text(s, need) +
                " (λ=" + text::rps(s.arrival_rps) + ", S=" + text::ms(s.service_mean_ms) + ")";
        } else {
            t = "λ=" + text::rps(s.arrival_rps) + ", S=" + text::ms(s.service_mean_ms);
        }
        t += " → need " + workers_text(need.workers);
        if (threads != 1) t += " of " + std::to_string(threads) + " threads";
        return t + " at " + text::percent(need.target_utilisation) + " utilisation";
    }
};

WorkerController::WorkerController(const Config& config)
    : config_(config),
      signals_(config.policy.interval / 2),
      scale_down_(config.policy.scale_down_cooldown, step_dwell(config.policy)) {}

void WorkerController::reconfigure(const Config& config) {
    config_ = config;
    scale_down_.reconfigure(config.policy.scale_down_cooldown, step_dwell(config.policy));
    formula_higher_since_.reset();
}

void WorkerController::set_max_processes_by_db(std::optional<unsigned> max_processes) {
    max_processes_by_db_ = max_processes;
}

unsigned WorkerController::threads_min() const {
    return std::max(1u, config_.workers.threads);
}

unsigned WorkerController::threads_max() const {
    return std::max(threads_min(), config_.workers.effective_threads_max());
}

SeedResult WorkerController::ceiling(const Snapshot& snapshot, unsigned threads) const {
    return seed_with_estimate(snapshot, config_, memory_.estimate(threads, config_.workers));
}

unsigned WorkerController::process_cap(const Snapshot& snapshot, unsigned threads) const {
    unsigned cap = ceiling(snapshot, threads).memory_ceiling;
    if (max_processes_by_db_) cap = std::min(cap, std::max(1u, *max_processes_by_db_));
    return std::max(1u, cap);
}

Plan WorkerController::decide(const Snapshot& snapshot) {
    const Clock::time_point now = snapshot.taken_at;
    if (seen_target_ && (snapshot.pool.target != *seen_target_ ||
                         snapshot.pool.threads != seen_threads_.value_or(snapshot.pool.threads))) {
        scale_down_.on_resize(now, *seen_target_, snapshot.pool.target);
        resized_at_ = now;
    }
    seen_target_ = snapshot.pool.target;
    seen_threads_ = snapshot.pool.threads;

    std::vector<std::pair<std::string, std::string>> notes;
    Cycle c(snapshot);
    c.notes = &notes;
    c.current = snapshot.pool.target;
    c.threads = std::max(1u, snapshot.pool.threads);
    c.signals = signals_.update(snapshot);
    memory_.observe(snapshot);
    c.knee = knee_.observe(snapshot, c.signals);
    c.need =
        worker_need(c.signals, c.threads, c.current * c.threads, config_.policy.target_utilisation);
    c.estimate = memory_.estimate(c.threads, config_.workers);
    c.ceiling = seed_with_estimate(snapshot, config_, c.estimate);
    c.cap = process_cap(snapshot, c.threads);
    c.lo = std::min(std::max(1u, config_.workers.min), c.cap);
    c.hi = std::min(config_.workers.max, c.cap);

    if (c.knee.released)
        notes.emplace_back("knee_released", "cpu_knee released: " + *c.knee.released);
    if (snapshot.pool.manual_target) {
        notes.emplace_back("manual", "manual target " +
                                         std::to_string(*snapshot.pool.manual_target) +
                                         " pins the pool: decisions are overridden");
    }

    if (config_.workers.mode == PoolMode::adaptive) {
        // Every cycle feeds the stabilization window, whichever rule acts.
        const double stay = backlog_growth_
                                ? 0.0
                                : std::max(c.need.load_concurrency, c.need.queue_concurrency) /
                                      (c.threads * c.need.target_utilisation * kShrinkBand);
        c.step = scale_down_.propose(now, c.current, c.need.workers, stay, c.lo);
    }

    std::optional<Proposal> proposal;
    switch (config_.workers.mode) {
        case PoolMode::fixed:
            proposal = decide_fixed(c);
            break;
        case PoolMode::formula:
            proposal = decide_formula(c);
            break;
        case PoolMode::adaptive:
            proposal = decide_adaptive(c);
            break;
    }

    Plan plan = make_plan(c, proposal);
    // A note is repeated only when its kind changes, so a cap that holds for minutes is said once.
    std::string keys;
    for (const auto& [key, text] : notes) {
        keys += key + ";";
        if (last_note_.find(key + ";") == std::string::npos) plan.notes.push_back(text);
    }
    last_note_ = keys;

    last_snapshot_ = snapshot;
    last_signals_ = c.signals;
    last_need_ = c.need;
    if (proposal) last_proposal_ = proposal;
    return plan;
}

Plan WorkerController::make_plan(const Cycle& c, const std::optional<Proposal>& proposal) {
    Plan plan;
    if (!proposal) return plan;
    const bool workers_change = proposal->workers != c.current;
    const bool threads_change = proposal->threads != c.threads;
    if (!workers_change && !threads_change) return plan;

    const auto& s = c.snapshot;
    nlohmann::json inputs{
        {"mode", to_string(config_.workers.mode)},
        {"pool",
         {{"target", s.pool.target},
          {"threads", s.pool.threads},
          {"ready", s.pool.ready},
          {"starting", s.pool.starting},
          {"draining", s.pool.draining}}},
        {"bounds",
         {{"min", config_.workers.min},
          {"max", config_.workers.max},
          {"threads", threads_min()},
          {"threads_max", threads_max()}}},
        {"signals", to_json(c.signals)},
        {"need", to_json(c.need)},
        {"memory",
         {{"ceiling_workers", c.ceiling.memory_ceiling},
          {"budget_bytes", c.ceiling.budget_bytes},
          {"per_process_bytes", c.estimate.bytes},
          {"per_process_p95_bytes", c.estimate.p95_bytes},
          {"per_process_measured", c.estimate.measured},
          {"working_set_bytes", s.memory.working_set_bytes},
          {"limit_bytes", s.memory.limit_bytes}}},
        {"rule_inputs", proposal->inputs},
    };
    inputs["max_processes_by_db"] =
        max_processes_by_db_ ? nlohmann::json(*max_processes_by_db_) : nlohmann::json();
    const std::string inputs_json = inputs.dump();

    plan.plan_id = ++plans_;
    auto decision = [&](std::string knob, std::int64_t old_value, std::int64_t new_value) {
        Decision d;
        d.time = s.taken_at_wall;
        d.plan_id = plan.plan_id;
        d.subsystem = "workers";
        d.knob = std::move(knob);
        d.old_value = Count{old_value};
        d.new_value = Count{new_value};
        d.rule = proposal->rule;
        d.reason = proposal->reason;
        d.inputs_json = inputs_json;
        return d;
    };
    if (workers_change)
        plan.decisions.push_back(decision("workers.count", c.current, proposal->workers));
    if (threads_change)
        plan.decisions.push_back(decision("workers.threads", c.threads, proposal->threads));
    return plan;
}

// ---- modes ------------------------------------------------------------------------------

std::optional<WorkerController::Proposal> WorkerController::seed(const Cycle& c) {
    seeded_ = true;
    const unsigned threads = std::clamp(c.threads, threads_min(), threads_max());
    const SeedResult r = ceiling(c.snapshot, threads);
    return Proposal{r.workers,
                    threads,
                    std::string(rule::seed_formula),
                    r.reason,
                    {{"cpu_workers", r.cpu_workers}, {"memory_ceiling", r.memory_ceiling}}};
}

std::optional<WorkerController::Proposal> WorkerController::decide_fixed(const Cycle& c) {
    seeded_ = true;  // a later switch to adaptive starts from the pool as it is
    const auto& w = config_.workers;
    const unsigned target = std::clamp(w.count, std::min(w.min, w.max), w.max);
    const unsigned threads = threads_min();
    if (target == c.current && threads == c.threads) return std::nullopt;
    Proposal p{target, threads, std::string(rule::fixed), "", nlohmann::json::object()};
    p.reason = "mode = fixed: workers.count " + std::to_string(w.count) + ", threads " +
               std::to_string(threads);
    const unsigned cap = process_cap(c.snapshot, threads);
    if (target > cap) {
        p.reason += "; WARNING: above the memory ceiling " + std::to_string(cap) + " (" +
                    format_size_approx(c.ceiling.budget_bytes) + " budget / " +
                    format_size_approx(memory_.estimate(threads, w).bytes) +
                    " per worker): the operator's choice is honoured, workers may be OOM-killed";
    }
    p.inputs = {{"count", w.count}, {"memory_ceiling", cap}};
    return p;
}

std::optional<WorkerController::Proposal> WorkerController::decide_formula(const Cycle& c) {
    if (!seeded_) return seed(c);
    const unsigned threads = threads_min();
    const SeedResult r = ceiling(c.snapshot, threads);
    Proposal p{r.workers,
               threads,
               std::string(rule::seed_formula),
               r.reason + " (mode = formula, re-evaluated with the measured memory)",
               {{"cpu_workers", r.cpu_workers}, {"memory_ceiling", r.memory_ceiling}}};
    if (r.workers > c.current) {
        // Growth waits a cooldown: a measurement near a boundary must not flap the pool.
        if (!formula_higher_since_) formula_higher_since_ = c.now;
        if (c.now - *formula_higher_since_ < config_.policy.scale_down_cooldown) {
            p.workers = c.current;
        }
    } else {
        formula_higher_since_.reset();  // lower: memory says so, at once
    }
    if (p.workers == c.current && p.threads == c.threads) return std::nullopt;
    return p;
}

std::optional<WorkerController::Proposal> WorkerController::decide_adaptive(const Cycle& c) {
    if (!seeded_) return seed(c);
    if (auto p = memory_rules(c)) return p;
    if (auto p = bounds_rule(c)) return p;
    if (auto p = knee_rule(c)) return p;
    if (auto p = threads_rule(c)) return p;
    if (auto p = growth_rule(c)) return p;
    return scale_down_rule(c);
}

// ---- adaptive rules, in precedence order --------------------------------------------------

std::optional<WorkerController::Proposal> WorkerController::memory_rules(const Cycle& c) {
    const MemoryPressure mp = memory_pressure(c.snapshot, c.signals, c.estimate.p95_bytes);
    if (mp.pressing) {
        memory_hold_until_ = c.now + config_.policy.scale_down_cooldown;
        // Workers still draining free their memory soon: release more only on a new OOM kill.
        const bool releasing = c.snapshot.pool.draining > 0 && c.signals.new_oom_kills == 0;
        if (c.current <= 1 || releasing) {
            c.notes->emplace_back("memory_pressure", "memory pressure: " + mp.cause +
                                                         (releasing ? " (workers draining)" : ""));
            return std::nullopt;
        }
        const unsigned to = c.current - std::min(mp.release_workers, c.current - 1);
        Proposal p{to, c.threads, std::string(rule::memory_pressure), "", to_json(mp)};
        p.reason = mp.cause + " → release " + std::to_string(c.current - to) + ": " +
                   std::to_string(c.current) + " → " + workers_text(to) +
                   below_min_text(to, config_.workers.min) + "; growth held for " +
                   format_duration(config_.policy.scale_down_cooldown);
        return p;
    }
    if (c.current > c.cap) {
        Proposal p{c.cap, c.threads, std::string(rule::memory_ceiling), "",
                   nlohmann::json::object()};
        if (max_processes_by_db_ && c.cap == *max_processes_by_db_ &&
            c.cap < c.ceiling.memory_ceiling) {
            p.reason = "database connection budget allows " + workers_text(c.cap);
        } else {
            p.reason = "memory ceiling " + std::to_string(c.ceiling.memory_ceiling) + " = " +
                       format_size_approx(c.ceiling.budget_bytes) + " budget / " +
                       format_size_approx(c.estimate.bytes) + " per worker (" + c.estimate.basis +
                       ", p95 " + format_size_approx(c.estimate.p95_bytes) + ")";
        }
        p.reason += " → " + std::to_string(c.current) + " → " + workers_text(c.cap) +
                    below_min_text(c.cap, config_.workers.min);
        p.inputs = {{"memory_ceiling", c.ceiling.memory_ceiling}};
        return p;
    }
    return std::nullopt;
}

std::optional<WorkerController::Proposal> WorkerController::bounds_rule(const Cycle& c) {
    const bool memory_hold = memory_hold_until_ && c.now < *memory_hold_until_;
    unsigned workers = c.current;
    if (workers > config_.workers.max) workers = config_.workers.max;
    if (workers < c.lo && !memory_hold) workers = c.lo;
    const unsigned threads = std::clamp(c.threads, threads_min(), threads_max());
    if (workers == c.current && threads == c.threads) return std::nullopt;
    Proposal p{workers, threads, std::string(rule::bounds), "", nlohmann::json::object()};
    p.reason = "bounds workers.min..max " + std::to_string(config_.workers.min) + ".." +
               std::to_string(config_.workers.max) + ", threads " + std::to_string(threads_min()) +
               ".." + std::to_string(threads_max());
    if (c.lo < config_.workers.min) p.reason += " (memory ceiling " + std::to_string(c.lo) + ")";
    p.reason += " → " + std::to_string(c.current) + " → " + workers_text(workers);
    if (threads != c.threads) {
        p.reason += ", threads " + std::to_string(c.threads) + " → " + std::to_string(threads);
    }
    return p;
}

std::optional<WorkerController::Proposal> WorkerController::knee_rule(const Cycle& c) {
    if (!c.knee.found) return std::nullopt;
    const Knee& k = *c.knee.found;
    const unsigned threads = std::clamp(k.settle.threads, threads_min(), threads_max());
    const unsigned workers = std::clamp(
        k.settle.processes, c.lo, std::min(config_.workers.max, process_cap(c.snapshot, threads)));
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
        in.process_cap_text = "workers.max " + std::to_string(c.hi);
    } else {
        in.process_cap_text = "memory ceiling " + std::to_string(c.cap) + " processes at " +
                              format_size_approx(c.estimate.p95_bytes) + " p95";
    }
    in.cpu_useful_concurrency = c.signals.cpu_useful_concurrency();
    in.wait_share = c.signals.wait_share;
    in.cpu_utilisation = c.signals.cpu_utilisation;
    in.service_ratio = c.signals.service_uncontended_ms > 0
                           ? c.signals.service_mean_ms / c.signals.service_uncontended_ms
                           : 1;
    const auto plan = plan_pair(in);
    if (!plan) return std::nullopt;
    if (plan->rule == rule::threads_wait_share) {
        if (const auto hold = growth_hold(c)) {
            c.notes->emplace_back("hold", "threads held: " + *hold);
            return std::nullopt;
        }
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
                "capped", "need " + std::to_string(c.need.workers) + " workers, capped at " +
                              std::to_string(c.hi) + " (memory ceiling " +
                              std::to_string(c.ceiling.memory_ceiling) + ", workers.max " +
                              std::to_string(config_.workers.max) + ")");
        }
        return std::nullopt;
    }
    // A tolerance on λ-driven growth, as the HPA has: rounding a need of 20.05 up to 21 is
    // noise, not load. A queue is no noise.
    if (!c.need.queue_driven &&
        c.need.slots() / c.threads <= static_cast<double>(c.current) * (1 + kGrowthTolerance)) {
        return std::nullopt;
    }
    if (const auto hold = growth_hold(c)) {
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
        limits += "; memory headroom: working set " +
                  format_size_approx(c.snapshot.memory.working_set_bytes) + " fits " +
                  workers_text(*fit) + " under " + text::percent(kMemoryPressureFraction) +
                  " of the limit";
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
        c.need_text() + limits + "; memory ceiling " + std::to_string(c.ceiling.memory_ceiling);
    if (c.need.workers > c.hi && c.hi == config_.workers.max && c.hi < c.ceiling.memory_ceiling) {
        p.reason += "; workers.max " + std::to_string(config_.workers.max);
    }
    p.reason += " → " + std::to_string(c.current) + " → " + workers_text(target);
    return p;
}

std::optional<WorkerController::Proposal> WorkerController::scale_down_rule(const Cycle& c) {
    if (!c.step) return std::nullopt;
    const unsigned to = std::max(c.step->to, c.lo);
    if (to >= c.current) return std::nullopt;
    Proposal p{to, c.threads, std::string(rule::scale_down), "", nlohmann::json::object()};
    backlog_growth_ = false;
    p.reason = "utilisation below " + text::percent(c.need.target_utilisation * kShrinkBand) +
               " for " + text::number(c.step->low_for_s) + " s (" + c.need_text() +
               "; largest need in the last " + format_duration(config_.policy.scale_down_cooldown) +
               ": " + std::to_string(c.step->recommendation) + ") → step " +
               std::to_string(c.current) + " → " + workers_text(to);
    p.inputs = {{"recommendation", c.step->recommendation}, {"low_for_s", c.step->low_for_s}};
    return p;
}

// ---- growth limits -------------------------------------------------------------------------

std::optional<double> WorkerController::growth_slot_limit(const Cycle& c) const {
    if (const auto& knee = knee_.knee()) return static_cast<double>(knee->settle.slots());
    const auto useful = c.signals.cpu_useful_concurrency();
    if (!useful) return std::nullopt;
    const double current = static_cast<double>(c.current) * c.threads;
    // Well below what the CPU can use: straight there. Near or beyond it (the estimate may be off
    // either way), by steps large enough for the knee judgement to tell a gain from noise.
    if (current * kProbeFactor < *useful) return *useful;
    return std::max(std::ceil(current * kProbeFactor), current + 1);
}

std::optional<unsigned> WorkerController::memory_fit(const Cycle& c, unsigned threads) const {
    // The seed formula's ceiling sees only tunerd and the workers; whatever else lives in the
    // cgroup (a cron job, tmpfs, active page cache) shows in the working set. Growth must also
    // fit in what is really free under the pressure line.
    const MemoryInfo& m = c.snapshot.memory;
    std::uint64_t line = m.limited ? m.limit_bytes : 0;
    if (m.high_bytes && *m.high_bytes > 0 && (line == 0 || *m.high_bytes < line))
        line = *m.high_bytes;
    if (line == 0 || m.working_set_bytes == 0) return std::nullopt;
    const auto processes = static_cast<double>(
        c.snapshot.worker_trees.empty() ? c.current : c.snapshot.worker_trees.size());
    const auto per_new = memory_.estimate(threads, config_.workers);
    // The live processes grow too when their thread count rises.
    const double growth_of_live =
        processes * std::max(0.0, static_cast<double>(per_new.p95_bytes) -
                                      static_cast<double>(c.estimate.p95_bytes));
    const double free = kMemoryPressureFraction * static_cast<double>(line) -
                        static_cast<double>(m.working_set_bytes) - growth_of_live;
    const double more =
        std::floor(free / static_cast<double>(std::max<std::uint64_t>(1, per_new.bytes)));
    return static_cast<unsigned>(std::max(0.0, processes + more));
}

std::optional<std::string> WorkerController::growth_hold(const Cycle& c) const {
    const auto& pool = c.snapshot.pool;
    if (memory_hold_until_ && c.now < *memory_hold_until_) {
        return "memory pressure in the last " +
               format_duration(config_.policy.scale_down_cooldown) + " holds growth (" +
               text::number(std::chrono::duration<double>(*memory_hold_until_ - c.now).count()) +
               " s left)";
    }
    // The last resize must be complete and seen for a whole cycle first: a cycle in which new
    // workers became ready mixes two capacities (unless a worker never gets ready).
    const auto in_place = knee_.in_place_since();
    if (!in_place && (!resized_at_ || c.now - *resized_at_ < config_.workers.startup_timeout)) {
        return "the last resize is still in progress (" + std::to_string(pool.starting) +
               " starting, " + std::to_string(pool.draining) + " draining)";
    }
    if (in_place && c.now - *in_place < config_.policy.interval / 2) {
        return "the pool just got complete at " + to_string(PoolShape{c.current, c.threads}) +
               ": one cycle to see it";
    }
    if (knee_.judging() && c.signals.cpu_utilisation >= kJudgeAboveUtilisation) {
        return "measuring throughput at " + to_string(PoolShape{c.current, c.threads}) +
               " before growing further (CPU " + text::percent(c.signals.cpu_utilisation) + ")";
    }
    return std::nullopt;
}

// ---- explain -------------------------------------------------------------------------------

nlohmann::json WorkerController::explain() const {
    const Snapshot& s = last_snapshot_;
    // Thread counts worth showing: the bounds, powers of two between them, and the pool's own.
    std::set<unsigned> counts{threads_min(), threads_max(), std::max(1u, s.pool.threads)};
    for (unsigned t = 1; t < threads_max(); t *= 2) {
        if (t > threads_min()) counts.insert(t);
    }
    nlohmann::json ceilings = nlohmann::json::object();
    nlohmann::json estimates = nlohmann::json::object();
    for (const unsigned t : counts) {
        const auto e = memory_.estimate(t, config_.workers);
        ceilings[std::to_string(t)] = seed_with_estimate(s, config_, e).memory_ceiling;
        estimates[std::to_string(t)] = {{"bytes", e.bytes},
                                        {"p95_bytes", e.p95_bytes},
                                        {"measured", e.measured},
                                        {"basis", e.basis}};
    }
    const unsigned threads = std::max(1u, s.pool.threads);
    nlohmann::json out{
        {"mode", to_string(config_.workers.mode)},
        {"seeded", seeded_},
        {"pool", {{"target", s.pool.target}, {"threads", s.pool.threads}}},
        {"bounds",
         {{"min", config_.workers.min},
          {"max", config_.workers.max},
          {"threads", threads_min()},
          {"threads_max", threads_max()}}},
        {"need", to_json(last_need_)},
        {"signals", to_json(last_signals_)},
        {"memory",
         {{"ceiling_workers", ceiling(s, threads).memory_ceiling},
          {"ceiling_by_threads", ceilings},
          {"per_process_by_threads", estimates},
          {"measured", memory_.to_json()}}},
        {"cpu", knee_.to_json()},
        {"scale_down", scale_down_.to_json(s.taken_at)},
    };
    out["memory"]["hold_remaining_s"] =
        memory_hold_until_ && *memory_hold_until_ > s.taken_at
            ? nlohmann::json(
                  std::chrono::duration<double>(*memory_hold_until_ - s.taken_at).count())
            : nlohmann::json(0);
    out["max_processes_by_db"] =
        max_processes_by_db_ ? nlohmann::json(*max_processes_by_db_) : nlohmann::json();
    if (last_proposal_) {
        out["target"] = {{"workers", last_proposal_->workers},
                         {"threads", last_proposal_->threads},
                         {"rule", last_proposal_->rule},
                         {"reason", last_proposal_->reason}};
    } else {
        out["target"] = {{"workers", s.pool.target}, {"threads", s.pool.threads}};
    }
    return out;
}

}  // namespace tuner::policies
