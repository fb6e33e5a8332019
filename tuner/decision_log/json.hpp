// A Decision (and a Plan) as JSON: the one shape /performance, /performance/decisions, the
// admin API's answers and `tunerctl decisions --json` all print (docs/api.md, "The decision").
#pragma once

#include <nlohmann/json.hpp>

#include "model/decision.hpp"

namespace tuner {

// id, time (RFC 3339, ms), time_unix_ms, plan_id, subsystem, knob, value_type, old, new, rule,
// reason, outcome, error, inputs (parsed back into an object).
nlohmann::json decision_json(const Decision& decision);

// plan_id, decisions, notes.
nlohmann::json plan_json(const Plan& plan);

}  // namespace tuner
