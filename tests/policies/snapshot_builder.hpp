// Hand-built snapshots for the policies' unit tests: a time and ready workers with their memory,
// served counts and CPU time (the simulator builds whole ones for the traces).
#pragma once

#include <chrono>
#include <cstdint>

#include "model/snapshot.hpp"
#include "policies/cpu_knee.hpp"
#include "policies/worker_signals.hpp"

namespace tuner::policies::testing {

// A snapshot taken `second` seconds into a steady clock that does not start at zero.
inline Snapshot snapshot_at(int second) {
    Snapshot s;
    s.taken_at = Clock::time_point{} + std::chrono::seconds(1000 + second);
    return s;
}

// Adds a ready worker (to the pool's list and its process tree) and returns it for more detail.
inline WorkerInfo& add_ready_worker(Snapshot& s, unsigned id, unsigned threads = 1,
                                    std::uint64_t rss_bytes = 0) {
    WorkerInfo w;
    w.id = id;
    w.threads = threads;
    w.state = WorkerState::ready;
    s.pool.workers.push_back(w);
    s.worker_trees[id].rss_bytes = rss_bytes;
    return s.pool.workers.back();
}

// A pool complete at `shape` (all ready, none starting or draining) `second` seconds in.
inline Snapshot pool_in_place(PoolShape shape, int second) {
    Snapshot s = snapshot_at(second);
    s.pool.target = shape.processes;
    s.pool.ready = shape.processes;
    s.pool.threads = shape.threads;
    return s;
}

// One cycle's signals with the throughput measured over its second.
inline WorkerSignals measured_signals(double rps, double cpu_utilisation,
                                      double cpu_ms_per_request) {
    WorkerSignals s;
    s.elapsed_s = 1;
    s.throughput_rps = rps;
    s.throughput_measured = true;
    s.cpu_utilisation = cpu_utilisation;
    s.cpu_ms_per_request = cpu_ms_per_request;
    // A standing queue: the throughput is the shape's, not the load's (the knee's condition).
    s.inflight_mean = 16;
    s.queue_length_mean = 100;
    return s;
}

}  // namespace tuner::policies::testing
