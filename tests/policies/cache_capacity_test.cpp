// The micro-cache capacity policy (policies/cache_capacity.hpp) over hand-built snapshots: memory
// pressure halves cache.capacity (to its floor, at most once per cooldown), calm with headroom
// grows it back towards cache.size (only after the calm cycles, only as far as the memory stays
// below the target), the 80-90 % band holds, and a cache that is off is never decided on.
#include "policies/cache_capacity.hpp"

#include <gtest/gtest.h>

#include "model/knobs.hpp"
#include "policies/registry.hpp"
#include "tests/policies/snapshot_builder.hpp"

namespace tuner::policies {
namespace {

using testing::snapshot_at;

// A 512 MB cgroup with a 64 MB cache; each cycle is a second, and a decision is applied to the
// state as the actuator would (the cache then holds at most the new capacity).
struct CacheRun {
    CacheCapacityPolicy policy;
    CacheMemory cache{true, 64 * MiB, 64 * MiB, 40 * MiB};
    std::uint64_t held = 300 * MiB;  // the cgroup's working set
    std::uint64_t oom_kills = 0;
    double psi = 0;
    int second = 0;

    std::optional<Decision> cycle() {
        Snapshot s = snapshot_at(second++);
        s.memory.limited = true;
        s.memory.limit_bytes = 512 * MiB;
        s.memory.working_set_bytes = held;
        s.memory.oom_kills = oom_kills;
        s.pressure.memory = PressureResource{PressureLine{psi, 0, 0, 0}, std::nullopt};
        s.cache = cache;
        auto d = policy.decide(s);
        if (d) {
            cache.capacity_bytes = std::get<ByteSize>(d->new_value).bytes;
            cache.bytes = std::min(cache.bytes, cache.capacity_bytes);
        }
        return d;
    }
    std::optional<Decision> until_decision(int n) {
        for (int i = 0; i < n; ++i) {
            if (auto d = cycle()) return d;
        }
        return std::nullopt;
    }
};

TEST(CacheCapacity, PressureHalvesTheCapacityAtOnceWithTheNumbersInTheReason) {
    CacheRun run;
    run.held = 480 * MiB;  // 94 % of 512 MB
    const auto d = run.cycle();
    ASSERT_TRUE(d);
    EXPECT_TRUE(moves(*d, knob::cache_capacity));
    EXPECT_EQ(d->subsystem, "cache");
    EXPECT_EQ(d->rule, rule::cache_memory_pressure);
    EXPECT_EQ(std::get<ByteSize>(d->old_value).bytes, 64 * MiB);
    EXPECT_EQ(std::get<ByteSize>(d->new_value).bytes, 32 * MiB);
    EXPECT_NE(d->reason.find("working set 480MB = 94 % of memory.max 512MB"), std::string::npos)
        << d->reason;
    EXPECT_NE(d->reason.find("cache capacity 64MB → 32MB"), std::string::npos) << d->reason;
    EXPECT_NE(d->reason.find("holds 40MB: 8MB evicted at once"), std::string::npos) << d->reason;
    EXPECT_NE(d->inputs_json.find("\"held_bytes\""), std::string::npos);
    EXPECT_TRUE(find_policy(d->rule)) << "registered";
}

TEST(CacheCapacity, AnOomKillOrRisingMemoryPsiPressesToo) {
    CacheRun kills;
    EXPECT_FALSE(kills.cycle()) << "calm: 300 MB of 512 MB, at cache.size";
    kills.oom_kills = 1;
    const auto d = kills.cycle();
    ASSERT_TRUE(d);
    EXPECT_NE(d->reason.find("OOM kill"), std::string::npos) << d->reason;

    CacheRun psi;
    psi.psi = 5;
    EXPECT_FALSE(psi.cycle());
    psi.psi = 25;
    const auto p = psi.cycle();
    ASSERT_TRUE(p);
    EXPECT_NE(p->reason.find("memory PSI some avg10 25.0 % and rising"), std::string::npos)
        << p->reason;
}

TEST(CacheCapacity, LastingPressureHalvesOncePerCooldownDownToTheFloor) {
    CacheRun run;
    run.held = 500 * MiB;
    std::vector<int> changed_at;
    for (int i = 0; i < 60; ++i) {
        if (run.cycle()) changed_at.push_back(run.second);
    }
    // 64 → 32 → 16 → 8 → 4 MB: the floor is 64 MB / 16.
    EXPECT_EQ(cache_floor_bytes(64 * MiB), 4 * MiB);
    EXPECT_EQ(run.cache.capacity_bytes, 4 * MiB);
    ASSERT_EQ(changed_at.size(), 4u);
    for (std::size_t i = 1; i < changed_at.size(); ++i) {
        EXPECT_GE(changed_at[i] - changed_at[i - 1],
                  std::chrono::duration_cast<std::chrono::seconds>(kCacheShrinkCooldown).count());
    }
    EXPECT_FALSE(run.until_decision(30)) << "at the floor, pressure decides nothing more";
}

TEST(CacheCapacity, TheFloorIsAtLeastOneMebibyteAndNeverAboveTheSize) {
    EXPECT_EQ(cache_floor_bytes(1 * GiB), 64 * MiB);
    EXPECT_EQ(cache_floor_bytes(8 * MiB), 1 * MiB);
    EXPECT_EQ(cache_floor_bytes(512 * KiB), 512 * KiB);
    CacheRun small;
    small.cache = CacheMemory{true, 512 * KiB, 512 * KiB, 100 * KiB};
    small.held = 500 * MiB;
    EXPECT_FALSE(small.until_decision(10)) << "a cache at its floor is not shrunk";
}

TEST(CacheCapacity, HeadroomGrowsItBackTowardsTheSizeAfterCalmCycles) {
    CacheRun run;
    run.held = 480 * MiB;
    ASSERT_TRUE(run.cycle());  // 64 → 32 MB
    run.held = 300 * MiB;      // the workers gave memory back
    // No growth before kCacheCalmCycles calm cycles and kCacheGrowCooldown after the change.
    int waited = 0;
    std::optional<Decision> d;
    while (!d && waited < 120) {
        d = run.cycle();
        ++waited;
    }
    ASSERT_TRUE(d);
    EXPECT_GE(waited, std::chrono::duration_cast<std::chrono::seconds>(kCacheGrowCooldown).count());
    EXPECT_EQ(d->rule, rule::cache_headroom);
    EXPECT_EQ(std::get<ByteSize>(d->old_value).bytes, 32 * MiB);
    EXPECT_EQ(std::get<ByteSize>(d->new_value).bytes, 64 * MiB);
    EXPECT_NE(d->reason.find("memory held 300MB, 80 % of memory.max 512MB = 410MB: room for "
                             "110MB more → cache capacity 32MB → 64MB (towards cache.size 64MB)"),
              std::string::npos)
        << d->reason;
    EXPECT_FALSE(run.until_decision(120)) << "at cache.size: nothing more to grow";
}

TEST(CacheCapacity, TheBandBetweenTargetAndPressureHolds) {
    // 85 % of the line: no pressure (< 90 %), but no room below 80 % either: no flapping.
    CacheRun run;
    run.held = 480 * MiB;
    ASSERT_TRUE(run.cycle());
    run.held = 435 * MiB;
    EXPECT_FALSE(run.until_decision(120));
    EXPECT_EQ(run.cache.capacity_bytes, 32 * MiB);
}

TEST(CacheCapacity, GrowthStopsWhereTheMemoryWouldCrossTheTarget) {
    CacheRun run;
    run.held = 480 * MiB;
    ASSERT_TRUE(run.cycle());  // 64 → 32 MB
    run.held = 405 * MiB;      // 410 MB target: room for 5 MB, less than a quarter of 32 MB
    EXPECT_FALSE(run.until_decision(120));
    run.held = 360 * MiB;  // room for 50 MB: the whole way back to 64 MB
    const auto d = run.until_decision(120);
    ASSERT_TRUE(d);
    EXPECT_EQ(std::get<ByteSize>(d->new_value).bytes, 64 * MiB);
}

TEST(CacheCapacity, ACacheThatIsOffIsNeverDecidedOn) {
    CacheRun run;
    run.cache = CacheMemory{};  // cache.size = "0"
    run.held = 500 * MiB;
    run.oom_kills = 3;
    EXPECT_FALSE(run.until_decision(60));
}

TEST(CacheCapacity, HostMemoryWithoutACgroupLimit) {
    CacheCapacityPolicy policy;
    Snapshot s = snapshot_at(0);
    s.memory.host_total_bytes = 4 * GiB;
    s.memory.host_available_bytes = 300 * MiB;  // < 10 %
    s.cache = CacheMemory{true, 256 * MiB, 256 * MiB, 256 * MiB};
    const auto d = policy.decide(s);
    ASSERT_TRUE(d);
    EXPECT_EQ(std::get<ByteSize>(d->new_value).bytes, 128 * MiB);
    EXPECT_NE(d->reason.find("host MemAvailable 300MB"), std::string::npos) << d->reason;
}

}  // namespace
}  // namespace tuner::policies
