// apply() (see apply.hpp).
#include "tuner/control/apply.hpp"

#include <spdlog/spdlog.h>

#include "model/log_text.hpp"

namespace tuner {

namespace {

void log_decision(const Decision& d) {
    const auto level = d.outcome == Outcome::failed ? spdlog::level::warn : spdlog::level::info;
    spdlog::log(level,
                "event=decision knob={} old={} new={} rule={} outcome={} plan={} reason={}{}",
                d.knob, log_quote(to_string(d.old_value)), log_quote(to_string(d.new_value)),
                d.rule, to_string(d.outcome), d.plan_id, log_quote(d.reason),
                d.error.empty() ? "" : " error=" + log_quote(d.error));
}

std::string actuator_key(const Knob& k) {
    return k.family ? "family:" + std::string(k.subsystem) : std::string(k.name);
}

}  // namespace

Applier::Applier(DecisionLog& log, bool dry_run, Observer observer)
    : log_(log), observer_(std::move(observer)), dry_run_(dry_run) {}

void Applier::set_actuator(const Knob& knob, Actuator actuator) {
    std::lock_guard lock(mutex_);
    actuators_[actuator_key(knob)] = std::move(actuator);
}

const Applier::Actuator* Applier::actuator_for(const Decision& d) const {
    const Knob* k = knob::find(d.knob, d.subsystem);
    if (!k) return nullptr;
    std::lock_guard lock(mutex_);
    const auto it = actuators_.find(actuator_key(*k));
    return it == actuators_.end() ? nullptr : &it->second;
}

bool Applier::repeats_last_locked(const Decision& d) const {
    auto it = last_inactive_.find(d.knob);
    return it != last_inactive_.end() && it->second.first == d.new_value &&
           it->second.second == d.outcome;
}

Applier::Gate Applier::gate_locked(const Decision& d, bool force) const {
    if (moves(d, knob::workers_count) && manual_target_) return Gate::overridden;
    if (dry_run_ && !force) return Gate::dry_run;
    return Gate::act;
}

Decision Applier::apply(Decision d, bool force) {
    std::lock_guard act_lock(act_mutex_);
    Gate gate;
    {
        std::lock_guard lock(mutex_);
        gate = gate_locked(d, force);
        if (gate == Gate::act) last_inactive_.erase(d.knob);
    }
    if (gate == Gate::act) return record_and_act(std::move(d));
    if (gate == Gate::overridden) {
        d.outcome = Outcome::overridden;
        d.reason += "; overridden: the pool is pinned at " + std::to_string(*manual_target()) +
                    " by a manual target";
    } else {
        d.outcome = Outcome::dry_run;
    }
    {
        std::lock_guard lock(mutex_);
        if (repeats_last_locked(d)) {
            d.outcome = Outcome::unchanged;
            d.id = 0;
            return d;
        }
        last_inactive_[d.knob] = {d.new_value, d.outcome};
    }
    return record_without_acting(std::move(d));
}

Decision Applier::record_without_acting(Decision d) {
    d.id = log_.record(d);
    log_decision(d);
    if (observer_) observer_(d);
    return d;
}

Decision Applier::record_and_act(Decision d) {
    // Record first, so a crash while acting still leaves the intent in the log.
    d.outcome = Outcome::pending;
    d.id = log_.record(d);
    const Actuator* act = actuator_for(d);
    const Status result = act ? (*act)(d) : Status{make_error(d.knob, "no actuator for this knob")};
    if (result.ok()) {
        d.outcome = Outcome::applied;
    } else {
        d.outcome = Outcome::failed;
        d.error = result.error().to_string();
    }
    log_.record_outcome(d.id, d.outcome, d.error);
    log_decision(d);
    if (observer_) observer_(d);
    return d;
}

Decision Applier::record_done(Decision d) {
    return record_without_acting(std::move(d));
}

Decision Applier::pin_workers(Decision d, unsigned target) {
    std::lock_guard act_lock(act_mutex_);
    {
        std::lock_guard lock(mutex_);
        manual_target_ = target;
        last_inactive_.erase(std::string(knob::workers_count.name));
    }
    return record_and_act(std::move(d));
}

Decision Applier::release_workers(Decision d) {
    std::lock_guard act_lock(act_mutex_);
    {
        std::lock_guard lock(mutex_);
        manual_target_.reset();
        last_inactive_.erase(std::string(knob::workers_count.name));
    }
    d.outcome = Outcome::applied;
    return record_without_acting(std::move(d));
}

std::optional<unsigned> Applier::manual_target() const {
    std::lock_guard lock(mutex_);
    return manual_target_;
}

void Applier::set_dry_run(bool dry_run) {
    std::lock_guard lock(mutex_);
    dry_run_ = dry_run;
    last_inactive_.clear();
}

bool Applier::dry_run() const {
    std::lock_guard lock(mutex_);
    return dry_run_;
}

std::uint64_t Applier::next_plan_id() {
    std::lock_guard lock(mutex_);
    return ++plan_ids_;
}

}  // namespace tuner
