// Little's-law sizing: how many processes of `threads` concurrent requests each carry the load at
// the target utilisation, from the smoothed arrival rate and, when a queue stands or moves, from
// the queue. Sources: J. D. C. Little, "A Proof for the Queuing Formula: L = λW" (Operations
// Research 9(3), 1961); the utilisation target: Google SRE book, ch. 21 "Handling Overload".
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "policies/worker_signals.hpp"

namespace tuner::policies {

// A backlog is sized to be served within this time on top of the arrivals (not all at once, so
// a burst does not buy a pool that idles once it is served).
inline constexpr double kBacklogDrainS = 10;

enum class QueueState {
    none,      // no queue worth sizing for
    growing,   // arrivals outrun completions (open-loop overload): λ_recent plus the backlog
    standing,  // arrivals match completions with a queue (a closed loop, or at capacity)
    draining,  // completions outrun arrivals: the backlog shrinks; sized like a growing one
};
const char* to_string(QueueState state);

struct WorkerNeed {
    double target_utilisation = 0.8;
    double load_concurrency = 0;  // λ × S from the window: requests in service (L = λW)
    QueueState queue = QueueState::none;
    double queue_concurrency = 0;  // what the queue calls for (see QueueState), requests
    unsigned littles_law = 0;      // ceil(λ × S / (threads × u))
    unsigned queue_workers = 0;    // ceil(queue concurrency / (threads × u))
    unsigned workers = 0;          // the larger of both
    bool queue_driven = false;     // the queue, not λ, set the answer

    // The concurrency the pool must carry at the target utilisation (requests, not processes).
    [[nodiscard]] double slots() const;
};

// Processes of `threads` each that carry `concurrency` requests at utilisation u.
unsigned processes_for(double concurrency, unsigned threads, double target_utilisation);

// `slots_now`: the pool's concurrency (processes × threads), to judge whether a queue matters.
WorkerNeed worker_need(const WorkerSignals& signals, unsigned threads, unsigned slots_now,
                       double target_utilisation);

// "queue standing: 59 waiting + 5 in flight → 64 concurrent" and the like, with the numbers.
std::string queue_text(const WorkerSignals& signals, const WorkerNeed& need);

nlohmann::json to_json(const WorkerNeed& need);

}  // namespace tuner::policies
