// Per-process readers (/proc/<pid>/stat, status, smaps_rollup, task/*/children) and the sum over
// a process and its descendants: RSS and CPU time every cycle, PSS when asked (far dearer).
// The every-cycle path reads one file per process, stat: its rss field is the same counter as
// status's VmRSS (both get_mm_rss()), and status costs half as much again (docs/benchmarks.md).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "model/result.hpp"
#include "model/snapshot.hpp"

namespace tuner::probes {

// The fields of /proc/<pid>/stat we use (proc(5): 4 ppid, 14 utime, 15 stime, 20 num_threads,
// 24 rss in pages).
struct ProcStat {
    pid_t ppid = 0;
    std::uint64_t utime_ticks = 0;
    std::uint64_t stime_ticks = 0;
    unsigned threads = 1;
    std::uint64_t rss_pages = 0;
};
// comm (field 2) may hold spaces and parentheses, so fields are counted from the LAST ')'.
Result<ProcStat> parse_proc_stat(std::string_view content, const std::string& where);

// Each returns std::nullopt when the process is gone (its files vanish with it).
Result<std::optional<ProcStat>> read_proc_stat(const std::string& proc_root, pid_t pid);
// VmRSS of status in bytes; 0 when the line is absent (kernel threads, zombies). Equal to
// ProcStat::rss_pages × page size; kept to cross-check that and for the benchmark.
Result<std::optional<std::uint64_t>> read_status_rss_bytes(const std::string& proc_root, pid_t pid);
// Pss and Private_Clean + Private_Dirty of smaps_rollup (Linux ≥ 4.14), in bytes.
struct SmapsRollup {
    std::uint64_t pss_bytes = 0;
    std::uint64_t private_bytes = 0;
};
Result<SmapsRollup> parse_smaps_rollup(std::string_view content, const std::string& where);
// std::nullopt also when the file is not offered.
Result<std::optional<SmapsRollup>> read_smaps_rollup(const std::string& proc_root, pid_t pid);
// The second field of schedstat (proc(5): time spent waiting on a runqueue, ns).
Result<std::uint64_t> parse_schedstat_wait_ns(std::string_view content, const std::string& where);
// run_delay summed over the process's threads (task/<tid>/schedstat; with `threads` == 1 only
// the process's own). std::nullopt when the process is gone or the kernel has no schedstat
// (CONFIG_SCHED_INFO off).
Result<std::optional<std::uint64_t>> read_tasks_cpu_wait_ns(const std::string& proc_root, pid_t pid,
                                                            unsigned threads = 0);
// The union of <pid>/task/<tid>/children over the process's threads (CONFIG_PROC_CHILDREN).
// With `threads` == 1 only task/<pid>/children is read, sparing the directory listing.
Result<std::optional<std::vector<pid_t>>> read_task_children(const std::string& proc_root,
                                                             pid_t pid, unsigned threads = 0);

// How children are found. task/*/children costs a read per thread of each tree member; without
// CONFIG_PROC_CHILDREN the only way is to read every process's stat and index it by ppid.
enum class ChildrenSource { task_children_files, stat_ppid_scan };
const char* to_string(ChildrenSource source);
// task_children_files when <proc_root>/<pid>/task/<pid>/children exists.
ChildrenSource detect_children_source(const std::string& proc_root, pid_t pid);

// Samples process trees. With stat_ppid_scan the whole process table is read at most once per
// cycle (begin_cycle() forgets it) and its stat fields are reused for every tree.
class ProcessTreeReader {
public:
    ProcessTreeReader(std::string proc_root, ChildrenSource source, double ticks_per_second,
                      std::uint64_t page_size_bytes);

    void begin_cycle();

    // `root` and its descendants, not descending into any pid of `stop_at` (the workers, when
    // sampling tunerd itself). A process that vanished mid-read is skipped; a malformed file is
    // a problem string and that process is skipped too.
    ProcessTreeSample sample(pid_t root, bool with_pss, const std::unordered_set<pid_t>& stop_at,
                             std::vector<std::string>& problems);

    [[nodiscard]] ChildrenSource children_source() const { return source_; }

private:
    Result<std::optional<ProcStat>> stat_of(pid_t pid);
    std::vector<pid_t> children_of(pid_t pid, unsigned threads, std::vector<std::string>& problems);
    void scan_process_table(std::vector<std::string>& problems);

    std::string proc_root_;
    ChildrenSource source_;
    double ticks_per_second_;
    std::uint64_t page_size_bytes_;
    bool scanned_ = false;
    std::unordered_map<pid_t, ProcStat> table_;
    std::unordered_map<pid_t, std::vector<pid_t>> children_by_ppid_;
};

// sysconf(_SC_CLK_TCK): the unit of utime and stime.
double clock_ticks_per_second();
// sysconf(_SC_PAGESIZE): the unit of rss in stat.
std::uint64_t page_size_bytes();

}  // namespace tuner::probes
