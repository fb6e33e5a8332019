// The CPU knee: throughput per pool shape (processes × threads), measured only once a shape is in
// place, and the judgement of each increase. When the CPU quota is saturated and an increase
// added no throughput, more concurrency only queues at the CPU (the TCP Vegas idea behind
// Netflix's concurrency-limits); the pool settles at the smallest shape that reached the best.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "model/snapshot.hpp"
#include "policies/worker_signals.hpp"

namespace tuner::policies {

struct PoolShape {
    unsigned processes = 0;
    unsigned threads = 1;
    [[nodiscard]] unsigned slots() const { return processes * threads; }
    friend auto operator<=>(const PoolShape&, const PoolShape&) = default;
};

// "22 workers" or "2 workers × 8 threads".
std::string to_string(const PoolShape& shape);

// CPU utilisation of the quota at which it counts as saturated (DESIGN "Policies" 2).
inline constexpr double kCpuSaturated = 0.9;

struct Knee {
    PoolShape previous;  // the shape before the increase
    PoolShape probed;    // the increase that added too little
    PoolShape settle;    // the smallest shape that reached the best throughput
    double previous_rps = 0;
    double probed_rps = 0;
    double best_rps = 0;
    double settle_rps = 0;
    double cpu_utilisation = 0;  // mean at the probed shape
    double cpu_psi_rise = 0;     // CPU PSI avg10 at the probed shape − at the previous one
    double cpu_ms_per_request = 0;
    Clock::time_point found_at{};
};

nlohmann::json to_json(const Knee& knee);

class KneeDetector {
public:
    struct Event {
        std::optional<Knee> found;            // an increase was just judged to be past the knee
        std::optional<std::string> released;  // why a known knee no longer holds
    };

    // One cycle: records the shape and its throughput, judges the last increase when it has
    // enough samples, and releases a knee the workload has outgrown.
    Event observe(const Snapshot& snapshot, const WorkerSignals& signals);

    // An increase is in place but not judged yet.
    [[nodiscard]] bool judging() const { return increase_.has_value(); }
    // Since when the pool has been complete at its shape (all ready, none starting or draining).
    [[nodiscard]] std::optional<Clock::time_point> in_place_since() const {
        return in_place_since_;
    }
    [[nodiscard]] const std::optional<Knee>& knee() const { return knee_; }
    // The mean throughput of `shape` at its last placement, when it was in place long enough to
    // be judged (3 cycles) and was seen in the last minute at a CPU cost per request within 30 %
    // of `cpu_ms_per_request` (when both are known): a measurement that describes today's load.
    [[nodiscard]] std::optional<double> measured_rps(
        const PoolShape& shape, Clock::time_point now,
        std::optional<double> cpu_ms_per_request) const;
    [[nodiscard]] nlohmann::json to_json() const;

private:
    struct ShapeStats {
        std::deque<double> rps;  // the samples since the shape was last put in place
        std::deque<double> cpu_utilisation;
        std::deque<double> cpu_psi;
        std::deque<double> cpu_ms_per_request;  // the CPU cost each sample was taken at (if known)
        double best_rps = 0;                    // best mean this shape ever reached
        Clock::time_point last_at{};
        [[nodiscard]] double mean_rps() const;
        [[nodiscard]] double mean_utilisation() const;
        [[nodiscard]] double mean_psi() const;
    };
    struct Increase {
        PoolShape from;
        PoolShape to;
        Clock::time_point at;
    };

    std::optional<Knee> judge(const Increase& increase, Clock::time_point now,
                              const WorkerSignals& signals);
    std::optional<std::string> check_release(const WorkerSignals& signals);

    PoolShape shape_{};
    std::optional<Clock::time_point> in_place_since_;
    std::optional<Increase> increase_;
    // Where a climb of steps each too small to judge started: the steps add up, and the climb is
    // judged against this shape once it is kMinJudgedIncrease above it.
    std::optional<PoolShape> climb_from_;
    std::map<PoolShape, ShapeStats> stats_;
    std::optional<Knee> knee_;
    unsigned cpu_room_cycles_ = 0;  // consecutive cycles at the knee with CPU to spare
};

}  // namespace tuner::policies
