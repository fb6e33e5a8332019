// The probe report (tuner/probe_report): JSON keys of DESIGN's API sketch and the text form,
// built from fixture snapshots.
#include "tuner/report/probe_report.hpp"

#include <gtest/gtest.h>

#include "tests/probes/probe_test_support.hpp"

namespace tuner::report {
namespace {

using probes::testing::fixture;
using probes::testing::fixture_roots;
using probes::testing::kFixturePid;

struct Report {
    Snapshot snapshot;
    policies::SeedInputs inputs;
    policies::SeedResult seed;
};

Report report_of(const std::string& scenario) {
    probes::Prober prober(fixture_roots(fixture(scenario)), kFixturePid);
    Report r;
    prober.sample(r.snapshot, {});
    r.inputs = policies::seed_inputs(r.snapshot, Config{});
    r.seed = policies::seed_formula(r.inputs);
    return r;
}

TEST(ProbeReport, JsonHasDesignKeysWithSizesInBytes) {
    const Report r = report_of("cgroup2-limited");
    const auto j = probe_json(r.snapshot, r.inputs, r.seed);
    EXPECT_EQ(j["cgroup"]["version"], "v2");
    EXPECT_EQ(j["cgroup"]["path"], "/app.slice/web.service");
    EXPECT_EQ(j["cpu"]["effective_cores"], 2);
    EXPECT_EQ(j["cpu"]["source"], "quota");
    EXPECT_DOUBLE_EQ(j["cpu"]["quota_cores"].get<double>(), 1.5);
    EXPECT_EQ(j["memory"]["limit_bytes"], 536870912);
    EXPECT_EQ(j["memory"]["source"], "cgroup memory.max at /app.slice/web.service");
    EXPECT_EQ(j["memory"]["usage_bytes"], 200 * MiB);
    EXPECT_EQ(j["memory"]["working_set_bytes"], 150 * MiB);
    EXPECT_EQ(j["memory"]["oom_kills"], 3);
    EXPECT_TRUE(j["memory"]["high_bytes"].is_null());
    EXPECT_DOUBLE_EQ(j["pressure"]["cpu"]["some"]["avg10"].get<double>(), 1.25);
    EXPECT_TRUE(j["pressure"]["cpu"]["full"].is_object());
    EXPECT_TRUE(j["problems"].is_array());
    EXPECT_TRUE(j["taken_at"].is_string());
}

TEST(ProbeReport, SeedFormulaShowsEveryNumber) {
    const Report r = report_of("cgroup2-limited");
    const auto seed = probe_json(r.snapshot, r.inputs, r.seed)["seed_formula"];
    for (const char* key :
         {"effective_cores", "cpu_workers", "memory_limit_bytes", "memory_limited",
          "os_reserve_bytes", "postgres_share_bytes", "self_rss_bytes", "budget_bytes",
          "per_worker_bytes", "per_worker_measured", "memory_ceiling", "min_workers", "max_workers",
          "workers", "memory_capped", "below_min", "reason"}) {
        EXPECT_TRUE(seed.contains(key)) << key;
    }
    // 2 cores → 5; 512MB cgroup (no os_reserve) less its 64MB headroom / 100MB → ceiling 4.
    EXPECT_EQ(seed["cpu_workers"], 5);
    EXPECT_EQ(seed["os_reserve_bytes"], 0);
    EXPECT_EQ(seed["memory_ceiling"], 4);
    EXPECT_EQ(seed["workers"], 4);
}

TEST(ProbeReport, AbsentPressureIsNull) {
    const Report r = report_of("cgroup2-nopsi");
    const auto j = pressure_json(r.snapshot.pressure);
    EXPECT_EQ(j["source"], "");
    EXPECT_TRUE(j["cpu"].is_null());
    EXPECT_TRUE(j["memory"].is_null());
    EXPECT_TRUE(j["io"].is_null());
}

TEST(ProbeReport, TextNamesWhatBoundCoresAndMemory) {
    const Report r = report_of("cgroup2-limited");
    const std::string text = probe_text(r.snapshot, r.seed);
    EXPECT_NE(text.find("cgroup     v2 /app.slice/web.service"), std::string::npos) << text;
    EXPECT_NE(text.find("2 effective cores, bound by quota (quota 1.50 cores"), std::string::npos)
        << text;
    EXPECT_NE(text.find("limit 512MB from cgroup memory.max at /app.slice/web.service"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("OOM kills 3"), std::string::npos) << text;
    EXPECT_NE(text.find("seed       4 workers: "), std::string::npos) << text;
    EXPECT_NE(text.find("problems   none"), std::string::npos) << text;
}

TEST(ProbeReport, TextSaysWhenPsiIsMissingAndListsProblems) {
    Report r = report_of("cgroup2-nopsi");
    r.snapshot.problems = {"/x/memory.max: not a number: \"x\""};
    const std::string text = probe_text(r.snapshot, r.seed);
    EXPECT_NE(text.find("pressure   not available"), std::string::npos) << text;
    EXPECT_NE(text.find("problems   /x/memory.max"), std::string::npos) << text;
}

}  // namespace
}  // namespace tuner::report
