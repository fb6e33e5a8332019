// Per-process memory measured per thread count, and the ceiling it gives.
#include "policies/process_memory.hpp"

#include <gtest/gtest.h>

#include "snapshot_builder.hpp"

namespace tuner::policies {
namespace {

// `workers` ready workers of `threads` threads holding `rss` each, at second `second`.
Snapshot workers_at(unsigned workers, unsigned threads, std::uint64_t rss, int second) {
    Snapshot s = testing::snapshot_at(second);
    s.pool.threads = threads;
    for (unsigned id = 1; id <= workers; ++id) testing::add_ready_worker(s, id, threads, rss);
    return s;
}

TEST(ProcessMemory, UsesTheConfiguredValueUntilMeasured) {
    ProcessMemoryModel model;
    PoolConfig pool;
    pool.memory_per_worker_bytes = 150 * MiB;
    const auto e = model.estimate(1, pool);
    EXPECT_FALSE(e.measured);
    EXPECT_EQ(e.bytes, 150 * MiB);
    // More threads than configured: the assumed cost per thread on top.
    EXPECT_EQ(model.estimate(5, pool).bytes, 150 * MiB + 4 * kAssumedBytesPerThread);
}

TEST(ProcessMemory, OneMeasuredCountPlusTheAssumedCostPerThread) {
    ProcessMemoryModel model;
    model.observe(workers_at(2, 1, 150 * MiB, 0));
    const auto one = model.estimate(1, PoolConfig{});
    EXPECT_TRUE(one.measured);
    EXPECT_EQ(one.p95_bytes, 150 * MiB);
    EXPECT_EQ(one.bytes, 150 * MiB);  // no factor: the headroom under the limit is in bytes
    EXPECT_EQ(model.estimate(8, PoolConfig{}).p95_bytes, 150 * MiB + 7 * kAssumedBytesPerThread);
}

TEST(ProcessMemory, TwoMeasuredCountsGiveTheCostPerThread) {
    ProcessMemoryModel model;
    model.observe(workers_at(2, 1, 150 * MiB, 0));
    model.observe(workers_at(2, 4, 162 * MiB, 1));  // 4 MB per added thread, measured
    EXPECT_EQ(model.estimate(4, PoolConfig{}).p95_bytes, 162 * MiB);
    EXPECT_EQ(model.estimate(16, PoolConfig{}).p95_bytes, 210 * MiB);
    EXPECT_NE(model.estimate(16, PoolConfig{}).basis.find("extrapolated"), std::string::npos);
}

TEST(ProcessMemory, PreloadedWorkersAreMeasuredByTheirPrivatePages) {
    Snapshot s = workers_at(2, 16, 170 * MiB, 0);
    for (auto& [id, tree] : s.worker_trees) {
        tree.pss_bytes = 67 * MiB;
        tree.private_bytes = 18 * MiB;
    }
    ProcessMemoryModel plain;
    plain.observe(s);
    EXPECT_EQ(plain.estimate(16, PoolConfig{}).p95_bytes, 67 * MiB);
    ProcessMemoryModel preloaded;
    preloaded.observe(s, true);
    EXPECT_EQ(preloaded.estimate(16, PoolConfig{}).p95_bytes, 18 * MiB);
}

TEST(ProcessMemory, StartingWorkersDoNotCount) {
    ProcessMemoryModel model;
    Snapshot s = workers_at(2, 1, 150 * MiB, 0);
    s.pool.workers[1].state = WorkerState::starting;
    s.worker_trees[2].rss_bytes = 5 * MiB;  // not loaded yet
    model.observe(s);
    EXPECT_EQ(model.estimate(1, PoolConfig{}).p95_bytes, 150 * MiB);
}

TEST(ProcessMemory, AHighMeasurementHoldsForAMinute) {
    ProcessMemoryModel model(std::chrono::seconds(60));
    model.observe(workers_at(2, 1, 200 * MiB, 0));
    model.observe(workers_at(2, 1, 100 * MiB, 30));
    EXPECT_EQ(model.estimate(1, PoolConfig{}).p95_bytes, 200 * MiB);
    model.observe(workers_at(2, 1, 100 * MiB, 61));
    EXPECT_EQ(model.estimate(1, PoolConfig{}).p95_bytes, 100 * MiB);
}

TEST(ProcessMemory, CeilingDividesTheBudgetByTheEstimate) {
    Snapshot s = workers_at(2, 1, 150 * MiB, 0);
    s.memory.limited = true;
    s.memory.limit_bytes = 512 * MiB;
    s.self.rss_bytes = 20 * MiB;
    ProcessMemoryModel model;
    model.observe(s);
    const auto r = seed_with_estimate(s, Config{}, model.estimate(1, PoolConfig{}));
    EXPECT_EQ(r.memory_ceiling, 2u);  // (512 − 64 headroom − 20) MB / 150 MB = 2.9
    EXPECT_NE(r.reason.find("measured p95"), std::string::npos) << r.reason;
    EXPECT_NE(r.reason.find("− headroom 64MB"), std::string::npos) << r.reason;
    // A 212 MB process (a gunicorn master and its 150 MB app): 2 still fit, as they do in
    // reality; a factor of 1.2 on the process size would have cost one of them.
    Snapshot big = s;
    for (auto& [id, tree] : big.worker_trees) tree.rss_bytes = 212 * MiB;
    ProcessMemoryModel model2;
    model2.observe(big);
    EXPECT_EQ(seed_with_estimate(big, Config{}, model2.estimate(1, PoolConfig{})).memory_ceiling,
              2u);
}

TEST(ProcessMemory, MemoryHighBelowTheLimitIsTheLineToFitUnder) {
    Snapshot s = workers_at(2, 1, 50 * MiB, 0);
    s.memory.limited = true;
    s.memory.limit_bytes = 1 * GiB;
    s.memory.high_bytes = 320 * MiB;
    s.self.rss_bytes = 20 * MiB;
    ProcessMemoryModel model;
    model.observe(s);
    EXPECT_EQ(seed_with_estimate(s, Config{}, model.estimate(1, PoolConfig{})).memory_ceiling,
              5u);  // 300 MB / 60 MB
}

}  // namespace
}  // namespace tuner::policies
