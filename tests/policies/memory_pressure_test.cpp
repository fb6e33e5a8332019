// Memory pressure: the signs before an OOM kill, and how many workers to give back.
#include "policies/memory_pressure.hpp"

#include <gtest/gtest.h>

namespace tuner::policies {
namespace {

Snapshot cgroup(std::uint64_t limit, std::uint64_t working_set) {
    Snapshot s;
    s.memory.limited = true;
    s.memory.limit_bytes = limit;
    s.memory.working_set_bytes = working_set;
    return s;
}

TEST(MemoryPressure, WorkingSetNearTheLimitReleasesEnoughWorkers) {
    // 480 MB of 512 MB: back under 80 % (410 MB) takes two workers of 60 MB.
    const auto p = memory_pressure(cgroup(512 * MiB, 480 * MiB), WorkerSignals{}, 60 * MiB);
    EXPECT_TRUE(p.pressing);
    EXPECT_EQ(p.release_workers, 2u);
    EXPECT_NE(p.cause.find("working set 480MB = 94 % of memory.max 512MB"), std::string::npos)
        << p.cause;
}

TEST(MemoryPressure, ActivePageCacheDoesNotCountTowardsTheLine) {
    // Two gunicorn slots of 178 MB in 512 MB with 105 MB of imported modules and logs on the
    // active file list: a working set of 467 MB (91 %), yet only 362 MB the kernel cannot reclaim.
    Snapshot s = cgroup(512 * MiB, 467 * MiB);
    s.memory.active_file_bytes = 105 * MiB;
    EXPECT_FALSE(memory_pressure(s, WorkerSignals{}, 178 * MiB).pressing);
    // Anonymous memory grown into the line presses although the cache shrank.
    s.memory.working_set_bytes = 500 * MiB;
    s.memory.active_file_bytes = 20 * MiB;
    const auto p = memory_pressure(s, WorkerSignals{}, 178 * MiB);
    EXPECT_TRUE(p.pressing);
    EXPECT_EQ(p.held_bytes, 480 * MiB);
    EXPECT_EQ(p.release_workers, 1u);  // 480 MB − 410 MB target: one worker of 178 MB
    EXPECT_NE(p.cause.find("working set 500MB less 20MB active page cache = 480MB = 94 % of "
                           "memory.max 512MB"),
              std::string::npos)
        << p.cause;
}

TEST(MemoryPressure, BelowTheLineIsNoPressure) {
    EXPECT_FALSE(memory_pressure(cgroup(512 * MiB, 400 * MiB), WorkerSignals{}, 60 * MiB).pressing);
}

TEST(MemoryPressure, MemoryHighIsTheLineWhenLower) {
    Snapshot s = cgroup(1 * GiB, 300 * MiB);
    s.memory.high_bytes = 320 * MiB;
    const auto p = memory_pressure(s, WorkerSignals{}, 50 * MiB);
    EXPECT_TRUE(p.pressing);
    EXPECT_NE(p.cause.find("memory.high"), std::string::npos);
}

TEST(MemoryPressure, ANewOomKillPressesWhateverTheWorkingSet) {
    WorkerSignals signals;
    signals.new_oom_kills = 1;
    const auto p = memory_pressure(cgroup(512 * MiB, 100 * MiB), signals, 60 * MiB);
    EXPECT_TRUE(p.pressing);
    EXPECT_EQ(p.release_workers, 1u);
    EXPECT_NE(p.cause.find("OOM kill"), std::string::npos);
}

TEST(MemoryPressure, RisingMemoryPsiPresses) {
    WorkerSignals signals;
    signals.memory_psi_some_avg10 = 15;
    signals.memory_psi_rise = 3;
    EXPECT_TRUE(memory_pressure(cgroup(512 * MiB, 300 * MiB), signals, 60 * MiB).pressing);
    signals.memory_psi_rise = -1;  // high but falling: the last shrink is working
    EXPECT_FALSE(memory_pressure(cgroup(512 * MiB, 300 * MiB), signals, 60 * MiB).pressing);
}

}  // namespace
}  // namespace tuner::policies
