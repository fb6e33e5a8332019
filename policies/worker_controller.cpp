// The worker controller's cycle: modes, rule precedence, decisions and explain() (see
// worker_controller.hpp; the adaptive rules are in worker_rules.cpp, each rule's formula and
// source in docs/policies.md and the registry).
#include "policies/worker_controller.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "model/knobs.hpp"
#include "policies/registry.hpp"
#include "policies/seed_formula.hpp"
#include "policies/worker_cycle.hpp"

namespace tuner::policies {
namespace {

// Scale-down steps are at least this far apart (a fraction of scale_down_cooldown), so each
// step's effect is seen before the next.
constexpr int kStepsPerCooldown = 6;

Duration step_dwell(const PolicyConfig& policy) {
    return std::max(policy.interval, policy.scale_down_cooldown / kStepsPerCooldown);
}

}  // namespace

using cycle_text::workers_text;

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

SeedInputs WorkerController::ceiling_inputs(const Snapshot& snapshot) const {
    const unsigned threads = std::max(1u, snapshot.pool.threads);
    return seed_inputs_with_estimate(snapshot, config_, memory_.estimate(threads, config_.workers));
}

unsigned WorkerController::process_cap(const Snapshot& snapshot, unsigned threads) const {
    unsigned cap = ceiling(snapshot, threads).memory_ceiling;
    if (max_processes_by_db_) cap = std::min(cap, std::max(1u, *max_processes_by_db_));
    return std::max(1u, cap);
}

std::optional<unsigned> WorkerController::max_processes(const Snapshot& snapshot,
                                                        unsigned threads) const {
    const MemoryInfo& m = snapshot.memory;
    const std::uint64_t line = m.line_bytes();
    if (line == 0) return std::nullopt;
    threads = std::max(1u, threads);
    const std::uint64_t usable = line - std::min(line, memory_headroom_bytes(line));
    // The workers' share of it by what each costs (worker_cost_bytes: PSS, or private pages when
    // preloaded): a sum of RSS counts the pages they share (a preloaded app's copy-on-write heap,
    // the interpreter) once per worker, and so hides as much of what else the cgroup holds.
    std::uint64_t workers_bytes = 0;
    for (const auto& [id, tree] : snapshot.worker_trees)
        workers_bytes += worker_cost_bytes(tree, config_.workers.uses_preload());
    const std::uint64_t held = m.unreclaimable_bytes();  // as memory_pressure counts it
    // tunerd and the rest, plus the micro-cache's capacity it does not hold yet.
    const std::uint64_t others =
        (held > workers_bytes ? held - workers_bytes : 0) + snapshot.cache.room_bytes();
    const auto per = memory_.estimate(threads, config_.workers);
    const auto fit = static_cast<unsigned>((usable - std::min(usable, others)) /
                                           std::max<std::uint64_t>(1, per.bytes));
    return std::max(1u, std::min(ceiling(snapshot, threads).memory_ceiling, fit));
}

Plan WorkerController::decide(const Snapshot& snapshot) {
    const Clock::time_point now = snapshot.taken_at;
    if (seen_target_ && (snapshot.pool.target != *seen_target_ ||
                         snapshot.pool.threads != seen_threads_.value_or(snapshot.pool.threads))) {
        scale_down_.on_resize(now, *seen_target_, snapshot.pool.target);
        resized_at_ = now;
    }
    if (seen_threads_ && snapshot.pool.threads != *seen_threads_) threads_changed_at_ = now;
    seen_target_ = snapshot.pool.target;
    seen_threads_ = snapshot.pool.threads;

    std::vector<std::pair<std::string, std::string>> notes;
    Cycle c(snapshot);
    c.notes = &notes;
    c.current = snapshot.pool.target;
    c.threads = std::max(1u, snapshot.pool.threads);
    c.signals = signals_.update(snapshot);
    memory_.observe(snapshot, config_.workers.uses_preload());
    c.knee = knee_.observe(snapshot, c.signals);
    c.need =
        worker_need(c.signals, c.threads, c.current * c.threads, config_.policy.target_utilisation);
    if (c.need.queue == QueueState::none) {
        queue_since_.reset();
    } else if (!queue_since_) {
        queue_since_ = now;
    }
    if (!c.signals.has_traffic || c.signals.arrival_recent_rps.value_or(1) <= 0) {
        traffic_since_.reset();
    } else if (!traffic_since_) {
        traffic_since_ = now;
    }
    c.estimate = memory_.estimate(c.threads, config_.workers);
    c.ceiling = seed_with_estimate(snapshot, config_, c.estimate);
    c.cap = process_cap(snapshot, c.threads);
    c.lo = std::min(std::max(1u, config_.workers.min), c.cap);
    c.hi = std::min(config_.workers.max, c.cap);
    saturation_ = capacity_saturation(wanted_workers(config_.workers.mode, c.need.workers,
                                                     c.ceiling.cpu_workers, config_.workers.count),
                                      c.cap, config_.workers.max);

    if (c.knee.released)
        notes.emplace_back("knee_released", "cpu_knee released: " + *c.knee.released);
    if (snapshot.pool.manual_target) {
        notes.emplace_back("manual",
                           fmt::format("manual target {} pins the pool: decisions are overridden",
                                       *snapshot.pool.manual_target));
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
    auto decision = [&](const Knob& knob, std::int64_t old_value, std::int64_t new_value) {
        Decision d = make_decision(knob, s.taken_at_wall, Count{old_value}, Count{new_value},
                                   {proposal->rule, proposal->reason, inputs_json});
        d.plan_id = plan.plan_id;
        return d;
    };
    if (workers_change)
        plan.decisions.push_back(decision(knob::workers_count, c.current, proposal->workers));
    if (threads_change)
        plan.decisions.push_back(decision(knob::workers_threads, c.threads, proposal->threads));
    return plan;
}

// ---- modes ------------------------------------------------------------------------------

std::optional<WorkerController::Proposal> WorkerController::seed(const Cycle& c) {
    seeded_ = true;
    const unsigned threads = std::clamp(c.threads, threads_min(), threads_max());
    const SeedResult r = ceiling(c.snapshot, threads);
    Proposal p{r.workers,
               threads,
               std::string(rule::seed_formula),
               r.reason,
               {{"cpu_workers", r.cpu_workers}, {"memory_ceiling", r.memory_ceiling}}};
    if (!memory_.estimate(threads, config_.workers).measured) {
        // Nothing measured yet: start only what fits even if memory_per_worker is a guess off by
        // kUnknownMemoryFactor; the pool grows once a worker's tree has been measured.
        const unsigned proven =
            proven_to_fit(r.budget_bytes, config_.workers.memory_per_worker_bytes);
        if (proven < p.workers) {
            p.workers = std::max(1u, proven);
            p.reason += fmt::format(
                "; start {} until a worker is measured ({} budget holds {} processes of {}× "
                "memory_per_worker {})",
                workers_text(p.workers), format_size_approx(r.budget_bytes), proven,
                text::number(kUnknownMemoryFactor),
                format_size_approx(config_.workers.memory_per_worker_bytes));
        }
        p.inputs["proven_to_fit"] =
            proven_to_fit(r.budget_bytes, config_.workers.memory_per_worker_bytes);
    }
    return p;
}

std::optional<WorkerController::Proposal> WorkerController::decide_fixed(const Cycle& c) {
    seeded_ = true;  // a later switch to adaptive starts from the pool as it is
    const auto& w = config_.workers;
    const unsigned target = std::clamp(w.count, std::min(w.min, w.max), w.max);
    const unsigned threads = threads_min();
    if (target == c.current && threads == c.threads) return std::nullopt;
    Proposal p{target, threads, std::string(rule::fixed), "", nlohmann::json::object()};
    p.reason = fmt::format("mode = fixed: workers.count {}, threads {}", w.count, threads);
    const unsigned cap = process_cap(c.snapshot, threads);
    if (target > cap) {
        p.reason += fmt::format(
            "; WARNING: above the memory ceiling {} ({} budget / {} per worker): the operator's "
            "choice is honoured, workers may be OOM-killed",
            cap, format_size_approx(c.ceiling.budget_bytes),
            format_size_approx(memory_.estimate(threads, w).bytes));
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
    if (pressure_mark_) {
        out["memory"]["pressure_mark"] = {
            {"processes", pressure_mark_->processes},
            {"per_process_bytes", pressure_mark_->per_process_bytes},
            {"line_bytes", pressure_mark_->line_bytes},
            {"age_s", std::chrono::duration<double>(s.taken_at - pressure_mark_->at).count()}};
    } else {
        out["memory"]["pressure_mark"] = nullptr;
    }
    out["max_processes_by_db"] =
        max_processes_by_db_ ? nlohmann::json(*max_processes_by_db_) : nlohmann::json();
    out["saturation"] = to_json(saturation_);
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
