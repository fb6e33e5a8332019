// Memory pressure: signs that the kernel is about to reclaim hard or OOM-kill (the memory it
// cannot reclaim — the working set less its active page cache — near memory.max or memory.high,
// memory PSI rising, an OOM kill counted), and how many workers to give back so it returns below
// the line. Sources: Linux PSI docs
// (https://docs.kernel.org/accounting/psi.html), kernel cgroup-v2 docs on memory.high and
// memory.events (https://docs.kernel.org/admin-guide/cgroup-v2.html).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model/snapshot.hpp"
#include "policies/worker_signals.hpp"

namespace tuner::policies {

// The unreclaimable memory counts as close to the limit from this fraction of it on; a shrink aims
// below kMemoryTargetFraction so one cycle of growth does not bring it straight back.
inline constexpr double kMemoryPressureFraction = 0.9;
inline constexpr double kMemoryTargetFraction = 0.8;
// Memory PSI "some" avg10 (percent of time some task stalled on memory) that counts when rising.
inline constexpr double kMemoryPsiThreshold = 10;

struct MemoryPressure {
    bool pressing = false;
    std::string cause;  // "working set 470MB ≥ 90 % of memory.max 512MB", with the numbers
    std::uint64_t line_bytes = 0;  // min(memory.max, memory.high) when limited, else 0
    std::uint64_t working_set_bytes = 0;
    std::uint64_t held_bytes = 0;  // the working set less the active page cache
    unsigned release_workers = 0;  // workers to stop to get below the target fraction (≥ 1)
};

// `per_process_bytes`: what one worker holds (the measured p95, without margin).
MemoryPressure memory_pressure(const Snapshot& snapshot, const WorkerSignals& signals,
                               std::uint64_t per_process_bytes);

nlohmann::json to_json(const MemoryPressure& pressure);

}  // namespace tuner::policies
