// One test group per memory file: missing, empty, malformed, maximum value and a valid sample.
#include <gtest/gtest.h>

#include "probes/memory_probe.hpp"
#include "tests/probes/probe_test_support.hpp"

namespace tuner::probes {
namespace {

using testing::ScratchDir;

// The limit files share one shape: a number, "max" (v2) or a huge value (v1).
struct LimitFile {
    const char* name;
    Result<std::optional<std::uint64_t>> (*read)(const std::string&);
    const char* maximum;  // what the kernel writes for "no limit"
};

class LimitFiles : public ::testing::TestWithParam<LimitFile> {};

TEST_P(LimitFiles, ReadsBytes) {
    ScratchDir d;
    d.write(GetParam().name, "536870912\n");
    auto v = GetParam().read(d.path());
    ASSERT_TRUE(v.ok()) << v.error().to_string();
    EXPECT_EQ(v->value_or(0), 536870912u);
}

TEST_P(LimitFiles, MaximumMeansNoLimit) {
    ScratchDir d;
    d.write(GetParam().name, std::string(GetParam().maximum) + "\n");
    auto v = GetParam().read(d.path());
    ASSERT_TRUE(v.ok()) << v.error().to_string();
    EXPECT_FALSE(v->has_value());
}

TEST_P(LimitFiles, MissingMeansNoLimit) {
    ScratchDir d;
    auto v = GetParam().read(d.path());
    ASSERT_TRUE(v.ok());
    EXPECT_FALSE(v->has_value());
}

TEST_P(LimitFiles, EmptyIsErrorNamingFile) {
    ScratchDir d;
    d.write(GetParam().name, "");
    auto v = GetParam().read(d.path());
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.error().where, d.path() + "/" + GetParam().name);
}

TEST_P(LimitFiles, MalformedIsQuoted) {
    ScratchDir d;
    d.write(GetParam().name, "512M\n");
    auto v = GetParam().read(d.path());
    ASSERT_FALSE(v.ok());
    EXPECT_NE(v.error().what.find("\"512M\""), std::string::npos) << v.error().what;
}

INSTANTIATE_TEST_SUITE_P(MemoryLimits, LimitFiles,
                         ::testing::Values(LimitFile{"memory.max", read_memory_max, "max"},
                                           LimitFile{"memory.high", read_memory_high, "max"},
                                           LimitFile{"memory.limit_in_bytes",
                                                     read_memory_limit_in_bytes,
                                                     "9223372036854771712"}),
                         [](const auto& info) {
                             std::string name = info.param.name;
                             std::replace(name.begin(), name.end(), '.', '_');
                             return name;
                         });

TEST(MemoryLimitInBytes, JustBelowTwoToTheSixtyTwoIsALimit) {
    ScratchDir d;
    d.write("memory.limit_in_bytes", std::to_string(kV1UnlimitedBytes - 4096) + "\n");
    EXPECT_TRUE(read_memory_limit_in_bytes(d.path())->has_value());
}

// Usage counters: a plain number.
TEST(MemoryUsage, CurrentAndUsageInBytes) {
    ScratchDir d;
    d.write("memory.current", "18446744073709551615\n");
    d.write("memory.usage_in_bytes", "104857600\n");
    EXPECT_EQ(read_memory_current(d.path())->value_or(0), UINT64_MAX);
    EXPECT_EQ(read_memory_usage_in_bytes(d.path())->value_or(0), 104857600u);
}

TEST(MemoryUsage, MissingEmptyAndMalformed) {
    ScratchDir d;
    EXPECT_FALSE(read_memory_current(d.path())->has_value());
    d.write("memory.current", "");
    EXPECT_FALSE(read_memory_current(d.path()).ok());
    d.write("memory.usage_in_bytes", "-5\n");
    auto bad = read_memory_usage_in_bytes(d.path());
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().what.find("\"-5\""), std::string::npos);
}

TEST(MemoryStatV2, ReadsInactiveAndActiveFile) {
    ScratchDir d;
    d.write("memory.stat", "anon 100\nactive_file 7\ninactive_file 52428800\n");
    const auto s = read_memory_stat_v2(d.path());
    ASSERT_TRUE(s.ok() && s->has_value());
    EXPECT_EQ((*s)->inactive_file_bytes, 52428800u);
    EXPECT_EQ((*s)->active_file_bytes, 7u);
    d.write("memory.stat", "inactive_file 3\n");  // active_file absent: 0
    EXPECT_EQ((*read_memory_stat_v2(d.path()))->active_file_bytes, 0u);
}

TEST(MemoryStatV2, MissingEmptyAndMalformed) {
    ScratchDir d;
    EXPECT_FALSE(read_memory_stat_v2(d.path())->has_value());
    d.write("memory.stat", "");
    auto empty = read_memory_stat_v2(d.path());
    ASSERT_FALSE(empty.ok());
    EXPECT_NE(empty.error().what.find("inactive_file"), std::string::npos);
    d.write("memory.stat", "inactive_file 1.5\n");
    EXPECT_FALSE(read_memory_stat_v2(d.path()).ok());
    d.write("memory.stat", "inactive_file 1\nactive_file -2\n");
    EXPECT_FALSE(read_memory_stat_v2(d.path()).ok());
}

TEST(MemoryStatV2, MaximumValue) {
    ScratchDir d;
    d.write("memory.stat", "inactive_file 18446744073709551615\n");
    EXPECT_EQ((*read_memory_stat_v2(d.path()))->inactive_file_bytes, UINT64_MAX);
}

TEST(MemoryStatV1, PrefersTotalInactiveFileAndReadsHierarchicalLimit) {
    ScratchDir d;
    d.write("memory.stat",
            "inactive_file 1\nactive_file 2\nhierarchical_memory_limit 268435456\n"
            "total_inactive_file 9\ntotal_active_file 11\n");
    auto s = read_memory_stat_v1(d.path());
    ASSERT_TRUE(s.ok()) << s.error().to_string();
    EXPECT_EQ((*s)->inactive_file_bytes, 9u);
    EXPECT_EQ((*s)->active_file_bytes, 11u);
    EXPECT_EQ((*s)->hierarchical_limit_bytes.value_or(0), 268435456u);
}

TEST(MemoryStatV1, FallsBackToInactiveFileAndTreatsHugeHierarchicalAsUnlimited) {
    ScratchDir d;
    d.write("memory.stat",
            "inactive_file 4\nactive_file 5\nhierarchical_memory_limit 9223372036854771712\n");
    auto s = read_memory_stat_v1(d.path());
    ASSERT_TRUE(s.ok());
    EXPECT_EQ((*s)->inactive_file_bytes, 4u);
    EXPECT_EQ((*s)->active_file_bytes, 5u);
    EXPECT_FALSE((*s)->hierarchical_limit_bytes);
}

TEST(MemoryStatV1, MissingEmptyAndMalformed) {
    ScratchDir d;
    EXPECT_FALSE(read_memory_stat_v1(d.path())->has_value());
    d.write("memory.stat", "");
    EXPECT_FALSE(read_memory_stat_v1(d.path()).ok());
    d.write("memory.stat", "total_inactive_file x\n");
    EXPECT_FALSE(read_memory_stat_v1(d.path()).ok());
}

TEST(OomKills, V2EventsAndV1OomControl) {
    ScratchDir d;
    d.write("memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n");
    d.write("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n");
    EXPECT_EQ(read_memory_events_oom_kill(d.path())->value_or(0), 2u);
    EXPECT_EQ(read_memory_oom_control_oom_kill(d.path())->value_or(0), 7u);
}

TEST(OomKills, OldKernelWithoutOomKillLineCountsZero) {
    ScratchDir d;
    d.write("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n");
    auto v = read_memory_oom_control_oom_kill(d.path());
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->value_or(99), 0u);
}

TEST(OomKills, EmptyFilesCountZero) {
    // Both files are lists of counters: no oom_kill line means the kernel does not count them.
    ScratchDir d;
    d.write("memory.events", "");
    d.write("memory.oom_control", "");
    EXPECT_EQ(read_memory_events_oom_kill(d.path())->value_or(99), 0u);
    EXPECT_EQ(read_memory_oom_control_oom_kill(d.path())->value_or(99), 0u);
}

TEST(OomKills, OomControlMissingAndMalformed) {
    ScratchDir d;
    EXPECT_FALSE(read_memory_oom_control_oom_kill(d.path())->has_value());
    d.write("memory.oom_control", "oom_kill -1\n");
    auto bad = read_memory_oom_control_oom_kill(d.path());
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().where, d.path() + "/memory.oom_control");
}

TEST(OomKills, MissingIsEmptyAndMalformedIsQuoted) {
    ScratchDir d;
    EXPECT_FALSE(read_memory_events_oom_kill(d.path())->has_value());
    d.write("memory.events", "oom_kill many\n");
    auto bad = read_memory_events_oom_kill(d.path());
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().what.find("oom_kill many"), std::string::npos);
    d.write("memory.events", "oom_kill 18446744073709551615\n");
    EXPECT_EQ(read_memory_events_oom_kill(d.path())->value_or(0), UINT64_MAX);
}

TEST(Meminfo, ReadsTotalAndAvailable) {
    ScratchDir d;
    d.write("meminfo", "MemTotal:       24684312 kB\nMemFree: 1 kB\nMemAvailable:   24300000 kB\n");
    auto m = read_meminfo(d.path());
    ASSERT_TRUE(m.ok()) << m.error().to_string();
    EXPECT_EQ(m->total_bytes, 24684312ULL * 1024);
    EXPECT_EQ(m->available_bytes.value_or(0), 24300000ULL * 1024);
}

TEST(Meminfo, MaximumValues) {
    ScratchDir d;
    // The largest kB count that still fits in bytes.
    const std::uint64_t max_kb = UINT64_MAX / 1024;
    d.write("meminfo", "MemTotal: " + std::to_string(max_kb) +
                           " kB\nMemAvailable: " + std::to_string(max_kb) + " kB\n");
    auto m = read_meminfo(d.path());
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->total_bytes, max_kb * 1024);
}

TEST(Meminfo, OldKernelWithoutMemAvailable) {
    ScratchDir d;
    d.write("meminfo", "MemTotal: 1024 kB\nMemFree: 1 kB\n");
    auto m = read_meminfo(d.path());
    ASSERT_TRUE(m.ok());
    EXPECT_FALSE(m->available_bytes);
}

TEST(Meminfo, MissingEmptyAndMalformedAreErrors) {
    ScratchDir d;
    EXPECT_FALSE(read_meminfo(d.path()).ok());
    d.write("meminfo", "");
    auto empty = read_meminfo(d.path());
    ASSERT_FALSE(empty.ok());
    EXPECT_NE(empty.error().what.find("MemTotal"), std::string::npos);
    d.write("meminfo", "MemTotal: lots kB\n");
    auto bad = read_meminfo(d.path());
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().what.find("MemTotal: lots kB"), std::string::npos);
}

}  // namespace
}  // namespace tuner::probes
