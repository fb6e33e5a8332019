// apply(): the one function through which every change reaches the world (DESIGN "Data flow").
// It records the decision first, then acts, then records the outcome; in dry-run mode, or for
// the pool size while an admin pins it, it records without acting, and does not record the
// same decision again while nothing changes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "model/decision.hpp"
#include "model/result.hpp"
#include "tuner/decision_log/log.hpp"

namespace tuner {

class Applier {
public:
    // What acting means for one decision; an Error becomes outcome "failed" with its text.
    using Action = std::function<Status()>;
    // Told about every decision that was recorded (metrics count them).
    using Observer = std::function<void(const Decision&)>;

    Applier(DecisionLog& log, bool dry_run, Observer observer = {});

    // Record, act, record the outcome. Returns the decision as recorded (id, outcome), or with
    // outcome "unchanged" and id 0 when it repeated the last recorded one and was not recorded.
    // `force`: act even in dry-run mode (the pool's starting size must exist).
    Decision apply(Decision decision, const Action& act, bool force = false);

    // A decision already carried out elsewhere (the PostgreSQL thread reports its own).
    Decision record_done(Decision decision);

    // The admin's manual target for workers.count; while set the controller's decisions on that
    // knob are recorded as "overridden" and not acted on.
    void set_manual_target(std::optional<unsigned> target);
    [[nodiscard]] std::optional<unsigned> manual_target() const;

    void set_dry_run(bool dry_run);
    [[nodiscard]] bool dry_run() const;

    // Plan ids of this run: every plan (a controller cycle, a manual target, a reload) takes one.
    std::uint64_t next_plan_id();

private:
    bool repeats_last_locked(const Decision& d) const;

    DecisionLog& log_;
    Observer observer_;
    mutable std::mutex mutex_;
    bool dry_run_;
    std::optional<unsigned> manual_target_;
    // Per knob, the last decision recorded with an outcome that did not act (dry run,
    // overridden): an identical one is not recorded again.
    std::map<std::string, std::pair<KnobValue, Outcome>> last_inactive_;
    std::uint64_t plan_ids_ = 0;
};

}  // namespace tuner
