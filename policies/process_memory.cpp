// Per-thread-count process memory and the memory ceiling (see process_memory.hpp).
#include "policies/process_memory.hpp"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

namespace tuner::policies {
namespace {

std::string threads_text(unsigned threads) {
    return fmt::format("{} {}", threads, threads == 1 ? "thread" : "threads");
}

std::uint64_t extra_threads_bytes(unsigned threads, unsigned measured_threads) {
    return threads > measured_threads ? (threads - measured_threads) * kAssumedBytesPerThread : 0;
}

}  // namespace

ProcessMemoryModel::ProcessMemoryModel(Duration hold) : hold_(hold) {}

void ProcessMemoryModel::observe(const Snapshot& snapshot, bool preloaded) {
    now_ = snapshot.taken_at;
    const auto cost = [preloaded](const ProcessTreeSample& tree) {
        return worker_cost_bytes(tree, preloaded);
    };
    std::map<unsigned, std::vector<std::uint64_t>> sizes;
    if (snapshot.pool.workers.empty()) {
        // No per-worker states: every tree runs the pool's thread count.
        for (const auto& [id, tree] : snapshot.worker_trees) {
            if (const auto bytes = cost(tree); bytes > 0)
                sizes[snapshot.pool.threads].push_back(bytes);
        }
    } else {
        // Only ready workers: a starting one has not loaded the app yet.
        for (const auto& worker : snapshot.pool.workers) {
            if (worker.state != WorkerState::ready) continue;
            const auto it = snapshot.worker_trees.find(worker.id);
            if (it == snapshot.worker_trees.end()) continue;
            if (const auto bytes = cost(it->second); bytes > 0)
                sizes[std::max(1u, worker.threads)].push_back(bytes);
        }
    }
    for (auto& [threads, values] : sizes) {
        auto& history = by_threads_[threads];
        const auto samples = static_cast<unsigned>(values.size());
        history.push_back({snapshot.taken_at, p95_nearest_rank(std::move(values)), samples});
    }
    for (auto& [threads, history] : by_threads_) {
        // Keep the newest measurement even when old: it is the best knowledge of that count.
        while (history.size() > 1 && snapshot.taken_at - history.front().at > hold_) {
            history.pop_front();
        }
    }
}

std::map<unsigned, std::uint64_t> ProcessMemoryModel::held_p95() const {
    std::map<unsigned, std::uint64_t> out;
    for (const auto& [threads, history] : by_threads_) {
        std::uint64_t highest = 0;
        for (const auto& m : history) highest = std::max(highest, m.p95_bytes);
        if (highest > 0) out[threads] = highest;
    }
    return out;
}

ProcessMemoryEstimate ProcessMemoryModel::estimate(unsigned threads, const PoolConfig& pool) const {
    threads = std::max(1u, threads);
    ProcessMemoryEstimate e;
    const auto measured = held_p95();
    if (measured.empty()) {
        e.p95_bytes = pool.memory_per_worker_bytes + extra_threads_bytes(threads, pool.threads);
        e.bytes = e.p95_bytes;  // the configured value is the operator's estimate, no margin
        e.basis = "configured memory_per_worker";
        return e;
    }
    e.measured = true;
    if (const auto it = measured.find(threads); it != measured.end()) {
        e.p95_bytes = it->second;
        e.basis = "measured at " + threads_text(threads);
    } else if (measured.size() >= 2) {
        // Least-squares line through the measured thread counts; a negative slope (noise) is
        // taken as flat so more threads never look cheaper.
        double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (const auto& [t, bytes] : measured) {
            const auto x = static_cast<double>(t);
            const auto y = static_cast<double>(bytes);
            n += 1;
            sx += x;
            sy += y;
            sxx += x * x;
            sxy += x * y;
        }
        const double slope = std::max(0.0, (n * sxy - sx * sy) / (n * sxx - sx * sx));
        const double intercept = (sy - slope * sx) / n;
        double fitted = intercept + slope * static_cast<double>(threads);
        // Beyond the measured range, never less than the largest measured thread count.
        const auto& [largest_threads, largest_bytes] = *measured.rbegin();
        if (threads > largest_threads)
            fitted = std::max(fitted, static_cast<double>(largest_bytes));
        e.p95_bytes = static_cast<std::uint64_t>(std::max(fitted, 1.0));
        e.basis = fmt::format("extrapolated from {}..{} threads", measured.begin()->first,
                              measured.rbegin()->first);
    } else {
        const auto& [measured_threads, bytes] = *measured.begin();
        e.p95_bytes = bytes + extra_threads_bytes(threads, measured_threads);
        e.basis = "measured at " + threads_text(measured_threads) + " + " +
                  format_size_approx(kAssumedBytesPerThread) + " per added thread (assumed)";
    }
    e.bytes = e.p95_bytes;  // the margin is the headroom in bytes under the limit
    return e;
}

nlohmann::json ProcessMemoryModel::to_json() const {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [threads, history] : by_threads_) {
        if (history.empty()) continue;
        std::uint64_t highest = 0;
        for (const auto& m : history) highest = std::max(highest, m.p95_bytes);
        out[std::to_string(threads)] = {
            {"p95_bytes", highest},
            {"samples", history.back().samples},
            {"age_s", std::chrono::duration<double>(now_ - history.back().at).count()}};
    }
    return out;
}

SeedInputs seed_inputs_with_estimate(const Snapshot& snapshot, const Config& config,
                                     const ProcessMemoryEstimate& estimate) {
    SeedInputs in = seed_inputs(snapshot, config);
    // Above memory.high the kernel throttles and reclaims hard (cgroup-v2 docs): it is the line
    // the pool must fit under when it is set below memory.max.
    if (const auto high = snapshot.memory.high_bytes;
        high && *high > 0 && (!in.memory_limited || *high < in.memory_limit_bytes)) {
        in.memory_limit_bytes = *high;
        in.memory_limited = true;
        in.headroom_bytes = memory_headroom_bytes(*high);
    }
    in.per_worker_bytes = estimate.bytes;
    in.per_worker_measured = estimate.measured;
    return in;
}

SeedResult seed_with_estimate(const Snapshot& snapshot, const Config& config,
                              const ProcessMemoryEstimate& estimate) {
    return seed_formula(seed_inputs_with_estimate(snapshot, config, estimate));
}

}  // namespace tuner::policies
