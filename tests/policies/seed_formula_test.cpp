// The seed formula: min(2×cores+1, floor(budget / per_worker)), with the bounds of DESIGN.
#include "policies/seed_formula.hpp"

#include <gtest/gtest.h>

namespace tuner::policies {
namespace {

SeedInputs host(unsigned cores, std::uint64_t total) {
    SeedInputs in;
    in.effective_cores = cores;
    in.memory_limit_bytes = total;
    in.memory_limited = false;
    in.os_reserve_bytes = 150 * MiB;
    in.self_rss_bytes = 10 * MiB;
    return in;
}

SeedInputs cgroup(unsigned cores, std::uint64_t limit) {
    SeedInputs in = host(cores, limit);
    in.memory_limited = true;
    in.self_rss_bytes = 20 * MiB;
    return in;
}

TEST(SeedFormula, OneCoreOneGigabyteGivesThree) {
    const auto r = seed_formula(host(1, GiB));
    EXPECT_EQ(r.cpu_workers, 3u);
    EXPECT_EQ(r.budget_bytes, GiB - 160 * MiB);
    EXPECT_EQ(r.memory_ceiling, 8u);  // 864MB / 100MB
    EXPECT_EQ(r.workers, 3u);
    EXPECT_FALSE(r.memory_capped);
}

TEST(SeedFormula, TwoCoresOnLargeHostGivesFive) {
    const auto r = seed_formula(host(2, 24 * GiB));
    EXPECT_EQ(r.workers, 5u);
    EXPECT_FALSE(r.memory_capped);
}

TEST(SeedFormula, CapsWorkersByMemoryBudgetInSmallCgroup) {
    // 4 cores want 9; 512MB − 20MB tunerd = 492MB fits 4 workers of 100MB. No os_reserve:
    // the cgroup limit is already what this box has.
    const auto r = seed_formula(cgroup(4, 512 * MiB));
    EXPECT_EQ(r.cpu_workers, 9u);
    EXPECT_EQ(r.budget_bytes, 492 * MiB);
    EXPECT_EQ(r.memory_ceiling, 4u);
    EXPECT_EQ(r.workers, 4u);
    EXPECT_TRUE(r.memory_capped);
    EXPECT_NE(r.reason.find("memory-capped"), std::string::npos) << r.reason;
}

TEST(SeedFormula, HalfCoreQuotaCountsAsOneCore) {
    // effective_cores = ceil(0.5) = 1, computed by the probes.
    const auto r = seed_formula(cgroup(1, 2 * GiB));
    EXPECT_EQ(r.workers, 3u);
}

TEST(SeedFormula, SubtractsPostgresShare) {
    SeedInputs in = cgroup(4, GiB);
    in.postgres_share_bytes = 256 * MiB;
    const auto r = seed_formula(in);
    EXPECT_EQ(r.budget_bytes, GiB - 276 * MiB);
    EXPECT_EQ(r.memory_ceiling, 7u);
    EXPECT_NE(r.reason.find("PostgreSQL"), std::string::npos);
}

TEST(SeedFormula, MaxBoundHolds) {
    SeedInputs in = host(4, 24 * GiB);
    in.max_workers = 4;
    EXPECT_EQ(seed_formula(in).workers, 4u);
}

TEST(SeedFormula, MinBoundHoldsAgainstCpu) {
    SeedInputs in = host(1, 24 * GiB);
    in.min_workers = 6;
    EXPECT_EQ(seed_formula(in).workers, 6u);
}

TEST(SeedFormula, MemoryCeilingPushesBelowMinWithWarning) {
    SeedInputs in = cgroup(4, 256 * MiB);
    in.min_workers = 4;
    const auto r = seed_formula(in);
    EXPECT_EQ(r.workers, 2u);
    EXPECT_TRUE(r.below_min);
    EXPECT_NE(r.reason.find("below workers.min"), std::string::npos);
}

TEST(SeedFormula, NeverGoesBelowOneWorker) {
    SeedInputs in = cgroup(2, 64 * MiB);
    const auto r = seed_formula(in);
    EXPECT_EQ(r.memory_ceiling, 1u);
    EXPECT_EQ(r.workers, 1u);
}

TEST(PerWorkerEstimate, UsesConfiguredValueUntilMeasured) {
    Snapshot s;
    PoolConfig pool;
    pool.memory_per_worker_bytes = 150 * MiB;
    const auto e = estimate_per_worker(s, pool);
    EXPECT_FALSE(e.measured);
    EXPECT_EQ(e.bytes, 150 * MiB);
}

TEST(PerWorkerEstimate, TakesP95OfTreesPreferringPss) {
    Snapshot s;
    for (unsigned id = 1; id <= 20; ++id) {
        ProcessTreeSample t;
        t.rss_bytes = id * 10 * MiB;
        s.worker_trees[id] = t;
    }
    s.worker_trees[20].pss_bytes = 100 * MiB;  // PSS known for the largest: it counts, not RSS
    const auto e = estimate_per_worker(s, PoolConfig{});
    EXPECT_TRUE(e.measured);
    EXPECT_EQ(e.samples, 20u);
    // Sorted: 10..190MB (ids 1..19) plus 100MB (PSS of id 20); nearest-rank p95 of 20 values is
    // the 19th: 180MB.
    EXPECT_EQ(e.p95_bytes, 180 * MiB);
    EXPECT_EQ(e.bytes, 180 * MiB);
}

// A worker forked from a preloader costs its private pages: the 150 MB the app holds from import
// are the preloader's, and PSS would split them over however many workers run now.
TEST(PerWorkerEstimate, PreloadedWorkersCostTheirPrivatePages) {
    Snapshot s;
    for (unsigned id = 1; id <= 2; ++id) {
        ProcessTreeSample t;
        t.rss_bytes = 170 * MiB;
        t.pss_bytes = 67 * MiB;      // 150 MB shared three ways (preloader, 2 workers) + 17
        t.private_bytes = 17 * MiB;  // its own
        s.worker_trees[id] = t;
    }
    PoolConfig pool;
    EXPECT_EQ(estimate_per_worker(s, pool).bytes, 67 * MiB);  // no preload: PSS
    pool.preload = "app:app";
    EXPECT_EQ(estimate_per_worker(s, pool).bytes, 17 * MiB);
    // Not read yet (no smaps_rollup): PSS, then RSS, as without a preload.
    s.worker_trees[2].private_bytes.reset();
    s.worker_trees[2].pss_bytes.reset();
    EXPECT_EQ(estimate_per_worker(s, pool).bytes, 170 * MiB);
}

// With a preload tunerd's own memory is its RSS (the preloader's shared pages in full, counted
// once there), without one its PSS.
TEST(SeedInputs, PreloadCountsTheSharedPagesOnceInTunerdsOwnMemory) {
    Snapshot s;
    s.memory.limit_bytes = 512 * MiB;
    s.memory.limited = true;
    s.cpu.effective_cores = 2;
    s.self.rss_bytes = 190 * MiB;  // tunerd 10 + the preloader 180
    s.self.pss_bytes = 70 * MiB;
    for (unsigned id = 1; id <= 2; ++id) {
        ProcessTreeSample t;
        t.rss_bytes = 170 * MiB;
        t.pss_bytes = 67 * MiB;
        t.private_bytes = 17 * MiB;
        s.worker_trees[id] = t;
    }
    Config config;
    config.workers.max = 64;
    const auto plain = seed_inputs(s, config);
    EXPECT_EQ(plain.self_rss_bytes, 70 * MiB);
    EXPECT_EQ(plain.per_worker_bytes, 67 * MiB);
    config.workers.preload = "app:app";
    const auto in = seed_inputs(s, config);
    EXPECT_EQ(in.self_rss_bytes, 190 * MiB);
    EXPECT_EQ(in.per_worker_bytes, 17 * MiB);
    // 512 MB − 64 MB headroom − 190 MB = 258 MB: 15 workers of 17 MB fit (with PSS, 5 would).
    const auto r = seed_formula(in);
    EXPECT_EQ(r.memory_ceiling, 15u) << r.reason;
}

TEST(PostgresShare, OnlyWhenLocalAndKnown) {
    DatabaseConfig db;
    EXPECT_EQ(postgres_share_bytes(db, GiB), 0u);
    db.postgres = PostgresMode::recommend;
    EXPECT_EQ(postgres_share_bytes(db, GiB), GiB / 4);
    db.location = DatabaseLocation::remote;
    EXPECT_EQ(postgres_share_bytes(db, GiB), 0u);
}

}  // namespace
}  // namespace tuner::policies
