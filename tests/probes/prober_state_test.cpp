// The Prober across cycles: utilisation from two samples, PSS every Nth cycle, workers by id,
// re-discovery after a move, and problems that never abort a sample.
#include <filesystem>

#include <gtest/gtest.h>

#include "probes/prober.hpp"
#include "tests/probes/probe_test_support.hpp"

namespace tuner::probes {
namespace {

using testing::fixture;
using testing::fixture_roots;
using testing::kFixturePid;
using testing::ScratchDir;

// A small v2 machine in a scratch dir, with tunerd (pid 1000) and one worker (pid 2000).
class ProberState : public ::testing::Test {
protected:
    void SetUp() override {
        d_.write("proc/1000/cgroup", "0::/a\n");
        d_.write("proc/self/mountinfo",
                 "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        d_.write("proc/meminfo", "MemTotal: 1048576 kB\nMemAvailable: 524288 kB\n");
        d_.write("sys/devices/system/cpu/online", "0-1\n");
        d_.write("sys/fs/cgroup/a/cpu.max", "50000 100000\n");
        d_.write("sys/fs/cgroup/a/memory.max", "268435456\n");
        d_.write("sys/fs/cgroup/a/cpu.stat", "usage_usec 1000\n");
        d_.write("sys/fs/cgroup/b/memory.max", "134217728\n");
        process(1000, 1, 5000, 4000);
        process(2000, 1000, 30000, 20000);
    }

    // Private pages: half the PSS, a quarter clean and a quarter dirty.
    void process(pid_t pid, pid_t ppid, unsigned rss_kb, unsigned pss_kb) {
        const std::string p = "proc/" + std::to_string(pid);
        d_.write(p + "/stat", testing::stat_line(pid, "x", ppid, 10, 5, 1, rss_kb / 4));
        d_.write(p + "/smaps_rollup", "Pss: " + std::to_string(pss_kb) +
                                          " kB\nPrivate_Clean: " + std::to_string(pss_kb / 4) +
                                          " kB\nPrivate_Dirty: " + std::to_string(pss_kb / 4) +
                                          " kB\n");
        d_.write(p + "/task/" + std::to_string(pid) + "/children", pid == 1000 ? "2000 " : "");
    }

    Prober make(unsigned pss_every = 10) {
        return Prober(fixture_roots(d_.path()), kFixturePid, pss_every);
    }

    ScratchDir d_;
    const std::vector<std::pair<unsigned, pid_t>> workers_{{7, 2000}};
};

TEST_F(ProberState, UtilisationNeedsTwoSamples) {
    Prober prober = make();
    Snapshot first;
    prober.sample(first, workers_);
    EXPECT_FALSE(first.cpu.utilisation);
    d_.write("sys/fs/cgroup/a/cpu.stat", "usage_usec 500000\n");
    Snapshot second;
    prober.sample(second, workers_);
    ASSERT_TRUE(second.cpu.utilisation);
    EXPECT_GT(*second.cpu.utilisation, 0.0);
    EXPECT_EQ(second.cpu.usage_usec, 500000u);
}

TEST_F(ProberState, FillsSelfWithoutWorkersAndWorkersById) {
    Prober prober = make();
    Snapshot s;
    prober.sample(s, workers_);
    EXPECT_EQ(prober.children_source(), ChildrenSource::task_children_files);
    EXPECT_EQ(s.self.pid, 1000);
    EXPECT_EQ(s.self.processes, 1u);
    EXPECT_EQ(s.self.rss_bytes, 5000u * 1024);
    ASSERT_EQ(s.worker_trees.count(7), 1u);
    EXPECT_EQ(s.worker_trees.at(7).pid, 2000);
    EXPECT_EQ(s.worker_trees.at(7).rss_bytes, 30000u * 1024);
    EXPECT_GT(s.taken_at.time_since_epoch().count(), 0);
    EXPECT_GT(s.taken_at_wall.time_since_epoch().count(), 0);
}

TEST_F(ProberState, ReadsPssOnFirstCycleThenEveryNthCarryingRssGrowth) {
    Prober prober = make(3);
    Snapshot s;
    prober.sample(s, workers_);  // cycle 0: PSS read
    EXPECT_EQ(s.worker_trees.at(7).pss_bytes.value_or(0), 20000u * 1024);
    EXPECT_EQ(s.worker_trees.at(7).private_bytes.value_or(0), 10000u * 1024);
    process(2000, 1000, 31000, 25000);
    prober.sample(s, workers_);  // cycle 1: RSS fresh, PSS carried plus the RSS growth
    EXPECT_EQ(s.worker_trees.at(7).rss_bytes, 31000u * 1024);
    EXPECT_EQ(s.worker_trees.at(7).pss_bytes.value_or(0), 21000u * 1024);
    EXPECT_EQ(s.worker_trees.at(7).private_bytes.value_or(0), 11000u * 1024);
    process(2000, 1000, 29000, 25000);
    prober.sample(s, workers_);  // cycle 2: RSS below the reading's: the reading stands
    EXPECT_EQ(s.worker_trees.at(7).pss_bytes.value_or(0), 20000u * 1024);
    EXPECT_EQ(s.worker_trees.at(7).private_bytes.value_or(0), 10000u * 1024);
    prober.sample(s, workers_);  // cycle 3: PSS read again
    EXPECT_EQ(s.worker_trees.at(7).pss_bytes.value_or(0), 25000u * 1024);
    EXPECT_EQ(s.worker_trees.at(7).private_bytes.value_or(0), 12500u * 1024);
}

TEST_F(ProberState, NewWorkerIsReadAtOnceNotGivenTheOldPss) {
    Prober prober = make(3);
    Snapshot s;
    prober.sample(s, workers_);
    process(2001, 1000, 1000, 900);
    d_.write("proc/1000/task/1000/children", "2001 ");  // 2000 is gone
    prober.sample(s, {{7, 2001}});  // cycle 1, not a PSS cycle: read because 2001 is new
    EXPECT_EQ(s.worker_trees.at(7).pid, 2001);
    EXPECT_EQ(s.worker_trees.at(7).pss_bytes.value_or(0), 900u * 1024);
    EXPECT_EQ(s.self.pss_bytes.value_or(0), 4000u * 1024);  // carried: self is not new
}

// A kernel or a process that offers no smaps_rollup: tried on the tree's first sample, then only
// on every nth cycle, not on each.
TEST_F(ProberState, TreeWithoutSmapsRollupIsNotReadEveryCycle) {
    Prober prober = make(3);
    std::filesystem::remove(d_.path() + "/proc/2000/smaps_rollup");
    Snapshot s;
    prober.sample(s, workers_);  // cycle 0
    EXPECT_FALSE(s.worker_trees.at(7).pss_bytes);
    process(2000, 1000, 30000, 20000);  // the file is back
    prober.sample(s, workers_);         // cycle 1: not read
    EXPECT_FALSE(s.worker_trees.at(7).pss_bytes);
    prober.sample(s, workers_);  // cycle 2
    EXPECT_FALSE(s.worker_trees.at(7).pss_bytes);
    prober.sample(s, workers_);  // cycle 3: read
    EXPECT_EQ(s.worker_trees.at(7).pss_bytes.value_or(0), 20000u * 1024);
}

TEST_F(ProberState, FollowsAMoveToAnotherCgroup) {
    Prober prober = make();
    Snapshot s;
    prober.sample(s, workers_);
    EXPECT_EQ(s.memory.limit_bytes, 256 * MiB);
    d_.write("proc/1000/cgroup", "0::/b\n");
    prober.sample(s, workers_);
    EXPECT_EQ(s.cgroup.path, "/b");
    EXPECT_EQ(s.memory.limit_bytes, 128 * MiB);
    EXPECT_EQ(s.memory.source, "cgroup memory.max at /b");
}

TEST_F(ProberState, BadFileIsAProblemAndTheRestIsStillSampled) {
    d_.write("sys/fs/cgroup/a/memory.max", "lots\n");
    Prober prober = make();
    Snapshot s;
    prober.sample(s, workers_);
    ASSERT_EQ(s.problems.size(), 1u);
    EXPECT_NE(s.problems[0].find("memory.max: "), std::string::npos) << s.problems[0];
    EXPECT_NE(s.problems[0].find("\"lots\""), std::string::npos) << s.problems[0];
    EXPECT_FALSE(s.memory.limited);
    EXPECT_EQ(s.memory.limit_bytes, GiB);
    EXPECT_EQ(s.cpu.effective_cores, 1u);  // the CPU quota was still read
    EXPECT_EQ(s.worker_trees.at(7).rss_bytes, 30000u * 1024);
    // Fixed on disk: the next cycle reads it (and the problem list starts afresh).
    d_.write("sys/fs/cgroup/a/memory.max", "268435456\n");
    prober.sample(s, workers_);
    EXPECT_TRUE(s.problems.empty());
    EXPECT_EQ(s.memory.limit_bytes, 256 * MiB);
}

TEST_F(ProberState, UnknownProcessStillGivesHostFacts) {
    d_.remove("proc/1000/cgroup");
    Prober prober = make();
    Snapshot s;
    prober.sample(s, {});
    ASSERT_FALSE(s.problems.empty());
    EXPECT_NE(s.problems[0].find("1000/cgroup"), std::string::npos);
    EXPECT_EQ(s.cgroup.version, CgroupVersion::none);
    EXPECT_EQ(s.cpu.effective_cores, 2u);
    EXPECT_EQ(s.cpu.source, "host");
    EXPECT_EQ(s.memory.limit_bytes, GiB);
    EXPECT_EQ(s.memory.usage_bytes, 512 * MiB);  // MemTotal − MemAvailable without a cgroup
}

TEST_F(ProberState, MountTableOverrideReplacesMountinfo) {
    d_.remove("proc/self/mountinfo");
    ProbeRoots roots = fixture_roots(d_.path());
    roots.cgroup_mounts = std::vector<CgroupMount>{{true, "/", "/sys/fs/cgroup", {}}};
    Prober prober(roots, kFixturePid);
    Snapshot s;
    prober.sample(s, {});
    EXPECT_EQ(s.cgroup.version, CgroupVersion::v2);
    EXPECT_EQ(s.memory.limit_bytes, 256 * MiB);
}

TEST(ProberLive, SamplesThisProcess) {
    Prober prober(ProbeRoots{}, ::getpid());
    Snapshot s;
    prober.sample(s, {});
    EXPECT_GE(s.cpu.effective_cores, 1u);
    EXPECT_GT(s.memory.limit_bytes, 0u);
    EXPECT_GT(s.memory.host_total_bytes, 0u);
    EXPECT_GT(s.self.rss_bytes, 0u);
}

}  // namespace
}  // namespace tuner::probes
