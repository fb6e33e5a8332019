// Scenarios the worker-pool suites run against the built-in demo app and against gunicorn:
// resize cycles and kill -9 under bounded closed-loop load. Each returns what the client saw
// and what went wrong on the way, so the suites assert on plain data.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/support/load_generator.hpp"
#include "tests/support/tunerd_process.hpp"

namespace tuner::test {

struct ScenarioResult {
    LoadResult load;
    std::vector<std::string> problems;  // steps that missed their deadline, missing processes
    double retries = 0;                 // tunerd_request_retries_total at the end
    // Every step done, responses came back, and every one of them was 2xx.
    [[nodiscard]] bool clean() const {
        return problems.empty() && load.ok_2xx > 0 && load.client_errors == 0 &&
               load.non_2xx() == 0;
    }
    [[nodiscard]] std::string describe() const;
};

// The scenarios' load: 16 keep-alive connections to tunerd's public address, bounded in time.
LoadOptions scenario_load(const TunerdProcess& tunerd, const std::string& target,
                          unsigned connections = 16);

// Under `load`, drives the pool through `steps` (each a POST /workers/target) `cycles` times,
// each step waiting until /workers shows the target ready, at most `step_timeout`.
ScenarioResult resize_cycles_under_load(const TunerdProcess& tunerd, const LoadOptions& load,
                                        const std::vector<unsigned>& steps, unsigned cycles,
                                        std::chrono::milliseconds step_timeout);

enum class KillTarget {
    worker,      // the process tunerd started (a gunicorn master)
    grandchild,  // that process's child (the gunicorn worker that serves)
};

// Under `load`, kill -9 a ready worker with requests in flight (or its child), wait until the
// pool has recovered (a new worker ready, or the master's new child), keep the load on for
// `after` more, and stop.
ScenarioResult kill_busy_worker_under_load(const TunerdProcess& tunerd, const LoadOptions& load,
                                           KillTarget target, std::chrono::milliseconds recover,
                                           std::chrono::milliseconds after);

}  // namespace tuner::test
