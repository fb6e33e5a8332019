// One test group per CPU file: missing, empty, malformed, maximum value and a valid sample.
#include <gtest/gtest.h>

#include "probes/cpu_limits.hpp"
#include "probes/cpu_usage.hpp"
#include "tests/probes/probe_test_support.hpp"

namespace tuner::probes {
namespace {

using testing::ScratchDir;

// ---- v2 cpu.max ----

TEST(CpuMax, ReadsQuotaAndPeriod) {
    ScratchDir d;
    d.write("cpu.max", "150000 100000\n");
    auto q = read_cpu_max(d.path());
    ASSERT_TRUE(q.ok()) << q.error().to_string();
    ASSERT_TRUE(q->has_value());
    EXPECT_EQ((*q)->quota_usec, 150000u);
    EXPECT_EQ((*q)->period_usec, 100000u);
    EXPECT_DOUBLE_EQ((*q)->cores(), 1.5);
}

TEST(CpuMax, MaxMeansNoLimit) {
    ScratchDir d;
    d.write("cpu.max", "max 100000\n");
    auto q = read_cpu_max(d.path());
    ASSERT_TRUE(q.ok());
    EXPECT_FALSE(q->has_value());
}

TEST(CpuMax, MissingFileIsNoLimit) {
    ScratchDir d;
    auto q = read_cpu_max(d.path());
    ASSERT_TRUE(q.ok());
    EXPECT_FALSE(q->has_value());
}

TEST(CpuMax, EmptyFileIsErrorNamingIt) {
    ScratchDir d;
    d.write("cpu.max", "");
    auto q = read_cpu_max(d.path());
    ASSERT_FALSE(q.ok());
    EXPECT_EQ(q.error().where, d.path() + "/cpu.max");
}

TEST(CpuMax, MalformedIsQuoted) {
    ScratchDir d;
    d.write("cpu.max", "lots 100000\n");
    auto q = read_cpu_max(d.path());
    ASSERT_FALSE(q.ok());
    EXPECT_NE(q.error().what.find("\"lots 100000\\n\""), std::string::npos) << q.error().what;
}

TEST(CpuMax, ZeroPeriodIsMalformed) {
    ScratchDir d;
    d.write("cpu.max", "100000 0\n");
    EXPECT_FALSE(read_cpu_max(d.path()).ok());
}

TEST(CpuMax, LargestQuotaIsRead) {
    ScratchDir d;
    d.write("cpu.max", "18446744073709551615 100000\n");
    auto q = read_cpu_max(d.path());
    ASSERT_TRUE(q.ok());
    ASSERT_TRUE(q->has_value());
    EXPECT_EQ((*q)->quota_usec, UINT64_MAX);
}

// ---- v1 cpu.cfs_quota_us / cpu.cfs_period_us ----

TEST(CfsQuota, ReadsQuotaOverPeriod) {
    ScratchDir d;
    d.write("cpu.cfs_quota_us", "50000\n");
    d.write("cpu.cfs_period_us", "100000\n");
    auto q = read_cfs_quota_v1(d.path());
    ASSERT_TRUE(q.ok()) << q.error().to_string();
    ASSERT_TRUE(q->has_value());
    EXPECT_DOUBLE_EQ((*q)->cores(), 0.5);
}

TEST(CfsQuota, MinusOneMeansNoLimit) {
    ScratchDir d;
    d.write("cpu.cfs_quota_us", "-1\n");
    d.write("cpu.cfs_period_us", "100000\n");
    auto q = read_cfs_quota_v1(d.path());
    ASSERT_TRUE(q.ok());
    EXPECT_FALSE(q->has_value());
}

TEST(CfsQuota, MissingFilesAreNoLimit) {
    ScratchDir d;
    auto q = read_cfs_quota_v1(d.path());
    ASSERT_TRUE(q.ok());
    EXPECT_FALSE(q->has_value());
}

TEST(CfsQuota, EmptyQuotaIsError) {
    ScratchDir d;
    d.write("cpu.cfs_quota_us", "");
    auto q = read_cfs_quota_us(d.path());
    ASSERT_FALSE(q.ok());
    EXPECT_EQ(q.error().where, d.path() + "/cpu.cfs_quota_us");
}

TEST(CfsQuota, MalformedQuotaIsQuoted) {
    ScratchDir d;
    d.write("cpu.cfs_quota_us", "half\n");
    auto q = read_cfs_quota_us(d.path());
    ASSERT_FALSE(q.ok());
    EXPECT_NE(q.error().what.find("\"half\""), std::string::npos);
}

TEST(CfsQuota, LargestQuotaIsRead) {
    ScratchDir d;
    d.write("cpu.cfs_quota_us", "9223372036854775807\n");
    auto q = read_cfs_quota_us(d.path());
    ASSERT_TRUE(q.ok());
    ASSERT_TRUE(q->has_value());
    EXPECT_EQ(**q, 9223372036854775807u);
}

TEST(CfsPeriod, EmptyAndZeroAreErrors) {
    ScratchDir d;
    d.write("cpu.cfs_period_us", "");
    EXPECT_FALSE(read_cfs_period_us(d.path()).ok());
    d.write("cpu.cfs_period_us", "0\n");
    EXPECT_FALSE(read_cfs_period_us(d.path()).ok());
}

TEST(CfsPeriod, MalformedIsQuoted) {
    ScratchDir d;
    d.write("cpu.cfs_period_us", "1e5\n");
    auto p = read_cfs_period_us(d.path());
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().what.find("\"1e5\""), std::string::npos);
}

TEST(CfsPeriod, LargestPeriodIsRead) {
    ScratchDir d;
    d.write("cpu.cfs_period_us", "18446744073709551615\n");
    EXPECT_EQ(read_cfs_period_us(d.path())->value_or(0), UINT64_MAX);
}

TEST(CfsPeriod, MissingIsEmpty) {
    ScratchDir d;
    auto p = read_cfs_period_us(d.path());
    ASSERT_TRUE(p.ok());
    EXPECT_FALSE(p->has_value());
}

// ---- cpusets ----

TEST(Cpuset, V2ReadsEffectiveList) {
    ScratchDir d;
    d.write("cpuset.cpus.effective", "0-1,4\n");
    auto n = read_cpuset_cpu_count(ControllerDir{2, "/", d.path(), d.path(), "/"});
    ASSERT_TRUE(n.ok());
    ASSERT_TRUE(n->has_value());
    EXPECT_EQ(**n, 3u);
}

TEST(Cpuset, V1PrefersEffectiveCpusOverCpus) {
    ScratchDir d;
    d.write("cpuset.effective_cpus", "0\n");
    d.write("cpuset.cpus", "0-7\n");
    auto n = read_cpuset_cpu_count(ControllerDir{1, "/", d.path(), d.path(), "/"});
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(n->value_or(0), 1u);
}

TEST(Cpuset, V1FallsBackToCpus) {
    ScratchDir d;
    d.write("cpuset.cpus", "0-7\n");
    auto n = read_cpuset_cpu_count(ControllerDir{1, "/", d.path(), d.path(), "/"});
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(n->value_or(0), 8u);
}

TEST(Cpuset, MissingIsEmptyAndEmptyListIsError) {
    ScratchDir d;
    auto missing = read_cpuset_cpu_count(ControllerDir{2, "/", d.path(), d.path(), "/"});
    ASSERT_TRUE(missing.ok());
    EXPECT_FALSE(missing->has_value());
    d.write("cpuset.cpus.effective", "\n");
    auto empty = read_cpuset_cpu_count(ControllerDir{2, "/", d.path(), d.path(), "/"});
    EXPECT_FALSE(empty.ok());
}

TEST(Cpuset, LargestCpuListIsCounted) {
    ScratchDir d;
    d.write("cpuset.cpus.effective", "0-65535\n");
    auto n = read_cpuset_cpu_count(ControllerDir{2, "/", d.path(), d.path(), "/"});
    ASSERT_TRUE(n.ok()) << n.error().to_string();
    EXPECT_EQ(n->value_or(0), 65536u);
}

TEST(Cpuset, MalformedListIsQuoted) {
    ScratchDir d;
    d.write("cpuset.cpus.effective", "0-x\n");
    auto n = read_cpuset_cpu_count(ControllerDir{2, "/", d.path(), d.path(), "/"});
    ASSERT_FALSE(n.ok());
    EXPECT_NE(n.error().what.find("\"0-x\""), std::string::npos);
}

TEST(OnlineCpus, MissingFileIsError) {
    ScratchDir d;
    EXPECT_FALSE(read_online_cpus(d.path()).ok());
    d.write("sys/devices/system/cpu/online", "0-63\n");
    auto n = read_online_cpus(d.path());
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, 64u);
}

TEST(Affinity, LiveProcessHasAtLeastOneCpu) {
    auto n = read_affinity_cpus(0);
    ASSERT_TRUE(n.ok()) << n.error().to_string();
    EXPECT_GE(*n, 1u);
}

// ---- effective cores ----

CpuInfo cpu_with(unsigned host, unsigned affinity, std::optional<double> quota) {
    CpuInfo c;
    c.host_cores = host;
    c.affinity_cores = affinity;
    c.quota_cores = quota;
    resolve_effective_cores(c);
    return c;
}

TEST(EffectiveCores, QuotaRoundsUpAndWins) {
    const auto c = cpu_with(4, 4, 1.5);
    EXPECT_EQ(c.effective_cores, 2u);
    EXPECT_EQ(c.source, "quota");
}

TEST(EffectiveCores, HalfCoreQuotaIsOneCore) {
    const auto c = cpu_with(2, 2, 0.5);
    EXPECT_EQ(c.effective_cores, 1u);
    EXPECT_EQ(c.source, "quota");
}

TEST(EffectiveCores, NarrowCpusetBeatsLargeQuota) {
    const auto c = cpu_with(8, 2, 4.0);
    EXPECT_EQ(c.effective_cores, 2u);
    EXPECT_EQ(c.source, "cpuset");
}

TEST(EffectiveCores, UnlimitedIsHostCores) {
    const auto c = cpu_with(4, 4, std::nullopt);
    EXPECT_EQ(c.effective_cores, 4u);
    EXPECT_EQ(c.source, "host");
}

TEST(EffectiveCores, ZeroQuotaStillGivesOneCore) {
    const auto c = cpu_with(4, 4, 0.0);
    EXPECT_EQ(c.effective_cores, 1u);
}

TEST(EffectiveCores, HugeQuotaFallsBackToHost) {
    const auto c = cpu_with(4, 4, 1.8e14);
    EXPECT_EQ(c.effective_cores, 4u);
    EXPECT_EQ(c.source, "host");
}

// ---- usage counters ----

TEST(CpuStatV2, ReadsUsageAndThrottling) {
    ScratchDir d;
    d.write("cpu.stat",
            "usage_usec 900\nuser_usec 600\nsystem_usec 300\nnr_periods 10\nnr_throttled 4\n"
            "throttled_usec 2000\n");
    auto s = read_cpu_stat_v2(d.path());
    ASSERT_TRUE(s.ok()) << s.error().to_string();
    ASSERT_TRUE(s->has_value());
    EXPECT_EQ((*s)->usage_usec, 900u);
    EXPECT_EQ((*s)->nr_periods, 10u);
    EXPECT_EQ((*s)->nr_throttled, 4u);
    EXPECT_EQ((*s)->throttled_usec, 2000u);
}

TEST(CpuStatV2, WithoutCpuControllerHasOnlyUsage) {
    ScratchDir d;
    d.write("cpu.stat", "usage_usec 18446744073709551615\nuser_usec 1\nsystem_usec 2\n");
    auto s = read_cpu_stat_v2(d.path());
    ASSERT_TRUE(s.ok());
    EXPECT_EQ((*s)->usage_usec, UINT64_MAX);
    EXPECT_EQ((*s)->nr_periods, 0u);
}

TEST(CpuStatV2, MissingEmptyAndMalformed) {
    ScratchDir d;
    auto missing = read_cpu_stat_v2(d.path());
    ASSERT_TRUE(missing.ok());
    EXPECT_FALSE(missing->has_value());
    d.write("cpu.stat", "");
    EXPECT_FALSE(read_cpu_stat_v2(d.path()).ok());
    d.write("cpu.stat", "usage_usec many\n");
    auto bad = read_cpu_stat_v2(d.path());
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().what.find("usage_usec many"), std::string::npos);
}

TEST(CpuStatV1, ConvertsThrottledNanoseconds) {
    ScratchDir d;
    d.write("cpu.stat", "nr_periods 20\nnr_throttled 5\nthrottled_time 7000000\n");
    auto s = read_cpu_stat_v1(d.path());
    ASSERT_TRUE(s.ok());
    EXPECT_EQ((*s)->nr_periods, 20u);
    EXPECT_EQ((*s)->nr_throttled, 5u);
    EXPECT_EQ((*s)->throttled_usec, 7000u);
    EXPECT_FALSE((*s)->usage_usec);
}

TEST(CpuStatV1, MissingEmptyAndMalformed) {
    ScratchDir d;
    EXPECT_FALSE(read_cpu_stat_v1(d.path())->has_value());
    d.write("cpu.stat", "\n");
    EXPECT_FALSE(read_cpu_stat_v1(d.path()).ok());
    d.write("cpu.stat", "nr_periods -3\n");
    EXPECT_FALSE(read_cpu_stat_v1(d.path()).ok());
}

TEST(CpuStatV1, MaximumCounters) {
    ScratchDir d;
    d.write("cpu.stat",
            "nr_periods 18446744073709551615\nnr_throttled 18446744073709551615\n"
            "throttled_time 18446744073709551615\n");
    auto s = read_cpu_stat_v1(d.path());
    ASSERT_TRUE(s.ok());
    EXPECT_EQ((*s)->nr_periods, UINT64_MAX);
    EXPECT_EQ((*s)->throttled_usec, UINT64_MAX / 1000);
}

TEST(CpuacctUsage, ConvertsNanosecondsToMicroseconds) {
    ScratchDir d;
    d.write("cpuacct.usage", "5000000000\n");
    auto u = read_cpuacct_usage_usec(d.path());
    ASSERT_TRUE(u.ok());
    EXPECT_EQ(u->value_or(0), 5000000u);
}

TEST(CpuacctUsage, MissingEmptyMalformedAndMaximum) {
    ScratchDir d;
    EXPECT_FALSE(read_cpuacct_usage_usec(d.path())->has_value());
    d.write("cpuacct.usage", "");
    EXPECT_FALSE(read_cpuacct_usage_usec(d.path()).ok());
    d.write("cpuacct.usage", "12 34\n");
    EXPECT_FALSE(read_cpuacct_usage_usec(d.path()).ok());
    d.write("cpuacct.usage", "18446744073709551615\n");
    EXPECT_EQ(read_cpuacct_usage_usec(d.path())->value_or(0), UINT64_MAX / 1000);
}

TEST(CpuUtilisation, IsUsageOverCapacity) {
    // 0.25 s of CPU in 1 s against a 0.5-core quota: half of it.
    EXPECT_DOUBLE_EQ(*cpu_utilisation(1'000'000, 1'250'000, 1e6, 0.5), 0.5);
}

TEST(CpuUtilisation, CounterGoingBackwardsIsUnknown) {
    EXPECT_FALSE(cpu_utilisation(2000, 1000, 1e6, 1.0));
    EXPECT_FALSE(cpu_utilisation(1000, 2000, 0, 1.0));
}

}  // namespace
}  // namespace tuner::probes
