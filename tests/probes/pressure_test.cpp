// PSI files: some/full lines, absent files, malformed content, the cgroup preferred.
#include "probes/pressure.hpp"

#include <gtest/gtest.h>

#include "tests/probes/probe_test_support.hpp"

namespace tuner::probes {
namespace {

using testing::ScratchDir;

TEST(Pressure, ParsesSomeAndFull) {
    auto p = parse_pressure(
        "some avg10=1.25 avg60=0.50 avg300=0.10 total=12345\n"
        "full avg10=0.75 avg60=0.25 avg300=0.05 total=678\n",
        "f");
    ASSERT_TRUE(p.ok()) << p.error().to_string();
    ASSERT_TRUE(p->some && p->full);
    EXPECT_DOUBLE_EQ(p->some->avg10, 1.25);
    EXPECT_DOUBLE_EQ(p->some->avg60, 0.5);
    EXPECT_DOUBLE_EQ(p->some->avg300, 0.1);
    EXPECT_EQ(p->some->total_usec, 12345u);
    EXPECT_EQ(p->full->total_usec, 678u);
}

TEST(Pressure, CpuOnOlderKernelsHasNoFullLine) {
    auto p = parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", "f");
    ASSERT_TRUE(p.ok());
    EXPECT_TRUE(p->some);
    EXPECT_FALSE(p->full);
}

TEST(Pressure, MaximumValues) {
    auto p = parse_pressure(
        "some avg10=100.00 avg60=100.00 avg300=100.00 total=18446744073709551615\n", "f");
    ASSERT_TRUE(p.ok());
    EXPECT_DOUBLE_EQ(p->some->avg10, 100.0);
    EXPECT_EQ(p->some->total_usec, UINT64_MAX);
}

TEST(Pressure, EmptyFileIsError) {
    auto p = parse_pressure("", "/proc/pressure/cpu");
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().where, "/proc/pressure/cpu");
}

TEST(Pressure, MalformedLineIsQuoted) {
    auto bad_kind = parse_pressure("most avg10=1 avg60=1 avg300=1 total=1\n", "f");
    ASSERT_FALSE(bad_kind.ok());
    EXPECT_NE(bad_kind.error().what.find("most avg10"), std::string::npos);
    auto bad_value = parse_pressure("some avg10=x avg60=1 avg300=1 total=1\n", "f");
    ASSERT_FALSE(bad_value.ok());
    EXPECT_NE(bad_value.error().what.find("avg10=x"), std::string::npos);
    EXPECT_FALSE(parse_pressure("some avg10=1.0 total=5\n", "f").ok());
}

TEST(Pressure, MissingFileIsAbsent) {
    ScratchDir d;
    auto p = read_pressure_file(d.path() + "/cpu");
    ASSERT_TRUE(p.ok());
    EXPECT_FALSE(p->has_value());
}

TEST(Pressure, PrefersCgroupFilesOverProc) {
    ScratchDir d;
    d.write("proc/pressure/cpu", "some avg10=9.00 avg60=0 avg300=0 total=1\n");
    d.write("cg/cpu.pressure", "some avg10=1.00 avg60=0 avg300=0 total=1\n");
    std::vector<std::string> problems;
    const auto info = probe_pressure(
        d.path() + "/proc", ControllerDir{2, "/app", d.path() + "/cg", d.path(), "/"}, problems);
    EXPECT_TRUE(problems.empty());
    EXPECT_EQ(info.source, "cgroup /app");
    ASSERT_TRUE(info.cpu);
    EXPECT_DOUBLE_EQ(info.cpu->some->avg10, 1.0);
    EXPECT_FALSE(info.memory);
}

TEST(Pressure, FallsBackToProcWhenCgroupHasNone) {
    ScratchDir d;
    d.write("proc/pressure/memory", "some avg10=2.00 avg60=0 avg300=0 total=1\n");
    std::vector<std::string> problems;
    const auto info = probe_pressure(
        d.path() + "/proc", ControllerDir{2, "/app", d.path() + "/cg", d.path(), "/"}, problems);
    EXPECT_EQ(info.source, "/proc/pressure");
    ASSERT_TRUE(info.memory);
    EXPECT_DOUBLE_EQ(info.memory->some->avg10, 2.0);
}

TEST(Pressure, AbsentEverywhereIsNormal) {
    ScratchDir d;
    std::vector<std::string> problems;
    const auto info = probe_pressure(d.path() + "/proc", std::nullopt, problems);
    EXPECT_TRUE(problems.empty());
    EXPECT_EQ(info.source, "");
    EXPECT_FALSE(info.cpu || info.memory || info.io);
}

TEST(Pressure, MalformedFileIsAProblem) {
    ScratchDir d;
    d.write("proc/pressure/io", "garbage\n");
    std::vector<std::string> problems;
    const auto info = probe_pressure(d.path() + "/proc", std::nullopt, problems);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_NE(problems[0].find("pressure/io"), std::string::npos);
    EXPECT_FALSE(info.io);
}

}  // namespace
}  // namespace tuner::probes
