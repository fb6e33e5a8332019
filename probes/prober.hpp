// The Prober: what the control thread calls once per cycle to fill a Snapshot with the cgroup,
// CPU, memory, pressure and process-tree facts. It keeps the discovered cgroup layout (found
// again only after a read fails or /proc/<pid>/cgroup changes), the previous CPU sample (for
// utilisation) and the last PSS of each tree.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/config.hpp"
#include "model/snapshot.hpp"
#include "probes/cgroup_discovery.hpp"
#include "probes/process_tree.hpp"

namespace tuner::probes {

// Where the Prober reads. The defaults are the real system; tests point them at fixture trees.
struct ProbeRoots {
    std::string proc = "/proc";
    // Prefixed to cgroup mount points and to /sys/devices/system/cpu/online ("" = the real root).
    std::string fs_root;
    // A mount table to use instead of parsing <proc>/self/mountinfo.
    std::optional<std::vector<CgroupMount>> cgroup_mounts;
    // sched_getaffinity(self_pid) bounds the cores; off for fixture trees (no live process).
    bool live_affinity = true;
    // How to find children; detected from <proc>/<self_pid>/task/<self_pid>/children when unset.
    std::optional<ChildrenSource> children_source;
    double ticks_per_second = 0;        // of utime/stime; 0 = sysconf(_SC_CLK_TCK)
    std::uint64_t page_size_bytes = 0;  // of stat's rss; 0 = sysconf(_SC_PAGESIZE)
};

class Prober {
public:
    Prober(ProbeRoots roots, pid_t self_pid, unsigned pss_every = PolicyConfig{}.pss_every);

    // Fills cgroup, cpu, memory, pressure, self, worker_trees, problems and the timestamps of
    // `out`. Never fails: what could not be read is a line in out.problems.
    void sample(Snapshot& out, const std::vector<std::pair<unsigned, pid_t>>& workers);

    // PSS (smaps_rollup) is read on the first cycle, on a tree's first sample (a new worker) and
    // then every `n`th; RSS every cycle.
    void set_pss_every(unsigned n) { pss_every_ = n == 0 ? 1 : n; }

    // The cgroup layout in use (after the first sample), for logs and tests.
    [[nodiscard]] const std::optional<CgroupLayout>& layout() const { return layout_; }
    [[nodiscard]] ChildrenSource children_source() const { return trees_.children_source(); }

private:
    void discover(std::vector<std::string>& problems);
    CpuInfo sample_cpu(const CgroupLayout& layout, Clock::time_point now,
                       std::vector<std::string>& problems);
    void sample_trees(Snapshot& out, const std::vector<std::pair<unsigned, pid_t>>& workers);

    ProbeRoots roots_;
    pid_t self_pid_;
    unsigned pss_every_;
    unsigned long long cycle_ = 0;
    std::optional<CgroupLayout> layout_;
    std::vector<CgroupMembership> memberships_;  // what layout_ was resolved from
    unsigned host_cores_ = 0;
    ProcessTreeReader trees_;
    struct CpuSample {
        Clock::time_point at;
        std::uint64_t usage_usec = 0;
    };
    std::optional<CpuSample> previous_cpu_;
    struct RollupReading {
        std::uint64_t pss_bytes = 0;
        std::uint64_t private_bytes = 0;
        std::uint64_t rss_bytes = 0;  // the tree's RSS when they were read
    };
    // By tree root pid; std::nullopt: read, but smaps_rollup gave nothing.
    std::unordered_map<pid_t, std::optional<RollupReading>> last_rollup_;
};

}  // namespace tuner::probes
