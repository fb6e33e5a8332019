// Scale-down stabilization and steps (see scale_down.hpp).
#include "policies/scale_down.hpp"

#include <algorithm>

namespace tuner::policies {
namespace {

double seconds_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

}  // namespace

ScaleDownGovernor::ScaleDownGovernor(Duration cooldown, Duration step_dwell)
    : cooldown_(cooldown), step_dwell_(step_dwell) {}

void ScaleDownGovernor::reconfigure(Duration cooldown, Duration step_dwell) {
    cooldown_ = cooldown;
    step_dwell_ = step_dwell;
}

std::optional<ScaleDownGovernor::Step> ScaleDownGovernor::propose(Clock::time_point now,
                                                                  unsigned current,
                                                                  unsigned recommendation,
                                                                  double stay, unsigned floor) {
    history_.push_back({now, recommendation});
    while (!history_.empty() && now - history_.front().at > cooldown_) history_.pop_front();

    const bool below_band = static_cast<double>(current) > stay && recommendation < current;
    if (recommendation >= current) shrinking_ = false;  // the load came back: stop
    if (!below_band) {
        low_since_.reset();
    } else if (!low_since_) {
        low_since_ = now;
    }
    if (!shrinking_) {
        if (!low_since_ || now - *low_since_ < cooldown_) return std::nullopt;
        if (last_growth_ && now - *last_growth_ < cooldown_) return std::nullopt;
    }
    if (last_step_ && now - *last_step_ < step_dwell_) return std::nullopt;

    Step step;
    for (const auto& e : history_)
        step.recommendation = std::max(step.recommendation, e.recommendation);
    step.recommendation = std::max(step.recommendation, floor);
    if (step.recommendation >= current) return std::nullopt;
    const unsigned gap = current - step.recommendation;
    step.to = current - std::max(1u, (gap + 1) / 2);
    step.low_for_s = low_since_ ? seconds_between(*low_since_, now) : 0;
    shrinking_ = true;
    return step;
}

void ScaleDownGovernor::on_resize(Clock::time_point now, unsigned from, unsigned to) {
    if (to > from) {
        last_growth_ = now;
        low_since_.reset();
        shrinking_ = false;
    } else if (to < from) {
        last_step_ = now;
    }
}

nlohmann::json ScaleDownGovernor::to_json(Clock::time_point now) const {
    nlohmann::json j{{"cooldown_s", to_seconds(cooldown_)},
                     {"step_dwell_s", to_seconds(step_dwell_)}};
    j["low_for_s"] =
        low_since_ ? nlohmann::json(seconds_between(*low_since_, now)) : nlohmann::json();
    j["since_growth_s"] =
        last_growth_ ? nlohmann::json(seconds_between(*last_growth_, now)) : nlohmann::json();
    j["since_step_s"] =
        last_step_ ? nlohmann::json(seconds_between(*last_step_, now)) : nlohmann::json();
    unsigned largest = 0;
    for (const auto& e : history_) largest = std::max(largest, e.recommendation);
    j["largest_recommendation"] = largest;
    j["shrinking"] = shrinking_;
    return j;
}

}  // namespace tuner::policies
