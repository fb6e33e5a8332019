// What the control loop publishes after each cycle: the one picture that /performance, /health
// and /metrics read. Its own header, so the readers compile against this plain data and not
// against the prober, the controller or the loop.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "model/decision.hpp"
#include "model/snapshot.hpp"
#include "policies/capacity_saturation.hpp"
#include "policies/seed_formula.hpp"

namespace tuner {

// What the last cycle saw and decided: the source of /performance, /health and /metrics.
struct ControlView {
    Snapshot snapshot;
    policies::SeedInputs seed_inputs;
    policies::SeedResult seed;  // the memory ceiling the controller enforces (its estimate)
    policies::CapacitySaturation saturation;               // the wish over what this node allows
    nlohmann::json controller = nlohmann::json::object();  // WorkerController::explain()
    nlohmann::json database = nullptr;  // DatabaseTuner::explain(), null when no database
    Plan last_plan;
    std::uint64_t cycles = 0;
    double last_cycle_ms = 0;  // how long the cycle took (probes + policies)
    bool valid = false;        // false until the first cycle
};

}  // namespace tuner
