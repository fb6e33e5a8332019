// The seed formula: the classic gunicorn rule `2 × cores + 1`, capped by what memory allows.
// It gives the pool's starting size and, in every adaptive mode, the memory ceiling.
// Sources: gunicorn docs ("Design: How Many Workers?"), DESIGN.md "Policies" 1.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.hpp"
#include "model/snapshot.hpp"

namespace tuner::policies {

struct SeedInputs {
    unsigned effective_cores = 1;
    std::uint64_t memory_limit_bytes = 0;    // cgroup limit, or host MemTotal when unlimited
    bool memory_limited = false;             // true: a cgroup limit; false: host MemTotal
    std::uint64_t os_reserve_bytes = 0;      // taken off host memory only when unlimited
    std::uint64_t postgres_share_bytes = 0;  // PostgreSQL's share when it runs on this box
    std::uint64_t self_rss_bytes = 0;        // tunerd's own resident memory
    // The micro-cache's capacity not held yet (CacheMemory::room_bytes): tunerd's memory to come.
    // What it holds is in self_rss_bytes already, so it is not counted twice.
    std::uint64_t cache_room_bytes = 0;
    // Kept free under a cgroup limit (memory_headroom_bytes); host memory has os_reserve.
    std::uint64_t headroom_bytes = 0;
    std::uint64_t per_worker_bytes = 100 * MiB;
    bool per_worker_measured = false;  // false: the configured memory_per_worker
    unsigned min_workers = 1;
    unsigned max_workers = 64;
};

struct SeedResult {
    unsigned cpu_workers = 0;        // 2 × cores + 1
    std::uint64_t budget_bytes = 0;  // memory the workers may use
    unsigned memory_ceiling = 0;     // floor(budget / per_worker), at least 1
    unsigned workers = 0;            // the answer, bounds applied
    bool memory_capped = false;      // the memory ceiling, not the CPU, set the answer
    bool below_min = false;          // the memory ceiling pushed the pool below workers.min
    std::string reason;              // every number in it, for logs and tunerctl
};

// Pure: the formula with every intermediate number.
SeedResult seed_formula(const SeedInputs& in);

// The per-worker memory estimate: the p95 of the workers' process-tree memory (PSS when known,
// else RSS) once any worker has been measured; else the configured memory_per_worker. What
// covers growth between samples and a new worker's peak is a headroom in bytes under the limit,
// not a factor on the per-process size: a factor costs a whole process on a small box (2 × 212 MB
// fit in 512 MB; 2 × 212 × 1.2 do not). max(32 MiB, limit / 8): 12.5 % keeps growth below the
// memory-pressure line (90 %) with room for the growth between two samples.
std::uint64_t memory_headroom_bytes(std::uint64_t limit_bytes);

// Until a worker has been measured, a start is proven to fit only if processes this many times
// the configured memory_per_worker (at least kUnknownProcessFloor) fit: an operator's guess may be
// off by twice or more either way, and an OOM kill at start serves no one.
inline constexpr double kUnknownMemoryFactor = 4;
inline constexpr std::uint64_t kUnknownProcessFloor = 64 * MiB;
// How many processes of unmeasured size a start may have in `budget_bytes` (at least 1).
unsigned proven_to_fit(std::uint64_t budget_bytes, std::uint64_t configured_bytes);

// Nearest-rank p95 of the values (0 when empty). Sorts its copy.
std::uint64_t p95_nearest_rank(std::vector<std::uint64_t> values);

// A process tree's memory: PSS when known (shared pages split fairly), else RSS.
inline std::uint64_t tree_memory_bytes(const ProcessTreeSample& tree) {
    return tree.pss_bytes.value_or(tree.rss_bytes);
}

// What one worker tree costs the pool, the measure the memory ceiling divides by. Forked from a
// preloader, its private pages (USS): the app's shared pages are paid once, by the preloader
// (counted in full in tunerd's own memory, `self_memory_bytes`), whatever the number of workers;
// PSS would split them over the workers running now and so shrink as the pool grows. Otherwise
// PSS: a `gunicorn -w 1` slot's master and worker share pages with each other, which a sum of
// the two private sizes would leave out.
inline std::uint64_t worker_cost_bytes(const ProcessTreeSample& tree, bool preloaded) {
    if (preloaded && tree.private_bytes) return *tree.private_bytes;
    return tree_memory_bytes(tree);
}

// tunerd's own memory (with the preloader, its child): PSS when known, but RSS with a preload,
// so the pages the workers share with the preloader count once, here (see worker_cost_bytes).
inline std::uint64_t self_memory_bytes(const ProcessTreeSample& self, bool preloaded) {
    return preloaded ? self.rss_bytes : tree_memory_bytes(self);
}

struct PerWorkerEstimate {
    std::uint64_t bytes = 0;
    bool measured = false;
    std::uint64_t p95_bytes = 0;  // the measured p95
    unsigned samples = 0;
};
PerWorkerEstimate estimate_per_worker(const Snapshot& snapshot, const PoolConfig& pool);

// PostgreSQL's share of this box's memory (0 when it is remote or tunerd knows of no database).
std::uint64_t postgres_share_bytes(const DatabaseConfig& db, std::uint64_t memory_limit_bytes);

// The inputs the daemon and `tunerctl probe` use, gathered from a Snapshot and the config.
SeedInputs seed_inputs(const Snapshot& snapshot, const Config& config);

}  // namespace tuner::policies
