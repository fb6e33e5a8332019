// `tunerctl recommend` without a daemon: from a known snapshot every section is there (machine,
// workers with the seed formula's numbers, memory ceiling, database pools, PostgreSQL settings),
// the database share comes off the workers' memory only when a database is configured, fixed
// mode warns above the ceiling, and an unreadable connection file is named, not fatal.
#include "tuner/ctl/recommend.hpp"

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tuner::ctl {
namespace {

using ::testing::HasSubstr;

// 2 cores by quota, a 1 GB cgroup limit, tunerd itself at 10 MB: the seed formula gives
// min(2×2+1, floor((1024 − 10) MB / 100 MB)) = min(5, 10) = 5 workers.
Snapshot two_cores_one_gigabyte() {
    Snapshot s;
    s.taken_at = Clock::time_point(std::chrono::seconds(1000));
    s.taken_at_wall = WallClock::time_point(std::chrono::seconds(1795000000));
    s.cgroup.version = CgroupVersion::v2;
    s.cgroup.path = "/tunerd.slice";
    s.cpu.effective_cores = 2;
    s.cpu.source = "quota";
    s.cpu.quota_cores = 2.0;
    s.cpu.quota_cgroup = "/tunerd.slice";
    s.cpu.host_cores = 8;
    s.cpu.affinity_cores = 8;
    s.memory.limit_bytes = GiB;
    s.memory.limited = true;
    s.memory.source = "cgroup memory.max at /tunerd.slice";
    s.memory.host_total_bytes = 16 * GiB;
    s.self.pid = 1;
    s.self.processes = 1;
    s.self.rss_bytes = 10 * MiB;
    return s;
}

Config config_in(const std::string& state_dir) {
    Config c;
    c.state.dir = state_dir;
    return c;
}

const std::string kStateDir = std::filesystem::temp_directory_path() / "tunerctl-recommend-test";

TEST(CtlRecommend, AdaptiveModeStartsWhatIsProvenToFitWithTheSeedFormulasReason) {
    const auto r = recommend(two_cores_one_gigabyte(), config_in(kStateDir));
    const auto& w = r.json["workers"];
    EXPECT_EQ(w["mode"], "adaptive");
    // The formula says 5 (2 × 2 + 1, 8 fit at the configured 100MB); nothing is measured yet, so
    // the start is what fits even at 4 × 100MB per process: 886MB / 400MB = 2.
    EXPECT_EQ(w["workers"], 2);
    EXPECT_EQ(w["threads"], 1);
    EXPECT_EQ(w["memory_ceiling"], 8);
    EXPECT_EQ(w["seed_formula"]["cpu_workers"], 5);
    ASSERT_FALSE(w["decisions"].empty());
    EXPECT_EQ(w["decisions"][0]["knob"], "workers.count");
    EXPECT_EQ(w["decisions"][0]["value"], "2");
    EXPECT_EQ(w["decisions"][0]["rule"], "seed_formula");
    EXPECT_THAT(w["decisions"][0]["reason"].get<std::string>(), HasSubstr("2×2+1 = 5"));
    EXPECT_THAT(w["decisions"][0]["reason"].get<std::string>(),
                HasSubstr("start 2 workers until a worker is measured"));
    EXPECT_THAT(r.text, HasSubstr("tunerd starts with 2 × 1 thread, then follows the traffic"));
    EXPECT_THAT(r.text, HasSubstr("  workers.count    2  (seed_formula) cores 2 → 2×2+1 = 5"));
    EXPECT_THAT(r.text, HasSubstr("  workers.threads  1  (workers.threads in the config)"));
    EXPECT_THAT(r.text, HasSubstr("  memory ceiling   8 workers fit in memory: budget 886MB / "
                                  "100MB per worker (workers.memory_per_worker)"));
}

TEST(CtlRecommend, EverySectionIsInTheTextAndTheJson) {
    const auto r = recommend(two_cores_one_gigabyte(), config_in(kStateDir));
    for (const char* section : {"machine", "workers", "db_pool", "postgres"})
        EXPECT_TRUE(r.json.contains(section)) << section;
    EXPECT_EQ(r.json["machine"]["cpu"]["effective_cores"], 2);
    EXPECT_EQ(r.json["machine"]["memory"]["limit_bytes"], GiB);
    EXPECT_GT(r.json["db_pool"]["pool_size"].get<unsigned>(), 0u);
    EXPECT_FALSE(r.json["postgres"]["settings"].empty());
    EXPECT_THAT(r.text, HasSubstr("Machine (cgroup v2 /tunerd.slice)"));
    EXPECT_THAT(r.text, HasSubstr("  cpu              2 effective cores, bound by quota"));
    EXPECT_THAT(r.text, HasSubstr("  memory           limit 1.0GB from cgroup memory.max"));
    EXPECT_THAT(r.text, HasSubstr("Workers (mode adaptive"));
    EXPECT_THAT(r.text, HasSubstr("Database\n  (no database in the config"));
    EXPECT_THAT(r.text, HasSubstr("  pools per worker: pool_size"));
    EXPECT_THAT(r.text, HasSubstr("shared_buffers"));
}

TEST(CtlRecommend, ConfiguredDatabaseTakesItsShareAndNamesAnUnreadableConnectionFile) {
    Config config = config_in(kStateDir);
    config.database.url_file = kStateDir + "/absent.url";
    const auto r = recommend(two_cores_one_gigabyte(), config);
    // 1024 MB − PostgreSQL's 256 MB − the 128 MB headroom − tunerd's 10 MB = 630 MB → 6 workers
    // fit at the configured 100 MB; 1 starts until one is measured (630 MB / 4 × 100 MB).
    EXPECT_EQ(r.json["workers"]["memory_ceiling"], 6);
    EXPECT_EQ(r.json["workers"]["workers"], 1);
    EXPECT_EQ(r.json["postgres"]["reachable"], false);
    EXPECT_THAT(r.json["postgres"]["error"].get<std::string>(), HasSubstr("absent.url"));
    EXPECT_THAT(r.text, ::testing::Not(HasSubstr("no database in the config")));
}

TEST(CtlRecommend, FixedModeAboveTheCeilingWarns) {
    Config config = config_in(kStateDir);
    config.workers.mode = PoolMode::fixed;
    config.workers.count = 20;
    const auto r = recommend(two_cores_one_gigabyte(), config);
    EXPECT_EQ(r.json["workers"]["workers"], 20);
    EXPECT_THAT(r.json["workers"]["decisions"][0]["reason"].get<std::string>(),
                HasSubstr("WARNING: above the memory ceiling 8"));
    EXPECT_THAT(r.text, HasSubstr("Workers (mode fixed: tunerd starts with 20 × 1 thread)"));
}

TEST(CtlRecommend, ProbeProblemsAreListed) {
    Snapshot s = two_cores_one_gigabyte();
    s.problems.push_back("/sys/fs/cgroup/cpu.max: not a number: \"abc\"");
    const auto r = recommend(s, config_in(kStateDir));
    EXPECT_EQ(r.json["machine"]["problems"].size(), 1u);
    EXPECT_THAT(r.text, HasSubstr("Problems\n  /sys/fs/cgroup/cpu.max: not a number"));
}

}  // namespace
}  // namespace tuner::ctl
