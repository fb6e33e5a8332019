// Little's-law sizing (see littles_law.hpp).
#include "policies/littles_law.hpp"

#include <algorithm>
#include <cmath>

namespace tuner::policies {

double WorkerNeed::slots() const {
    return std::max(load_concurrency, demand_concurrency) / target_utilisation;
}

unsigned processes_for(double concurrency, unsigned threads, double target_utilisation) {
    if (concurrency <= 0) return 0;
    const double per_process = std::max(1u, threads) * std::max(0.01, target_utilisation);
    // The epsilon keeps an exact 20.0 from becoming 21 through rounding noise.
    return static_cast<unsigned>(std::min(1e6, std::ceil(concurrency / per_process - 1e-9)));
}

WorkerNeed worker_need(const WorkerSignals& signals, unsigned threads, double target_utilisation) {
    WorkerNeed n;
    n.target_utilisation = std::clamp(target_utilisation, 0.01, 1.0);
    n.load_concurrency = signals.arrival_rps * signals.service_mean_ms / 1000.0;
    n.demand_concurrency = signals.demand_concurrency;
    n.littles_law = processes_for(n.load_concurrency, threads, n.target_utilisation);
    n.demand = processes_for(n.demand_concurrency, threads, n.target_utilisation);
    n.workers = std::max(n.littles_law, n.demand);
    n.queue_driven = n.demand > n.littles_law;
    return n;
}

nlohmann::json to_json(const WorkerNeed& need) {
    return {{"target_utilisation", need.target_utilisation},
            {"load_concurrency", need.load_concurrency},
            {"demand_concurrency", need.demand_concurrency},
            {"littles_law_workers", need.littles_law},
            {"demand_workers", need.demand},
            {"needed_workers", need.workers}};
}

}  // namespace tuner::policies
