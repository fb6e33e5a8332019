// The Prober on fixture trees, one per scenario: v2 and v1 limited and unlimited, hybrid, a
// tighter parent, a narrow cpuset, no PSI, and containers whose mount root is not "/".
#include <gtest/gtest.h>

#include "probes/prober.hpp"
#include "tests/probes/probe_test_support.hpp"

namespace tuner::probes {
namespace {

using testing::fixture;
using testing::fixture_roots;
using testing::kFixturePid;

Snapshot probe(const std::string& scenario) {
    Prober prober(fixture_roots(fixture(scenario)), kFixturePid);
    Snapshot s;
    prober.sample(s, {});
    return s;
}

std::string problems_of(const Snapshot& s) {
    std::string all;
    for (const auto& p : s.problems) all += p + "\n";
    return all;
}

TEST(ProberScenario, V2Limited) {
    const Snapshot s = probe("cgroup2-limited");
    EXPECT_TRUE(s.problems.empty()) << problems_of(s);
    EXPECT_EQ(s.cgroup.version, CgroupVersion::v2);
    EXPECT_EQ(s.cgroup.path, "/app.slice/web.service");
    EXPECT_EQ(s.cpu.host_cores, 4u);
    ASSERT_TRUE(s.cpu.quota_cores);
    EXPECT_DOUBLE_EQ(*s.cpu.quota_cores, 1.5);
    EXPECT_EQ(s.cpu.quota_cgroup, "/app.slice/web.service");
    EXPECT_EQ(s.cpu.effective_cores, 2u);
    EXPECT_EQ(s.cpu.source, "quota");
    EXPECT_EQ(s.cpu.usage_usec, 123456789u);
    EXPECT_EQ(s.cpu.nr_periods, 1000u);
    EXPECT_EQ(s.cpu.nr_throttled, 50u);
    EXPECT_EQ(s.cpu.throttled_usec, 2500000u);
    EXPECT_TRUE(s.memory.limited);
    EXPECT_EQ(s.memory.limit_bytes, 536870912u);
    EXPECT_EQ(s.memory.source, "cgroup memory.max at /app.slice/web.service");
    EXPECT_FALSE(s.memory.high_bytes);
    EXPECT_EQ(s.memory.usage_bytes, 200 * MiB);
    EXPECT_EQ(s.memory.inactive_file_bytes, 50 * MiB);
    EXPECT_EQ(s.memory.working_set_bytes, 150 * MiB);
    EXPECT_EQ(s.memory.active_file_bytes, 50 * MiB);
    EXPECT_EQ(s.memory.unreclaimable_bytes(), 100 * MiB);
    EXPECT_EQ(s.memory.oom_kills, 3u);
    EXPECT_EQ(s.memory.host_total_bytes, 8 * GiB);
    EXPECT_EQ(s.memory.host_available_bytes, 6 * GiB);
    // The cgroup's own PSI wins over the host's.
    EXPECT_EQ(s.pressure.source, "cgroup /app.slice/web.service");
    ASSERT_TRUE(s.pressure.memory && s.pressure.memory->full);
    EXPECT_DOUBLE_EQ(s.pressure.memory->some->avg10, 2.5);
    EXPECT_DOUBLE_EQ(s.pressure.memory->full->avg10, 1.0);
    EXPECT_EQ(s.pressure.io->some->total_usec, 300000u);
}

TEST(ProberScenario, V2Unlimited) {
    const Snapshot s = probe("cgroup2-unlimited");
    EXPECT_TRUE(s.problems.empty()) << problems_of(s);
    EXPECT_EQ(s.cgroup.version, CgroupVersion::v2);
    EXPECT_FALSE(s.cpu.quota_cores);
    EXPECT_EQ(s.cpu.effective_cores, 4u);
    EXPECT_EQ(s.cpu.source, "host");
    EXPECT_FALSE(s.memory.limited);
    EXPECT_EQ(s.memory.limit_bytes, 4 * GiB);
    EXPECT_EQ(s.memory.source, "host MemTotal");
    EXPECT_EQ(s.memory.usage_bytes, 100 * MiB);
    EXPECT_EQ(s.memory.working_set_bytes, 80 * MiB);
    EXPECT_EQ(s.pressure.source, "/proc/pressure");
    ASSERT_TRUE(s.pressure.cpu);
    EXPECT_DOUBLE_EQ(s.pressure.cpu->some->avg10, 9.0);
}

TEST(ProberScenario, V1Limited) {
    const Snapshot s = probe("cgroup1-limited");
    EXPECT_TRUE(s.problems.empty()) << problems_of(s);
    EXPECT_EQ(s.cgroup.version, CgroupVersion::v1);
    EXPECT_EQ(s.cgroup.path, "/tunerd");
    EXPECT_EQ(s.cgroup.cpu_path, "/tunerd");
    ASSERT_TRUE(s.cpu.quota_cores);
    EXPECT_DOUBLE_EQ(*s.cpu.quota_cores, 0.5);
    EXPECT_EQ(s.cpu.effective_cores, 1u);
    EXPECT_EQ(s.cpu.source, "quota");
    EXPECT_EQ(s.cpu.usage_usec, 5000000u);  // cpuacct.usage ns → µs
    EXPECT_EQ(s.cpu.nr_throttled, 300u);
    EXPECT_EQ(s.cpu.throttled_usec, 4500000u);
    EXPECT_TRUE(s.memory.limited);
    EXPECT_EQ(s.memory.limit_bytes, 268435456u);
    EXPECT_EQ(s.memory.source, "cgroup memory.limit_in_bytes at /tunerd");
    EXPECT_EQ(s.memory.usage_bytes, 100 * MiB);
    EXPECT_EQ(s.memory.inactive_file_bytes, 10 * MiB);  // total_inactive_file, not inactive_file
    EXPECT_EQ(s.memory.working_set_bytes, 90 * MiB);
    EXPECT_EQ(s.memory.active_file_bytes, 10 * MiB);  // total_active_file
    EXPECT_EQ(s.memory.unreclaimable_bytes(), 80 * MiB);
    EXPECT_EQ(s.memory.oom_kills, 2u);
    EXPECT_EQ(s.pressure.source, "/proc/pressure");
}

TEST(ProberScenario, V1Unlimited) {
    const Snapshot s = probe("cgroup1-unlimited");
    EXPECT_TRUE(s.problems.empty()) << problems_of(s);
    EXPECT_EQ(s.cgroup.version, CgroupVersion::v1);
    EXPECT_EQ(s.cgroup.path, "/");
    EXPECT_FALSE(s.cpu.quota_cores);
    EXPECT_EQ(s.cpu.effective_cores, 2u);
    EXPECT_EQ(s.cpu.source, "host");
    EXPECT_FALSE(s.memory.limited);  // 9223372036854771712 is no limit
    EXPECT_EQ(s.memory.limit_bytes, GiB);
    EXPECT_EQ(s.memory.source, "host MemTotal");
    EXPECT_EQ(s.memory.usage_bytes, 300 * MiB);
    EXPECT_EQ(s.cpu.usage_usec, 987654321u);
}

TEST(ProberScenario, HybridTakesCpuAndMemoryFromV1AndPsiFromCgroup2) {
    const Snapshot s = probe("cgroup-hybrid");
    EXPECT_TRUE(s.problems.empty()) << problems_of(s);
    EXPECT_EQ(s.cgroup.version, CgroupVersion::hybrid);
    EXPECT_EQ(s.cgroup.path, "/process_api/b833");
    EXPECT_EQ(s.cgroup.memory_path, "/process_api/b833");
    EXPECT_EQ(s.cgroup.cpu_path, "/");
    EXPECT_EQ(s.cpu.effective_cores, 2u);
    EXPECT_EQ(s.cpu.source, "host");
    EXPECT_EQ(s.cpu.usage_usec, 4242000u);  // v1 cpuacct.usage, not the v2 root's cpu.stat
    EXPECT_TRUE(s.memory.limited);
    EXPECT_EQ(s.memory.limit_bytes, GiB);
    EXPECT_EQ(s.memory.source, "cgroup memory.limit_in_bytes at /process_api/b833");
    EXPECT_EQ(s.memory.oom_kills, 1u);
    EXPECT_EQ(s.pressure.source, "cgroup /");
    ASSERT_TRUE(s.pressure.cpu);
    EXPECT_DOUBLE_EQ(s.pressure.cpu->some->avg10, 1.25);
}

TEST(ProberScenario, NestedParentIsTighter) {
    const Snapshot s = probe("cgroup2-nested");
    EXPECT_TRUE(s.problems.empty()) << problems_of(s);
    EXPECT_EQ(s.cgroup.path, "/outer/inner");
    ASSERT_TRUE(s.cpu.quota_cores);
    EXPECT_DOUBLE_EQ(*s.cpu.quota_cores, 1.0);
    EXPECT_EQ(s.cpu.quota_cgroup, "/outer");
    EXPECT_EQ(s.cpu.effective_cores, 1u);
    EXPECT_EQ(s.memory.limit_bytes, 256 * MiB);
    EXPECT_EQ(s.memory.source, "cgroup memory.max at /outer");
    EXPECT_EQ(s.memory.high_bytes.value_or(0), 768 * MiB);
}

TEST(ProberScenario, CpusetNarrowerThanQuota) {
    const Snapshot s = probe("cgroup2-cpuset");
    EXPECT_TRUE(s.problems.empty()) << problems_of(s);
    EXPECT_EQ(s.cpu.host_cores, 8u);
    EXPECT_EQ(s.cpu.affinity_cores, 2u);
    EXPECT_DOUBLE_EQ(s.cpu.quota_cores.value_or(0), 4.0);
    EXPECT_EQ(s.cpu.effective_cores, 2u);
    EXPECT_EQ(s.cpu.source, "cpuset");
}

TEST(ProberScenario, PsiAbsentIsNormal) {
    const Snapshot s = probe("cgroup2-nopsi");
    EXPECT_TRUE(s.problems.empty()) << problems_of(s);
    EXPECT_EQ(s.pressure.source, "");
    EXPECT_FALSE(s.pressure.cpu || s.pressure.memory || s.pressure.io);
    EXPECT_EQ(s.cpu.effective_cores, 1u);
    EXPECT_EQ(s.memory.limit_bytes, GiB);
}

TEST(ProberScenario, V2ContainerMapsPathThroughMountRoot) {
    const Snapshot s = probe("cgroup2-container");
    EXPECT_TRUE(s.problems.empty()) << problems_of(s);
    EXPECT_EQ(s.cgroup.path, "/kubepods/pod1/app");
    EXPECT_DOUBLE_EQ(s.cpu.quota_cores.value_or(0), 0.5);
    EXPECT_EQ(s.cpu.quota_cgroup, "/kubepods/pod1");
    EXPECT_EQ(s.memory.limit_bytes, 384 * MiB);
    EXPECT_EQ(s.memory.source, "cgroup memory.max at /kubepods/pod1");
    EXPECT_EQ(s.memory.usage_bytes, 64 * MiB);
    EXPECT_EQ(s.memory.oom_kills, 1u);
}

TEST(ProberScenario, V1ContainerUsesHierarchicalLimitFromAboveTheMountRoot) {
    const Snapshot s = probe("cgroup1-container");
    EXPECT_TRUE(s.problems.empty()) << problems_of(s);
    EXPECT_EQ(s.cgroup.version, CgroupVersion::v1);
    EXPECT_EQ(s.cgroup.path, "/docker/abc123");
    EXPECT_EQ(s.cpu.effective_cores, 2u);
    EXPECT_EQ(s.cpu.quota_cgroup, "/docker/abc123");
    EXPECT_TRUE(s.memory.limited);
    EXPECT_EQ(s.memory.limit_bytes, 512 * MiB);
    EXPECT_EQ(s.memory.source, "cgroup hierarchical_memory_limit in memory.stat at /docker/abc123");
    EXPECT_EQ(s.memory.oom_kills, 0u);  // kernel without the oom_kill line
}

}  // namespace
}  // namespace tuner::probes
