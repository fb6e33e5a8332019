// Decisions as JSON (see json.hpp).
#include "tuner/decision_log/json.hpp"

#include "tuner/decision_log/timestamps.hpp"

namespace tuner {

namespace {

nlohmann::json value_json(const KnobValue& v) {
    if (const auto* c = std::get_if<Count>(&v)) return c->value;
    if (const auto* b = std::get_if<ByteSize>(&v)) return b->bytes;
    if (const auto* s = std::get_if<Seconds>(&v)) return s->value;
    if (const auto* t = std::get_if<Text>(&v)) return t->value;
    return nullptr;
}

}  // namespace

nlohmann::json decision_json(const Decision& d) {
    nlohmann::json inputs = nlohmann::json::object();
    if (!d.inputs_json.empty()) {
        inputs = nlohmann::json::parse(d.inputs_json, nullptr, false);
        if (inputs.is_discarded()) inputs = d.inputs_json;
    }
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(d.time.time_since_epoch()).count();
    return {{"id", d.id},
            {"time", format_rfc3339_ms(d.time)},
            {"time_unix_ms", ms},
            {"plan_id", d.plan_id},
            {"subsystem", d.subsystem},
            {"knob", d.knob},
            {"value_type", value_type(d.new_value.index() ? d.new_value : d.old_value)},
            {"old", value_json(d.old_value)},
            {"new", value_json(d.new_value)},
            {"rule", d.rule},
            {"reason", d.reason},
            {"outcome", to_string(d.outcome)},
            {"error", d.error},
            {"inputs", inputs}};
}

nlohmann::json plan_json(const Plan& plan) {
    nlohmann::json decisions = nlohmann::json::array();
    for (const auto& d : plan.decisions) decisions.push_back(decision_json(d));
    return {{"plan_id", plan.plan_id}, {"decisions", decisions}, {"notes", plan.notes}};
}

}  // namespace tuner
