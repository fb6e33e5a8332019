// The seed formula and the per-worker memory estimate (see seed_formula.hpp).
#include "policies/seed_formula.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

namespace tuner::policies {

SeedResult seed_formula(const SeedInputs& in) {
    SeedResult r;
    const unsigned cores = std::max(1u, in.effective_cores);
    r.cpu_workers = 2 * cores + 1;

    std::uint64_t budget = in.memory_limit_bytes;
    const std::uint64_t reserve = in.memory_limited ? in.headroom_bytes : in.os_reserve_bytes;
    const std::uint64_t taken =
        reserve + in.postgres_share_bytes + in.self_rss_bytes + in.cache_room_bytes;
    budget = budget > taken ? budget - taken : 0;
    r.budget_bytes = budget;

    const std::uint64_t per_worker = std::max<std::uint64_t>(1, in.per_worker_bytes);
    const std::uint64_t fits = budget / per_worker;
    // Running out of memory serves no one, but neither does an empty pool: at least one worker.
    r.memory_ceiling = static_cast<unsigned>(std::clamp<std::uint64_t>(fits, 1, 100000));

    const unsigned formula = std::min(r.cpu_workers, r.memory_ceiling);
    r.memory_capped = r.memory_ceiling < r.cpu_workers;
    unsigned workers =
        std::clamp(formula, std::min(in.min_workers, in.max_workers), in.max_workers);
    // workers.min holds except against the memory ceiling (DESIGN "Which bound wins").
    if (workers > r.memory_ceiling) {
        r.below_min = r.memory_ceiling < in.min_workers;
        workers = r.memory_ceiling;
    }
    r.workers = workers;

    std::string limit_text = format_size_approx(in.memory_limit_bytes) +
                             (in.memory_limited ? " cgroup limit" : " host memory");
    r.reason = fmt::format("cores {} → 2×{}+1 = {}; budget {} = {}", cores, cores, r.cpu_workers,
                           format_size_approx(budget), limit_text);
    if (reserve) {
        r.reason +=
            (in.memory_limited ? " − headroom " : " − os_reserve ") + format_size_approx(reserve);
    }
    if (in.postgres_share_bytes)
        r.reason += " − PostgreSQL " + format_size_approx(in.postgres_share_bytes);
    if (in.self_rss_bytes) r.reason += " − tunerd " + format_size_approx(in.self_rss_bytes);
    if (in.cache_room_bytes)
        r.reason += " − cache room " + format_size_approx(in.cache_room_bytes) +
                    " (cache.capacity not yet held; what it holds is in tunerd's)";
    r.reason += fmt::format(
        "; per worker {}{} → memory ceiling {} → {} workers", format_size_approx(per_worker),
        in.per_worker_measured ? " (measured p95)" : " (configured)", r.memory_ceiling, workers);
    if (r.memory_capped) r.reason += " (memory-capped)";
    if (r.below_min) {
        r.reason += fmt::format("; below workers.min {}: memory does not allow it", in.min_workers);
    } else if (workers != formula) {
        r.reason += fmt::format(" (bounds {}..{})", in.min_workers, in.max_workers);
    }
    return r;
}

PerWorkerEstimate estimate_per_worker(const Snapshot& snapshot, const PoolConfig& pool) {
    PerWorkerEstimate e;
    std::vector<std::uint64_t> sizes;
    for (const auto& [id, tree] : snapshot.worker_trees) {
        const std::uint64_t bytes = worker_cost_bytes(tree, pool.uses_preload());
        if (bytes > 0) sizes.push_back(bytes);
    }
    e.samples = static_cast<unsigned>(sizes.size());
    if (sizes.empty()) {
        e.bytes = pool.memory_per_worker_bytes;
        return e;
    }
    e.p95_bytes = p95_nearest_rank(std::move(sizes));
    e.bytes = e.p95_bytes;
    e.measured = true;
    return e;
}

std::uint64_t memory_headroom_bytes(std::uint64_t limit_bytes) {
    return std::max<std::uint64_t>(32 * MiB, limit_bytes / 8);
}

unsigned proven_to_fit(std::uint64_t budget_bytes, std::uint64_t configured_bytes) {
    const double assumed = kUnknownMemoryFactor *
                           static_cast<double>(std::max(configured_bytes, kUnknownProcessFloor));
    return static_cast<unsigned>(
        std::clamp(std::floor(static_cast<double>(budget_bytes) / assumed), 1.0, 100000.0));
}

std::uint64_t p95_nearest_rank(std::vector<std::uint64_t> values) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const auto rank =
        static_cast<std::size_t>(std::ceil(0.95 * static_cast<double>(values.size())));
    return values[std::clamp<std::size_t>(rank, 1, values.size()) - 1];
}

std::uint64_t postgres_share_bytes(const DatabaseConfig& db, std::uint64_t memory_limit_bytes) {
    if (db.location != DatabaseLocation::local) return 0;
    if (db.postgres == PostgresMode::off && db.url_file.empty()) return 0;
    return static_cast<std::uint64_t>(static_cast<double>(memory_limit_bytes) * db.memory_share);
}

SeedInputs seed_inputs(const Snapshot& snapshot, const Config& config) {
    SeedInputs in;
    in.effective_cores = snapshot.cpu.effective_cores;
    in.memory_limit_bytes = snapshot.memory.limit_bytes;
    in.memory_limited = snapshot.memory.limited;
    in.os_reserve_bytes = config.policy.os_reserve_bytes;
    in.postgres_share_bytes = postgres_share_bytes(config.database, snapshot.memory.limit_bytes);
    in.self_rss_bytes = self_memory_bytes(snapshot.self, config.workers.uses_preload());
    in.cache_room_bytes = snapshot.cache.room_bytes();
    in.headroom_bytes = memory_headroom_bytes(snapshot.memory.limit_bytes);
    const auto estimate = estimate_per_worker(snapshot, config.workers);
    in.per_worker_bytes = estimate.bytes;
    in.per_worker_measured = estimate.measured;
    in.min_workers = config.workers.min;
    in.max_workers = config.workers.max;
    return in;
}

}  // namespace tuner::policies
