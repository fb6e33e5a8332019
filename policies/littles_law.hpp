// Little's-law sizing: how many processes of `threads` concurrent requests each carry the load at
// the target utilisation. Sources: J. D. C. Little, "A Proof for the Queuing Formula: L = λW"
// (Operations Research 9(3), 1961); the utilisation target: Google SRE book, ch. 21.
#pragma once

#include <nlohmann/json.hpp>

#include "policies/worker_signals.hpp"

namespace tuner::policies {

struct WorkerNeed {
    double target_utilisation = 0.8;
    double load_concurrency = 0;    // λ × S: requests in service on average (L = λW)
    double demand_concurrency = 0;  // in service + waiting; a closed loop's client count
    unsigned littles_law = 0;       // ceil(λ × S / (threads × u))
    unsigned demand = 0;            // ceil(demand concurrency / (threads × u))
    unsigned workers = 0;           // the larger of both
    bool queue_driven = false;      // the standing queue, not λ, set the answer

    // The concurrency the pool must carry at the target utilisation (requests, not processes).
    [[nodiscard]] double slots() const;
};

// Processes of `threads` each that carry `concurrency` requests at utilisation u.
unsigned processes_for(double concurrency, unsigned threads, double target_utilisation);

WorkerNeed worker_need(const WorkerSignals& signals, unsigned threads, double target_utilisation);

nlohmann::json to_json(const WorkerNeed& need);

}  // namespace tuner::policies
