// Process trees from fixture /proc trees (both ways of finding children) and the live process.
#include "probes/process_tree.hpp"

#include <unistd.h>

#include <string_view>

#include <gtest/gtest.h>

#include "tests/probes/probe_test_support.hpp"

namespace tuner::probes {
namespace {

using testing::fixture;
using testing::ScratchDir;
using testing::stat_line;

TEST(ProcStat, CountsFieldsFromTheLastParenthesis) {
    auto s = parse_proc_stat(stat_line(201, ") (web) worker (1", 200, 1500, 500, 3, 20000), "f");
    ASSERT_TRUE(s.ok()) << s.error().to_string();
    EXPECT_EQ(s->ppid, 200);
    EXPECT_EQ(s->utime_ticks, 1500u);
    EXPECT_EQ(s->stime_ticks, 500u);
    EXPECT_EQ(s->threads, 3u);
    EXPECT_EQ(s->rss_pages, 20000u);
}

TEST(ProcStat, TruncatedLineIsQuoted) {
    auto s = parse_proc_stat("201 (x) S 200 201\n", "/proc/201/stat");
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().where, "/proc/201/stat");
    EXPECT_NE(s.error().what.find("201 (x) S 200 201"), std::string::npos);
}

TEST(ProcStat, EmptyAndMalformedAreErrors) {
    EXPECT_FALSE(parse_proc_stat("", "f").ok());
    EXPECT_FALSE(parse_proc_stat("1 (a) S x 1 1 0 -1 0 0 0 0 0 1 1\n", "f").ok());
}

TEST(ProcStat, MaximumCounts) {
    auto s = parse_proc_stat(stat_line(7, "a", 1, UINT64_MAX, UINT64_MAX, 1, UINT64_MAX), "f");
    ASSERT_TRUE(s.ok()) << s.error().to_string();
    EXPECT_EQ(s->utime_ticks, UINT64_MAX);
    EXPECT_EQ(s->rss_pages, UINT64_MAX);
}

TEST(ProcFiles, VanishedProcessIsEmptyNotError) {
    const std::string proc = fixture("proc-tree");
    auto stat = read_proc_stat(proc, 300);
    ASSERT_TRUE(stat.ok());
    EXPECT_FALSE(stat->has_value());
    auto rss = read_status_rss_bytes(proc, 300);
    ASSERT_TRUE(rss.ok());
    EXPECT_FALSE(rss->has_value());
    auto children = read_task_children(proc, 300);
    ASSERT_TRUE(children.ok());
    EXPECT_FALSE(children->has_value());
}

TEST(ProcFiles, KernelThreadHasNoRssAndNoPss) {
    const std::string proc = fixture("proc-tree");
    EXPECT_EQ(read_status_rss_bytes(proc, 2)->value_or(99), 0u);
    const auto rollup = read_smaps_rollup(proc, 2);
    ASSERT_TRUE(rollup && rollup->has_value());
    EXPECT_EQ((*rollup)->pss_bytes, 0u);
    EXPECT_EQ((*rollup)->private_bytes, 0u);
}

TEST(ProcFiles, MalformedStatusAndSmapsRollupAreQuoted) {
    ScratchDir d;
    d.write("7/status", "Name:\tx\nVmRSS:\t lots kB\n");
    d.write("7/smaps_rollup", "Rss: 5 kB\n");
    auto rss = read_status_rss_bytes(d.path(), 7);
    ASSERT_FALSE(rss.ok());
    EXPECT_NE(rss.error().what.find("lots"), std::string::npos);
    auto pss = read_smaps_rollup(d.path(), 7);
    ASSERT_FALSE(pss.ok());
    EXPECT_NE(pss.error().what.find("Pss"), std::string::npos);
}

TEST(SmapsRollup, PrivateIsCleanPlusDirty) {
    const auto r = parse_smaps_rollup(
        "55d0c0000000-7ffd00000000 ---p 00000000 00:00 0 [rollup]\nRss: 3000 kB\n"
        "Pss: 2000 kB\nPss_Anon: 1000 kB\nShared_Clean: 900 kB\nPrivate_Clean: 300 kB\n"
        "Private_Dirty: 1200 kB\n",
        "f");
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(r->pss_bytes, 2000u * 1024);
    EXPECT_EQ(r->private_bytes, 1500u * 1024);
    EXPECT_EQ(parse_smaps_rollup("", "f")->private_bytes, 0u);  // a kernel thread
    EXPECT_FALSE(parse_smaps_rollup("Pss: 5 kB\nPrivate_Dirty: lots\n", "f"));
}

TEST(SmapsRollup, LiveProcessHasPrivatePagesBelowPss) {
    const auto r = read_smaps_rollup("/proc", ::getpid());
    ASSERT_TRUE(r && r->has_value());
    EXPECT_GT((*r)->private_bytes, 0u);
    EXPECT_LE((*r)->private_bytes, (*r)->pss_bytes);
}

TEST(ProcFiles, StatRssIsStatusVmRss) {
    // The fixtures keep both files in step, as the kernel does (both are get_mm_rss()).
    const std::string proc = fixture("proc-tree");
    for (pid_t pid : {100, 200, 201, 400, 500, 2}) {
        auto stat = read_proc_stat(proc, pid);
        auto rss = read_status_rss_bytes(proc, pid);
        ASSERT_TRUE(stat.ok() && rss.ok());
        EXPECT_EQ((*stat)->rss_pages * 4096, rss->value_or(1)) << pid;
    }
}

TEST(ProcFiles, LiveStatRssMatchesStatusVmRss) {
    auto stat = read_proc_stat("/proc", ::getpid());
    auto rss = read_status_rss_bytes("/proc", ::getpid());
    ASSERT_TRUE(stat.ok() && stat->has_value() && rss.ok() && rss->has_value());
    const double from_stat = static_cast<double>((*stat)->rss_pages * page_size_bytes());
    // Per-thread RSS counters are folded in lazily (SPLIT_RSS_COUNTING): close, maybe not equal.
    EXPECT_NEAR(from_stat, static_cast<double>(**rss), 4.0 * MiB);
    EXPECT_GT(from_stat, 0.0);
}

TEST(ProcFiles, SingleThreadedProcessReadsOnlyItsOwnChildrenFile) {
    auto children = read_task_children(fixture("proc-tree"), 200, 1);
    ASSERT_TRUE(children.ok());
    EXPECT_EQ(children->value_or(std::vector<pid_t>{}), (std::vector<pid_t>{201}));
    auto gone = read_task_children(fixture("proc-tree"), 300, 1);
    ASSERT_TRUE(gone.ok());
    EXPECT_FALSE(gone->has_value());
}

TEST(ProcFiles, EmptyStatusMeansNoRss) {
    ScratchDir d;
    d.write("7/status", "");
    EXPECT_EQ(read_status_rss_bytes(d.path(), 7)->value_or(99), 0u);
}

TEST(ProcFiles, MalformedChildrenListIsQuoted) {
    ScratchDir d;
    d.write("7/task/7/children", "12 x3 \n");
    auto children = read_task_children(d.path(), 7, 1);
    ASSERT_FALSE(children.ok());
    EXPECT_NE(children.error().what.find("12 x3"), std::string::npos);
    EXPECT_NE(children.error().where.find("7/task/7/children"), std::string::npos);
}

TEST(ProcFiles, TaskChildrenJoinsAllThreads) {
    auto children = read_task_children(fixture("proc-tree"), 100);
    ASSERT_TRUE(children.ok()) << children.error().to_string();
    ASSERT_TRUE(children->has_value());
    auto sorted = **children;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<pid_t>{200, 300, 400}));
}

TEST(ChildrenSource, DetectsChildrenFilesOrTheirAbsence) {
    EXPECT_EQ(detect_children_source(fixture("proc-tree"), 100),
              ChildrenSource::task_children_files);
    EXPECT_EQ(detect_children_source(fixture("proc-nochildren"), 100),
              ChildrenSource::stat_ppid_scan);
}

struct TreeCase {
    const char* tree;
    ChildrenSource source;
};

class ProcessTrees : public ::testing::TestWithParam<TreeCase> {
protected:
    ProcessTreeReader reader() const {
        return ProcessTreeReader(fixture(GetParam().tree), GetParam().source, 100, 4096);
    }
    const std::unordered_set<pid_t> workers_{200, 300};
};

TEST_P(ProcessTrees, SelfExcludesWorkerTreesButKeepsOtherChildren) {
    auto r = reader();
    std::vector<std::string> problems;
    const auto self = r.sample(100, false, workers_, problems);
    EXPECT_TRUE(problems.empty()) << problems.front();
    EXPECT_EQ(self.pid, 100);
    EXPECT_EQ(self.processes, 2u);  // tunerd and its sh, not the workers
    EXPECT_EQ(self.rss_bytes, (10000u + 1000u) * 1024);
    EXPECT_DOUBLE_EQ(self.cpu_seconds, (100 + 50 + 1 + 1) / 100.0);
    EXPECT_FALSE(self.pss_bytes);
}

TEST_P(ProcessTrees, WorkerTreeSumsMasterAndChild) {
    auto r = reader();
    std::vector<std::string> problems;
    const auto worker = r.sample(200, true, workers_, problems);
    EXPECT_TRUE(problems.empty()) << problems.front();
    EXPECT_EQ(worker.processes, 2u);
    EXPECT_EQ(worker.rss_bytes, (20000u + 80000u) * 1024);
    ASSERT_TRUE(worker.pss_bytes);
    EXPECT_EQ(*worker.pss_bytes, (15000u + 60000u) * 1024);
    ASSERT_TRUE(worker.private_bytes);  // Private_Dirty only in these fixtures
    EXPECT_EQ(*worker.private_bytes, (7500u + 30000u) * 1024);
    EXPECT_DOUBLE_EQ(worker.cpu_seconds, (300 + 100 + 1500 + 500) / 100.0);
    if (std::string_view(GetParam().tree) == "proc-tree") {
        // schedstat's run_delay of master and worker: 0.25 s + 1.75 s waiting for a CPU.
        ASSERT_TRUE(worker.cpu_wait_seconds);
        EXPECT_DOUBLE_EQ(*worker.cpu_wait_seconds, 2.0);
    } else {
        EXPECT_FALSE(worker.cpu_wait_seconds);  // a kernel without schedstat: unknown, not 0
    }
}

TEST(Schedstat, RunDelayIsTheSecondField) {
    EXPECT_EQ(*parse_schedstat_wait_ns("160011355 14994818 389\n", "s"), 14994818u);
    EXPECT_EQ(*parse_schedstat_wait_ns("1 18446744073709551615 2", "s"), 18446744073709551615u);
    const auto bad = parse_schedstat_wait_ns("160011355", "/proc/7/task/7/schedstat");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().where, "/proc/7/task/7/schedstat");
    EXPECT_FALSE(parse_schedstat_wait_ns("1 x 2", "s"));
}

TEST(Schedstat, ThreadsOfAProcessAreSummedAndAVanishedOneIsSkipped) {
    ScratchDir d;
    d.write("7/task/7/schedstat", "10 100 1\n");
    d.write("7/task/8/schedstat", "10 250 1\n");
    ::mkdir((d.path() + "/7/task/9").c_str(), 0755);  // a thread that exited mid-read
    const auto sum = read_tasks_cpu_wait_ns(d.path(), 7, 3);
    ASSERT_TRUE(sum);
    ASSERT_TRUE(sum->has_value());
    EXPECT_EQ(**sum, 350u);
    // One thread: only the process's own file is read.
    EXPECT_EQ(read_tasks_cpu_wait_ns(d.path(), 7, 1)->value_or(0), 100u);
    // No schedstat anywhere (CONFIG_SCHED_INFO off), or the process gone: unknown.
    EXPECT_FALSE(read_tasks_cpu_wait_ns(d.path(), 8, 1)->has_value());
}

TEST(Schedstat, LiveProcessWaitIsKnown) {
    auto live = read_tasks_cpu_wait_ns("/proc", ::getpid(), 0);
    ASSERT_TRUE(live);
    EXPECT_TRUE(live->has_value()) << "this kernel offers /proc/<pid>/task/<tid>/schedstat";
}

TEST_P(ProcessTrees, VanishedWorkerIsEmptyNotAProblem) {
    auto r = reader();
    std::vector<std::string> problems;
    const auto gone = r.sample(300, true, workers_, problems);
    EXPECT_TRUE(problems.empty());
    EXPECT_EQ(gone.processes, 0u);
    EXPECT_EQ(gone.rss_bytes, 0u);
    EXPECT_FALSE(gone.pss_bytes);
}

INSTANTIATE_TEST_SUITE_P(
    BothChildrenSources, ProcessTrees,
    ::testing::Values(TreeCase{"proc-tree", ChildrenSource::task_children_files},
                      TreeCase{"proc-tree", ChildrenSource::stat_ppid_scan},
                      TreeCase{"proc-nochildren", ChildrenSource::stat_ppid_scan}),
    [](const auto& info) {
        return std::string(info.param.tree[5] == 't' ? "Tree" : "NoChildren") + "_" +
               to_string(info.param.source);
    });

TEST(ProcessTree, MalformedStatIsAProblemAndSkipsTheProcess) {
    ScratchDir d;
    d.write("7/stat", "7 (x) S\n");
    ProcessTreeReader r(d.path(), ChildrenSource::task_children_files, 100, 4096);
    std::vector<std::string> problems;
    const auto tree = r.sample(7, false, {}, problems);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_NE(problems[0].find("7/stat"), std::string::npos);
    EXPECT_EQ(tree.processes, 0u);
}

TEST(ProcessTree, LiveProcessHasResidentMemory) {
    const std::string proc = "/proc";
    ProcessTreeReader r(proc, detect_children_source(proc, ::getpid()), clock_ticks_per_second(),
                        page_size_bytes());
    std::vector<std::string> problems;
    const auto self = r.sample(::getpid(), true, {}, problems);
    EXPECT_TRUE(problems.empty()) << problems.front();
    EXPECT_GE(self.processes, 1u);
    EXPECT_GT(self.rss_bytes, 0u);
    ASSERT_TRUE(self.pss_bytes);
    EXPECT_GT(*self.pss_bytes, 0u);
}

}  // namespace
}  // namespace tuner::probes
