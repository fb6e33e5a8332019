// apply(): the one function through which every change reaches the world (DESIGN "Data flow").
// Each knob of model/knobs.hpp has one actuator, registered by the daemon (bpftune's one write
// function per tunable). apply() records the decision first, then acts through the knob's
// actuator, then records the outcome; in dry-run mode, or for the pool size while an admin pins
// it, it records without acting, and does not record the same decision again while nothing
// changes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "model/decision.hpp"
#include "model/knobs.hpp"
#include "model/result.hpp"
#include "tuner/decision_log/log.hpp"

namespace tuner {

class Applier {
public:
    // Changes one knob to the decision's new value; an Error becomes outcome "failed".
    using Actuator = std::function<Status(const Decision&)>;
    // Told about every decision that was recorded (metrics count them).
    using Observer = std::function<void(const Decision&)>;

    Applier(DecisionLog& log, bool dry_run, Observer observer = {});

    // The actuator of a knob (a family knob: of every member). Set before decisions arrive.
    void set_actuator(const Knob& knob, Actuator actuator);

    // Record, act through the knob's actuator, record the outcome. Returns the decision as
    // recorded (id, outcome), or with outcome "unchanged" and id 0 when it repeated the last
    // recorded one and was not recorded. `force`: act even in dry-run mode. A knob without an
    // actuator fails ("no actuator for this knob").
    Decision apply(Decision decision, bool force = false);

    // A decision already carried out elsewhere (the PostgreSQL thread, a config reload, the
    // pool's start) is only recorded.
    Decision record_done(Decision decision);

    // An administrator pins workers.count at `target` (POST /workers/target): the pin and the
    // resize happen together, so no control cycle can resize between them. While pinned, the
    // controller's decisions on workers.count are recorded as "overridden" and not acted on.
    // Acts in dry-run mode too: the admin asked for exactly this.
    Decision pin_workers(Decision decision, unsigned target);
    // Hands the pool back to the policies (DELETE /workers/target, a config reload).
    Decision release_workers(Decision decision);
    [[nodiscard]] std::optional<unsigned> manual_target() const;

    void set_dry_run(bool dry_run);
    [[nodiscard]] bool dry_run() const;

    // Plan ids of this run: every plan (a controller cycle, a manual target, a reload) takes one.
    std::uint64_t next_plan_id();

private:
    enum class Gate { act, dry_run, overridden };
    Gate gate_locked(const Decision& d, bool force) const;
    bool repeats_last_locked(const Decision& d) const;
    Decision record_without_acting(Decision d);
    Decision record_and_act(Decision d);
    const Actuator* actuator_for(const Decision& d) const;

    DecisionLog& log_;
    Observer observer_;
    // Held from the override check through the act, so a manual pin and a controller resize
    // never interleave (a resize decided before the pin cannot land after it).
    std::recursive_mutex act_mutex_;
    mutable std::mutex mutex_;  // the state below
    bool dry_run_;
    std::optional<unsigned> manual_target_;
    std::map<std::string, Actuator, std::less<>> actuators_;  // by knob name, or subsystem
    // Per knob, the last decision recorded with an outcome that did not act (dry run,
    // overridden): an identical one is not recorded again.
    std::map<std::string, std::pair<KnobValue, Outcome>> last_inactive_;
    std::uint64_t plan_ids_ = 0;
};

}  // namespace tuner
