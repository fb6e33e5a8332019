// Scale-down with hysteresis: start shrinking only after `scale_down_cooldown` in which the pool
// ran below a dead band under its target utilisation; then step towards the largest
// recommendation of the last cooldown, half the gap per step, until it is reached. Source: the
// Kubernetes HPA scale-down stabilization window (KEP-853),
// https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/
#pragma once

#include <deque>
#include <optional>

#include <nlohmann/json.hpp>

#include "model/units.hpp"

namespace tuner::policies {

// Shrinking starts below this fraction of the target utilisation (HPA's 10 % tolerance, a little
// wider): the window's own sampling noise (a few %) never crosses it, while a pool a fifth too
// large for its load does. The stabilization window absorbs bursts.
inline constexpr double kShrinkBand = 0.85;

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
    // Entered after a cooldown below the band; then steps go on, each a dwell apart, until the
    // pool reaches the recommendation (so the band decides when to start, not where to stop).
    bool shrinking_ = false;
};

}  // namespace tuner::policies
