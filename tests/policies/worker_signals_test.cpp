// Per-cycle signals: rates from cumulative counters, CPU per request, pressure trends.
#include "policies/worker_signals.hpp"

#include <gtest/gtest.h>

#include "snapshot_builder.hpp"

namespace tuner::policies {
namespace {

// Two workers with cumulative served counts and CPU seconds, at second `second`.
Snapshot counters(int second, std::uint64_t served1, double cpu1, std::uint64_t served2,
                  double cpu2) {
    Snapshot s = testing::snapshot_at(second);
    s.cpu.effective_cores = 2;
    s.cpu.quota_cores = 1.5;
    s.window.completed = 100;
    s.window.service.mean_ms = 55;
    testing::add_ready_worker(s, 1).served = served1;
    testing::add_ready_worker(s, 2).served = served2;
    s.worker_trees[1].cpu_seconds = cpu1;
    s.worker_trees[2].cpu_seconds = cpu2;
    return s;
}

TEST(WorkerSignals, ThroughputAndCpuPerRequestFromWorkerCounters) {
    SignalTracker tracker(std::chrono::milliseconds(500));
    (void)tracker.update(counters(0, 1000, 10.0, 500, 5.0));
    const auto s = tracker.update(counters(2, 1300, 11.5, 700, 6.0));
    EXPECT_TRUE(s.throughput_measured);
    EXPECT_DOUBLE_EQ(s.throughput_rps, 250);  // 500 served in 2 s
    ASSERT_TRUE(s.cpu_ms_per_request);
    EXPECT_DOUBLE_EQ(*s.cpu_ms_per_request, 5);  // 2.5 CPU s / 500 requests
    EXPECT_NEAR(s.wait_share, 1 - 5.0 / 55, 1e-12);
    EXPECT_DOUBLE_EQ(s.cpu_capacity_cores, 1.5);  // the quota, not the cores
    EXPECT_DOUBLE_EQ(*s.cpu_bound_rps(), 300);    // 1.5 cores / 5 ms
    EXPECT_DOUBLE_EQ(*s.cpu_useful_concurrency(), 300 * 0.055);
}

TEST(WorkerSignals, ANewWorkerCountsItsRequestsButNotItsStartUpCpu) {
    SignalTracker tracker(std::chrono::milliseconds(500));
    Snapshot first = counters(0, 1000, 10.0, 500, 5.0);
    (void)tracker.update(first);
    Snapshot second = counters(1, 1100, 10.5, 600, 5.5);
    WorkerInfo fresh;
    fresh.id = 3;
    fresh.served = 50;
    second.pool.workers.push_back(fresh);
    second.worker_trees[3].cpu_seconds = 3.0;  // imports and warm-up
    const auto s = tracker.update(second);
    EXPECT_DOUBLE_EQ(s.throughput_rps, 250);
    EXPECT_DOUBLE_EQ(*s.cpu_ms_per_request, 5);
}

TEST(WorkerSignals, AWorkerStillStartingLastCycleOrRestartedAddsNoCpuCost) {
    // A worker seen starting in one cycle and ready in the next spent the time between touching
    // its memory (150 MB of page faults), not serving: 5 ms per request stays 5 ms.
    SignalTracker tracker(std::chrono::milliseconds(500));
    Snapshot first = counters(0, 1000, 10.0, 500, 5.0);
    WorkerInfo starting;
    starting.id = 3;
    starting.pid = 300;
    first.pool.workers.push_back(starting);
    first.worker_trees[3].cpu_seconds = 0.1;
    (void)tracker.update(first);
    Snapshot second = counters(1, 1100, 10.5, 600, 5.5);
    testing::add_ready_worker(second, 3).served = 20;
    second.pool.workers.back().pid = 300;
    second.worker_trees[3].cpu_seconds = 1.6;
    const auto s = tracker.update(second);
    EXPECT_DOUBLE_EQ(s.throughput_rps, 220);  // its requests count
    EXPECT_DOUBLE_EQ(*s.cpu_ms_per_request, 5);
    // Ready in both cycles, but another process in the slot (a replacement): no cost either.
    Snapshot third = counters(2, 1200, 11.0, 700, 6.0);
    testing::add_ready_worker(third, 3).served = 40;
    third.pool.workers.back().pid = 301;
    third.worker_trees[3].cpu_seconds = 1.5;
    EXPECT_DOUBLE_EQ(*tracker.update(third).cpu_ms_per_request, 5);
}

TEST(WorkerSignals, ACycleTooSoonReusesTheLastRates) {
    SignalTracker tracker(std::chrono::milliseconds(500));
    (void)tracker.update(counters(0, 1000, 10.0, 500, 5.0));
    (void)tracker.update(counters(1, 1100, 10.5, 600, 5.5));
    Snapshot soon = counters(1, 1101, 10.5, 600, 5.5);
    soon.taken_at += std::chrono::milliseconds(100);
    const auto s = tracker.update(soon);
    EXPECT_DOUBLE_EQ(s.throughput_rps, 200);
}

TEST(WorkerSignals, RecentArrivalsFromTheFrontsCounter) {
    SignalTracker tracker(std::chrono::milliseconds(500));
    Snapshot a = counters(0, 0, 0, 0, 0);
    a.window.accepted_total = 1000;
    a.window.queue_length_now = 0;
    (void)tracker.update(a);
    Snapshot b = counters(1, 0, 0, 0, 0);
    b.window.accepted_total = 1400;
    b.window.queue_length_now = 330;
    const auto s = tracker.update(b);
    ASSERT_TRUE(s.arrival_recent_rps);
    EXPECT_DOUBLE_EQ(*s.arrival_recent_rps, 400);
    EXPECT_TRUE(s.queue_now_measured);
    EXPECT_DOUBLE_EQ(s.queue_now, 330);
}

TEST(WorkerSignals, OomKillsAndPressureAreCountedAsChanges) {
    SignalTracker tracker(std::chrono::milliseconds(500));
    Snapshot a = counters(0, 0, 0, 0, 0);
    a.memory.oom_kills = 3;
    a.pressure.memory = PressureResource{PressureLine{5.0}, std::nullopt};
    (void)tracker.update(a);
    Snapshot b = counters(1, 0, 0, 0, 0);
    b.memory.oom_kills = 4;
    b.pressure.memory = PressureResource{PressureLine{12.5}, std::nullopt};
    const auto s = tracker.update(b);
    EXPECT_EQ(s.new_oom_kills, 1u);
    EXPECT_DOUBLE_EQ(s.memory_psi_rise, 7.5);
}

TEST(WorkerSignals, UncontendedServiceTimeFollowsOnlyWhileTheCpuHasRoom) {
    SignalTracker tracker(std::chrono::milliseconds(500));
    Snapshot a = counters(0, 0, 0, 0, 0);
    a.cpu.utilisation = 0.3;
    EXPECT_DOUBLE_EQ(tracker.update(a).service_uncontended_ms, 55);
    Snapshot b = counters(1, 0, 0, 0, 0);
    b.cpu.utilisation = 0.99;
    b.window.service.mean_ms = 120;  // CPU queueing, not the app
    EXPECT_DOUBLE_EQ(tracker.update(b).service_uncontended_ms, 55);
}

TEST(WorkerSignals, WithTheCpuQueueMeasuredUncontendedServiceFallsAtAnyLoadRisesOnlyWithRoom) {
    // Two workers, 5 ms CPU per request, the schedstat wait measured (20 ms per request).
    SignalTracker tracker(std::chrono::milliseconds(500));
    auto at = [](int second, double service_ms, double utilisation) {
        Snapshot s = counters(second, 1000 + second * 100, 10.0 + second * 0.5, 500 + second * 100,
                              5.0 + second * 0.5);
        s.worker_trees[1].cpu_wait_seconds = second * 4.0;  // 4 s per 200 requests: 20 ms each
        s.worker_trees[2].cpu_wait_seconds = 0;
        s.window.service.mean_ms = service_ms;
        s.cpu.utilisation = utilisation;
        return s;
    };
    EXPECT_DOUBLE_EQ(tracker.update(at(0, 55, 0.3)).service_uncontended_ms, 55);
    // Saturated, S grows by waiting the probe cannot see (200 − 20 ms of CPU queue): S₀ stays.
    EXPECT_DOUBLE_EQ(tracker.update(at(1, 200, 0.99)).service_uncontended_ms, 55);
    // It comes down at any load (60 − 20 ms) ...
    const double low = tracker.update(at(2, 60, 0.99)).service_uncontended_ms;
    EXPECT_LT(low, 55);
    // ... and rises again once the CPU has room.
    EXPECT_GT(tracker.update(at(3, 200, 0.3)).service_uncontended_ms, low);
}

}  // namespace
}  // namespace tuner::policies
