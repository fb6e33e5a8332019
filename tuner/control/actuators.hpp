// The worker pool's actuators: which pool operation carries out a decision on each of its knobs
// (workers.count resizes, workers.threads recycles at the new thread count). The database's
// knobs get theirs from DatabaseTuner; the micro-cache's capacity has one here too; the PostgreSQL
// thread reports what it carried out.
#pragma once

#include <cstdint>
#include <functional>

#include "server/pool.hpp"
#include "tuner/control/apply.hpp"

namespace tuner {

void register_pool_actuators(Applier& applier, server::WorkerPool& pool);

// cache.capacity: `set_capacity` gets the decision's bytes (Front::set_cache_capacity, which
// evicts down to them at once). A decision without a byte size fails.
void register_cache_actuator(Applier& applier, std::function<void(std::uint64_t)> set_capacity);

}  // namespace tuner
