// Per-process memory measured per thread count (more threads = more memory per process, so the
// estimate is not assumed flat) and the memory ceiling it gives for each thread count.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "model/config.hpp"
#include "model/snapshot.hpp"
#include "policies/seed_formula.hpp"

namespace tuner::policies {

// Assumed extra resident memory per added thread until two thread counts have been measured:
// a thread's touched stack and interpreter state (a few hundred KB in CPython) plus a malloc
// arena's working pages. Deliberately generous; a measurement replaces it within a cycle.
inline constexpr std::uint64_t kAssumedBytesPerThread = 2 * MiB;

struct ProcessMemoryEstimate {
    std::uint64_t bytes = 0;      // per process: what the ceiling divides by
    std::uint64_t p95_bytes = 0;  // the measured (or extrapolated) p95
    bool measured = false;        // false: configured memory_per_worker (+ assumed per thread)
    std::string basis;            // "measured at 4 threads", "extrapolated from 1 and 4 threads"
};

class ProcessMemoryModel {
public:
    // A measurement counts at its highest for `hold`, so a dip in memory does not let the pool
    // grow into memory it will need again a moment later.
    explicit ProcessMemoryModel(Duration hold = std::chrono::seconds(60));

    // Groups the ready workers' process trees by their thread count and records the p95 of each.
    // `preloaded`: the workers are forked from a preloader (each costs its private pages).
    void observe(const Snapshot& snapshot, bool preloaded = false);

    [[nodiscard]] ProcessMemoryEstimate estimate(unsigned threads, const PoolConfig& pool) const;

    // {"<threads>": {"p95_bytes", "samples"}} of what has been measured.
    [[nodiscard]] nlohmann::json to_json() const;

private:
    struct Measurement {
        Clock::time_point at;
        std::uint64_t p95_bytes = 0;
        unsigned samples = 0;
    };
    [[nodiscard]] std::map<unsigned, std::uint64_t> held_p95() const;

    Duration hold_;
    Clock::time_point now_{};
    std::map<unsigned, std::deque<Measurement>> by_threads_;
};

// The seed formula's inputs with this estimate as the per-process memory; memory.high, when set
// below memory.max, is the limit the pool fits under.
SeedInputs seed_inputs_with_estimate(const Snapshot& snapshot, const Config& config,
                                     const ProcessMemoryEstimate& estimate);

// The seed formula on those inputs: its memory_ceiling is how many processes of that thread
// count fit, its workers the formula's answer.
SeedResult seed_with_estimate(const Snapshot& snapshot, const Config& config,
                              const ProcessMemoryEstimate& estimate);

}  // namespace tuner::policies
