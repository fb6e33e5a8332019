// Throughput per pool shape and the CPU-knee judgement (see cpu_knee.hpp).
#include "policies/cpu_knee.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

namespace tuner::policies {
namespace {

constexpr std::size_t kSamplesKept = 8;
constexpr std::size_t kSamplesToJudge = 3;  // cycles of throughput at the new shape
constexpr std::size_t kSamplesOfPrevious = 2;
// An increase "raised throughput" when it added at least this much (noise of a few 1-s samples
// at a few hundred requests per second is about this size).
constexpr double kMinGain = 0.05;
// An increase smaller than this (in concurrency) could not show kMinGain clearly: not judged.
constexpr double kMinJudgedIncrease = 1.15;
// Shapes within this fraction of the best throughput count as having reached it.
constexpr double kBestTolerance = 0.05;
// CPU PSI (some avg10, in percent) that rose this much with an increase marks saturation too.
constexpr double kPsiRise = 10;
// Measurements older than this describe another load; they do not judge today's increase.
constexpr auto kFresh = std::chrono::seconds(60);
// A cycle's throughput measures what a shape can serve only while it had about as much work as
// slots (in flight + queued): with fewer requests, or the clients just gone or back, it measures
// the load. Such cycles add no sample.
constexpr double kBusyForCapacity = 0.9;
// An increase never judged (the pool never got in place) is dropped after this.
constexpr auto kJudgeTimeout = std::chrono::seconds(60);
// The knee no longer holds when the CPU cost per request moved this much, or when the CPU had
// room at the knee shape for this many cycles in a row.
constexpr double kCostChange = 0.3;
constexpr double kRoomUtilisation = 0.7;
constexpr unsigned kRoomCycles = 10;

double mean(const std::deque<double>& values) {
    if (values.empty()) return 0;
    return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

bool in_place(const Snapshot& s) {
    if (s.pool.ready != s.pool.target || s.pool.starting > 0 || s.pool.draining > 0) return false;
    return std::all_of(s.pool.workers.begin(), s.pool.workers.end(),
                       [&](const WorkerInfo& w) { return w.threads == s.pool.threads; });
}

}  // namespace

std::string to_string(const PoolShape& shape) {
    std::string out =
        fmt::format("{} {}", shape.processes, shape.processes == 1 ? "worker" : "workers");
    if (shape.threads != 1) out += fmt::format(" × {} threads", shape.threads);
    return out;
}

nlohmann::json to_json(const Knee& knee) {
    auto shape = [](const PoolShape& p) {
        return nlohmann::json{{"workers", p.processes}, {"threads", p.threads}};
    };
    return {{"previous", shape(knee.previous)},  {"probed", shape(knee.probed)},
            {"settle", shape(knee.settle)},      {"previous_rps", knee.previous_rps},
            {"probed_rps", knee.probed_rps},     {"best_rps", knee.best_rps},
            {"settle_rps", knee.settle_rps},     {"cpu_utilisation", knee.cpu_utilisation},
            {"cpu_psi_rise", knee.cpu_psi_rise}, {"cpu_ms_per_request", knee.cpu_ms_per_request}};
}

double KneeDetector::ShapeStats::mean_rps() const {
    return mean(rps);
}
double KneeDetector::ShapeStats::mean_utilisation() const {
    return mean(cpu_utilisation);
}
double KneeDetector::ShapeStats::mean_psi() const {
    return mean(cpu_psi);
}

KneeDetector::Event KneeDetector::observe(const Snapshot& snapshot, const WorkerSignals& signals) {
    Event event;
    const Clock::time_point now = snapshot.taken_at;
    const PoolShape shape{snapshot.pool.target, std::max(1u, snapshot.pool.threads)};
    if (shape != shape_) {
        // Steps each too small to judge add up (under CPU contention the service time grows with
        // the pool, and Little's law asks ~10 % more at each step): an increase is measured from
        // where the climb started, or from where the increase still awaiting judgement started.
        std::optional<PoolShape> from;
        if (shape_.processes > 0 && shape.slots() > shape_.slots())
            from = increase_ ? increase_->from : climb_from_.value_or(shape_);
        increase_.reset();
        climb_from_.reset();
        if (from && static_cast<double>(shape.slots()) >= kMinJudgedIncrease * from->slots()) {
            increase_ = Increase{*from, shape, now};
        } else if (from) {
            climb_from_ = from;
        }
        shape_ = shape;
        in_place_since_.reset();
        auto& stats = stats_[shape];  // fresh samples for this placement; the best is kept
        stats.rps.clear();
        stats.cpu_utilisation.clear();
        stats.cpu_psi.clear();
        stats.cpu_ms_per_request.clear();
    }
    if (increase_ && now - increase_->at > kJudgeTimeout) increase_.reset();

    if (!in_place(snapshot)) {
        in_place_since_.reset();
        return event;
    }
    if (!in_place_since_) {
        // This cycle's counters still cover time before the shape was complete.
        in_place_since_ = now;
        return event;
    }
    if (!signals.throughput_measured || signals.elapsed_s <= 0) return event;
    if (signals.inflight_mean + signals.queue_length_mean <
        kBusyForCapacity * static_cast<double>(shape.slots())) {
        event.released = check_release(signals);
        return event;
    }

    auto& stats = stats_[shape];
    stats.rps.push_back(signals.throughput_rps);
    stats.cpu_utilisation.push_back(signals.cpu_utilisation);
    stats.cpu_psi.push_back(signals.cpu_psi_some_avg10);
    if (signals.cpu_ms_per_request) stats.cpu_ms_per_request.push_back(*signals.cpu_ms_per_request);
    while (stats.rps.size() > kSamplesKept) {
        stats.rps.pop_front();
        stats.cpu_utilisation.pop_front();
        stats.cpu_psi.pop_front();
    }
    while (stats.cpu_ms_per_request.size() > kSamplesKept) stats.cpu_ms_per_request.pop_front();
    stats.last_at = now;
    if (stats.rps.size() >= kSamplesToJudge)
        stats.best_rps = std::max(stats.best_rps, stats.mean_rps());

    if (increase_ && increase_->to == shape && stats.rps.size() >= kSamplesToJudge) {
        const Increase increase = *increase_;
        increase_.reset();
        if (auto knee = judge(increase, now, signals)) {
            knee_ = knee;
            cpu_room_cycles_ = 0;
            event.found = knee;
            return event;
        }
    }
    event.released = check_release(signals);
    return event;
}

std::optional<Knee> KneeDetector::judge(const Increase& increase, Clock::time_point now,
                                        const WorkerSignals& signals) {
    const auto before = stats_.find(increase.from);
    if (before == stats_.end() || before->second.rps.size() < kSamplesOfPrevious ||
        increase.at - before->second.last_at > kFresh) {
        return std::nullopt;  // nothing fresh to compare with
    }
    const ShapeStats& from = before->second;
    const ShapeStats& to = stats_[increase.to];
    const double from_rps = from.mean_rps();
    const double to_rps = to.mean_rps();
    const double psi_rise = to.mean_psi() - from.mean_psi();
    const bool saturated = to.mean_utilisation() >= kCpuSaturated || psi_rise >= kPsiRise;
    if (!saturated || from_rps <= 0 || to_rps >= from_rps * (1 + kMinGain)) return std::nullopt;

    // The best throughput among shapes measured under this load, and the smallest that got there.
    double best = 0;
    for (const auto& [shape, s] : stats_) {
        if (shape.slots() <= increase.to.slots() && !s.rps.empty() && now - s.last_at <= kFresh) {
            best = std::max(best, s.mean_rps());
        }
    }
    Knee knee;
    knee.previous = increase.from;
    knee.probed = increase.to;
    knee.previous_rps = from_rps;
    knee.probed_rps = to_rps;
    knee.best_rps = best;
    knee.cpu_utilisation = to.mean_utilisation();
    knee.cpu_psi_rise = psi_rise;
    knee.cpu_ms_per_request = signals.cpu_ms_per_request.value_or(0);
    knee.found_at = now;
    knee.settle = increase.to;
    knee.settle_rps = to_rps;
    for (const auto& [shape, s] : stats_) {
        if (shape.slots() > increase.to.slots() || s.rps.empty() || now - s.last_at > kFresh)
            continue;
        if (s.mean_rps() < best * (1 - kBestTolerance)) continue;
        if (shape.slots() < knee.settle.slots() ||
            (shape.slots() == knee.settle.slots() && shape.processes < knee.settle.processes)) {
            knee.settle = shape;
            knee.settle_rps = s.mean_rps();
        }
    }
    return knee;
}

std::optional<double> KneeDetector::measured_rps(const PoolShape& shape, Clock::time_point now,
                                                 std::optional<double> cpu_ms_per_request) const {
    const auto it = stats_.find(shape);
    if (it == stats_.end()) return std::nullopt;
    const ShapeStats& s = it->second;
    if (s.rps.size() < kSamplesToJudge || now - s.last_at > kFresh) return std::nullopt;
    // Throughput at another CPU cost per request (a release, another mix of routes) says nothing
    // about this load: the knee's release threshold decides what "another" is.
    const double cost = mean(s.cpu_ms_per_request);
    if (cpu_ms_per_request && *cpu_ms_per_request > 0 && cost > 0 &&
        std::abs(*cpu_ms_per_request / cost - 1) > kCostChange) {
        return std::nullopt;
    }
    return s.mean_rps();
}

std::optional<std::string> KneeDetector::check_release(const WorkerSignals& signals) {
    if (!knee_) return std::nullopt;
    if (knee_->cpu_ms_per_request > 0 && signals.cpu_ms_per_request &&
        std::abs(*signals.cpu_ms_per_request / knee_->cpu_ms_per_request - 1) > kCostChange) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "CPU per request %.1f ms now, %.1f ms at the knee",
                      *signals.cpu_ms_per_request, knee_->cpu_ms_per_request);
        knee_.reset();
        return std::string(buf);
    }
    if (shape_.slots() >= knee_->settle.slots() && signals.cpu_utilisation < kRoomUtilisation) {
        if (++cpu_room_cycles_ >= kRoomCycles) {
            knee_.reset();
            return fmt::format("CPU below {} % at the knee shape for {} cycles",
                               static_cast<int>(kRoomUtilisation * 100), kRoomCycles);
        }
    } else {
        cpu_room_cycles_ = 0;
    }
    return std::nullopt;
}

nlohmann::json KneeDetector::to_json() const {
    nlohmann::json shapes = nlohmann::json::array();
    for (const auto& [shape, s] : stats_) {
        if (s.rps.empty() && s.best_rps <= 0) continue;
        shapes.push_back({{"workers", shape.processes},
                          {"threads", shape.threads},
                          {"throughput_rps", s.mean_rps()},
                          {"best_throughput_rps", s.best_rps},
                          {"cpu_utilisation", s.mean_utilisation()},
                          {"samples", s.rps.size()}});
    }
    nlohmann::json out{{"throughput_by_shape", shapes}, {"judging_increase", judging()}};
    out["knee"] = knee_ ? policies::to_json(*knee_) : nlohmann::json();
    return out;
}

}  // namespace tuner::policies
