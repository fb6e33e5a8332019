// One control cycle of the worker controller as its rules see it: the snapshot, the signals and
// the need derived from it, the memory ceiling and the bounds. Internal to policies/ (shared by
// worker_controller.cpp and worker_rules.cpp).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "policies/reason_text.hpp"
#include "policies/worker_controller.hpp"

namespace tuner::policies {

namespace cycle_text {

inline std::string workers_text(unsigned n) {
    return fmt::format("{} {}", n, n == 1 ? "worker" : "workers");
}

inline std::string below_min_text(unsigned to, unsigned min_workers) {
    if (to >= min_workers) return "";
    return fmt::format("; below workers.min {}: memory does not allow it", min_workers);
}

}  // namespace cycle_text

struct WorkerController::Cycle {
    explicit Cycle(const Snapshot& s) : snapshot(s), now(s.taken_at) {}

    const Snapshot& snapshot;
    Clock::time_point now;
    unsigned current = 0;  // the pool's target
    unsigned threads = 1;  // the pool's threads per worker
    WorkerSignals signals;
    WorkerNeed need;
    KneeDetector::Event knee;
    ProcessMemoryEstimate estimate;  // per process at the current thread count
    SeedResult ceiling;              // the seed formula at that estimate
    unsigned cap = 1;  // processes memory (the ceiling) and the db budget allow; not workers.max
    unsigned lo = 1;   // workers.min, unless the memory ceiling is lower
    unsigned hi = 1;   // workers.max, unless the memory ceiling is lower
    std::optional<ScaleDownGovernor::Step> step;
    std::vector<std::pair<std::string, std::string>>* notes = nullptr;  // (key, text)

    // "queue wait p95 120 ms; queue growing: ...; λ=310 rps, S=55 ms → need 22 workers at 80 %
    // utilisation": every number the need came from.
    [[nodiscard]] std::string need_text() const {
        const auto& s = signals;
        std::string t;
        if (need.queue_driven) {
            t = "queue wait p95 " + text::ms(s.queue_wait_p95_ms) + "; " + queue_text(s, need) +
                " (λ=" + text::rps(s.arrival_rps) + ", S=" + text::ms(s.service_mean_ms) + ")";
        } else {
            t = "λ=" + text::rps(s.arrival_rps) + ", S=" + text::ms(s.service_mean_ms);
        }
        t += " → need " + cycle_text::workers_text(need.workers);
        if (threads != 1) t += fmt::format(" of {} threads", threads);
        return t + " at " + text::percent(need.target_utilisation) + " utilisation";
    }
};

}  // namespace tuner::policies
