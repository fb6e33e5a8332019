// apply() (see apply.hpp).
#include "tuner/control/apply.hpp"

#include <spdlog/spdlog.h>

#include "model/log_text.hpp"

namespace tuner {

namespace {

constexpr std::string_view kPoolSizeKnob = "workers.count";

void log_decision(const Decision& d) {
    const auto level = d.outcome == Outcome::failed ? spdlog::level::warn : spdlog::level::info;
    spdlog::log(level,
                "event=decision knob={} old={} new={} rule={} outcome={} plan={} reason={}{}",
                d.knob, log_quote(to_string(d.old_value)), log_quote(to_string(d.new_value)),
                d.rule, to_string(d.outcome), d.plan_id, log_quote(d.reason),
                d.error.empty() ? "" : " error=" + log_quote(d.error));
}

}  // namespace

Applier::Applier(DecisionLog& log, bool dry_run, Observer observer)
    : log_(log), observer_(std::move(observer)), dry_run_(dry_run) {}

bool Applier::repeats_last_locked(const Decision& d) const {
    auto it = last_inactive_.find(d.knob);
    return it != last_inactive_.end() && it->second.first == d.new_value &&
           it->second.second == d.outcome;
}

Decision Applier::apply(Decision d, const Action& act, bool force) {
    bool acts = true;
    {
        std::lock_guard lock(mutex_);
        if (d.knob == kPoolSizeKnob && manual_target_ && d.rule != "manual") {
            d.outcome = Outcome::overridden;
            d.reason += "; overridden: the pool is pinned at " + std::to_string(*manual_target_) +
                        " by a manual target";
            acts = false;
        } else if (dry_run_ && !force) {
            d.outcome = Outcome::dry_run;
            acts = false;
        }
        if (!acts) {
            if (repeats_last_locked(d)) {
                d.outcome = Outcome::unchanged;
                d.id = 0;
                return d;
            }
            last_inactive_[d.knob] = {d.new_value, d.outcome};
        } else {
            last_inactive_.erase(d.knob);
        }
    }
    if (!acts) {
        d.id = log_.record(d);
        log_decision(d);
        if (observer_) observer_(d);
        return d;
    }
    // Record first, so a crash while acting still leaves the intent in the log.
    d.outcome = Outcome::pending;
    d.id = log_.record(d);
    const Status result = act ? act() : Status{};
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
    d.id = log_.record(d);
    log_decision(d);
    if (observer_) observer_(d);
    return d;
}

void Applier::set_manual_target(std::optional<unsigned> target) {
    std::lock_guard lock(mutex_);
    manual_target_ = target;
    last_inactive_.erase(std::string(kPoolSizeKnob));
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
