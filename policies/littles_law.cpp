// Little's-law sizing (see littles_law.hpp).
#include "policies/littles_law.hpp"

#include <algorithm>
#include <cmath>

#include "policies/reason_text.hpp"

namespace tuner::policies {
namespace {

// A queue matters from this many waiting requests, and from this share of the pool's slots:
// single requests waiting a moment are what random arrivals do at any healthy utilisation.
constexpr double kQueueMinRequests = 2;
constexpr double kQueueMinShareOfSlots = 0.25;
// Arrivals and completions within this fraction of each other: the queue stands.
constexpr double kBalance = 0.1;

}  // namespace

const char* to_string(QueueState state) {
    switch (state) {
        case QueueState::none:
            return "none";
        case QueueState::growing:
            return "growing";
        case QueueState::standing:
            return "standing";
        case QueueState::draining:
            return "draining";
    }
    return "?";
}

double WorkerNeed::slots() const {
    return std::max(load_concurrency, queue_concurrency) / target_utilisation;
}

unsigned processes_for(double concurrency, unsigned threads, double target_utilisation) {
    if (concurrency <= 0) return 0;
    const double per_process = std::max(1u, threads) * std::max(0.01, target_utilisation);
    // The epsilon keeps an exact 20.0 from becoming 21 through rounding noise.
    return static_cast<unsigned>(std::min(1e6, std::ceil(concurrency / per_process - 1e-9)));
}

WorkerNeed worker_need(const WorkerSignals& s, unsigned threads, unsigned slots_now,
                       double target_utilisation) {
    WorkerNeed n;
    n.target_utilisation = std::clamp(target_utilisation, 0.01, 1.0);
    const double service_s = s.service_mean_ms / 1000.0;
    n.load_concurrency = s.arrival_rps * service_s;

    const double queue_matters =
        std::max(kQueueMinRequests, kQueueMinShareOfSlots * static_cast<double>(slots_now));
    if (!s.arrival_recent_rps || !s.throughput_measured) {
        // Without the front's instant counters only the window's means are known: the demand
        // concurrency (at workers plus waiting) is the best estimate of a standing queue.
        if (s.queue_length_mean >= queue_matters) {
            n.queue = QueueState::standing;
            n.queue_concurrency = s.demand_concurrency;
        }
    } else if (s.queue_now >= queue_matters) {
        const double arrivals = *s.arrival_recent_rps;
        const double completions = s.throughput_rps;
        if (arrivals > completions * (1 + kBalance)) {
            n.queue = QueueState::growing;
        } else if (arrivals < completions * (1 - kBalance)) {
            n.queue = QueueState::draining;
        } else if (s.queue_length_mean >= queue_matters) {
            n.queue = QueueState::standing;  // a balanced queue only stands if it stood all window
        }
        if (n.queue == QueueState::standing) {
            n.queue_concurrency = s.inflight_now + s.queue_now;
        } else if (n.queue != QueueState::none) {
            // Priced at the uncontended service time: a burst of dispatches inflates S for a
            // moment, and sizing on that would buy workers the burst itself created.
            const double uncontended_s =
                s.service_uncontended_ms > 0
                    ? std::min(s.service_uncontended_ms, s.service_mean_ms) / 1000.0
                    : service_s;
            n.queue_concurrency = (arrivals + s.queue_now / kBacklogDrainS) * uncontended_s;
        }
    }
    n.littles_law = processes_for(n.load_concurrency, threads, n.target_utilisation);
    n.queue_workers = processes_for(n.queue_concurrency, threads, n.target_utilisation);
    n.workers = std::max(n.littles_law, n.queue_workers);
    n.queue_driven = n.queue_workers > n.littles_law;
    return n;
}

std::string queue_text(const WorkerSignals& s, const WorkerNeed& n) {
    const std::string waiting = text::number(s.queue_now) + " waiting";
    switch (n.queue) {
        case QueueState::none:
            return "no queue";
        case QueueState::standing:
            return "queue standing: " + waiting + " + " + text::number(s.inflight_now) +
                   " in flight → " + text::number(n.queue_concurrency, 1) + " concurrent";
        case QueueState::growing:
        case QueueState::draining:
            return std::string("queue ") + to_string(n.queue) + ": " + waiting + ", arrivals " +
                   text::rps(s.arrival_recent_rps.value_or(s.arrival_rps)) + " vs served " +
                   text::rps(s.throughput_rps) + " → (arrivals + backlog / " +
                   text::number(kBacklogDrainS) + " s) × S_uncontended " +
                   text::ms(s.service_uncontended_ms) + " = " +
                   text::number(n.queue_concurrency, 1) + " concurrent";
    }
    return "";
}

nlohmann::json to_json(const WorkerNeed& need) {
    return {{"target_utilisation", need.target_utilisation},
            {"load_concurrency", need.load_concurrency},
            {"queue_state", to_string(need.queue)},
            {"queue_concurrency", need.queue_concurrency},
            {"littles_law_workers", need.littles_law},
            {"queue_workers", need.queue_workers},
            {"needed_workers", need.workers}};
}

}  // namespace tuner::policies
