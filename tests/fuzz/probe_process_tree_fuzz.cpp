// Fuzz target: the /proc/<pid> readers and the tree walk (probes/process_tree.hpp). The input is
// the files of two processes, 100 and 101, separated by NUL bytes, in this order (a part not in
// the input: no such file):
//   100/stat, 100/status, 100/smaps_rollup, 100/task/100/schedstat, 100/task/100/children,
//   101/stat, 101/task/101/children
// Every reader runs on 100; the tree of 100 is sampled with children from the task files and
// from a scan of every stat (so children lists and ppids may form cycles). What must hold: no
// crash; a tree counts each process once (at most 2 here).
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "probes/process_tree.hpp"
#include "tests/fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace tuner::probes;
    static const char* const kFiles[] = {"proc/100/stat",
                                         "proc/100/status",
                                         "proc/100/smaps_rollup",
                                         "proc/100/task/100/schedstat",
                                         "proc/100/task/100/children",
                                         "proc/101/stat",
                                         "proc/101/task/101/children"};
    constexpr std::size_t kCount = sizeof kFiles / sizeof kFiles[0];
    auto& scratch = tuner::fuzz::Scratch::get();
    const auto parts = tuner::fuzz::split_parts(tuner::fuzz::as_text(data, size), kCount);
    for (std::size_t i = 0; i < kCount; ++i) scratch.put_part(kFiles[i], parts, i);

    const std::string proc = scratch.path() + "/proc";
    if (!parts.empty()) (void)parse_proc_stat(parts[0], "stat");
    if (parts.size() > 3) (void)parse_schedstat_wait_ns(parts[3], "schedstat");
    (void)read_proc_stat(proc, 100);
    (void)read_status_rss_bytes(proc, 100);
    (void)read_smaps_rollup(proc, 100);
    for (unsigned threads : {0u, 1u}) {
        (void)read_tasks_cpu_wait_ns(proc, 100, threads);
        (void)read_task_children(proc, 100, threads);
    }
    (void)detect_children_source(proc, 100);
    for (auto source : {ChildrenSource::task_children_files, ChildrenSource::stat_ppid_scan}) {
        ProcessTreeReader reader(proc, source, 100, 4096);
        reader.begin_cycle();
        std::vector<std::string> problems;
        const auto tree = reader.sample(100, true, {}, problems);
        FUZZ_CHECK(tree.processes <= 2,
                   "a tree of two processes counted " + std::to_string(tree.processes));
    }
    return 0;
}
