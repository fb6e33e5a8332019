// The worker pool's actuators: which pool operation carries out a decision on each of its knobs
// (workers.count resizes, workers.threads recycles at the new thread count). The database's
// knobs get theirs from DatabaseTuner; the PostgreSQL thread reports what it carried out.
#pragma once

#include "server/pool.hpp"
#include "tuner/control/apply.hpp"

namespace tuner {

void register_pool_actuators(Applier& applier, server::WorkerPool& pool);

}  // namespace tuner
