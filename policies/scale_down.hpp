// Scale-down with hysteresis: shrink only after `scale_down_cooldown` in which the pool ran below
// a dead band under its target utilisation, towards the largest recommendation of that period,
// half the gap per step. Source: the Kubernetes HPA scale-down stabilization window (KEP-853),
// https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/
#pragma once

#include <deque>
#include <optional>

#include <nlohmann/json.hpp>

#include "model/units.hpp"

namespace tuner::policies {

// Shrinking starts below this fraction of the target utilisation. A ±20 % swing of the load
// spans 0.8 / 1.2 = 0.67 of its peak, so a pool sized at a peak stays inside the band.
inline constexpr double kShrinkBand = 0.65;

class ScaleDownGovernor {
public:
    struct Step {
        unsigned to = 0;
        unsigned recommendation = 0;  // the largest of the cooldown: where the steps head
        double low_for_s = 0;         // how long the pool has run below the band
    };

    ScaleDownGovernor(Duration cooldown, Duration step_dwell);
    void reconfigure(Duration cooldown, Duration step_dwell);

    // One cycle. `recommendation`: processes at the target utilisation; `stay`: the smallest pool
    // that would run inside the dead band (recommendation / kShrinkBand before rounding).
    // `floor`: the lowest size allowed. Returns a step when one is due.
    std::optional<Step> propose(Clock::time_point now, unsigned current, unsigned recommendation,
                                double stay, unsigned floor);

    // The pool changed size (observed): growth restarts the cooldown, a step restarts the dwell.
    void on_resize(Clock::time_point now, unsigned from, unsigned to);

    [[nodiscard]] nlohmann::json to_json(Clock::time_point now) const;

private:
    struct Entry {
        Clock::time_point at;
        unsigned recommendation = 0;
    };

    Duration cooldown_;
    Duration step_dwell_;
    std::deque<Entry> history_;
    std::optional<Clock::time_point> low_since_;
    std::optional<Clock::time_point> last_growth_;
    std::optional<Clock::time_point> last_step_;
};

}  // namespace tuner::policies
