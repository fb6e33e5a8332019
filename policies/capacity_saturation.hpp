// The capacity saturation of one node, for autoscalers outside it (docs/scaling.md): how many
// worker processes the policy wants, unclamped, over the most this node may run. Above 1 this
// node cannot grow enough by itself: more nodes are needed. Below 1 it has room.
#pragma once

#include <nlohmann/json.hpp>

#include "model/config.hpp"

namespace tuner::policies {

struct CapacitySaturation {
    unsigned wanted = 0;   // the policy's wish before any bound (see wanted_workers)
    unsigned allowed = 1;  // min(memory ceiling, database cap, workers.max), at least 1
    double ratio = 0;      // wanted / allowed
};

// Pure. `memory_cap`: the processes memory (and the database's connection budget) allow at the
// pool's thread count; `workers_max`: the configured bound.
CapacitySaturation capacity_saturation(unsigned wanted, unsigned memory_cap, unsigned workers_max);

// The policy's unclamped wish by mode: adaptive, what the load asks for (Little's law or the
// queue, `need_workers`); formula, 2 × cores + 1 (`cpu_workers`); fixed, workers.count.
unsigned wanted_workers(PoolMode mode, unsigned need_workers, unsigned cpu_workers,
                        unsigned fixed_count);

nlohmann::json to_json(const CapacitySaturation& s);

}  // namespace tuner::policies
