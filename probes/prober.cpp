// One probe cycle: discovery (cached), CPU, memory, PSI and process trees (see prober.hpp).
#include "probes/prober.hpp"

#include <unistd.h>

#include <unordered_set>

#include "probes/cpu_limits.hpp"
#include "probes/cpu_usage.hpp"
#include "probes/kernel_file.hpp"
#include "probes/memory_probe.hpp"
#include "probes/pressure.hpp"

namespace tuner::probes {
namespace {

ProcessTreeReader make_tree_reader(const ProbeRoots& roots, pid_t self_pid) {
    const ChildrenSource source =
        roots.children_source.value_or(detect_children_source(roots.proc, self_pid));
    const double ticks =
        roots.ticks_per_second > 0 ? roots.ticks_per_second : clock_ticks_per_second();
    const std::uint64_t page =
        roots.page_size_bytes > 0 ? roots.page_size_bytes : page_size_bytes();
    return ProcessTreeReader(roots.proc, source, ticks, page);
}

}  // namespace

Prober::Prober(ProbeRoots roots, pid_t self_pid, unsigned pss_every)
    : roots_(std::move(roots)),
      self_pid_(self_pid),
      pss_every_(pss_every == 0 ? 1 : pss_every),
      trees_(make_tree_reader(roots_, self_pid)) {}

void Prober::discover(std::vector<std::string>& problems) {
    // /proc/<pid>/cgroup is read every cycle (one small file): after a move, the cached layout
    // would read a stale cgroup whose files may all look merely absent.
    const auto fail = [&](const Error& e) {
        problems.push_back(e.to_string());
        layout_.reset();
    };
    auto memberships = read_proc_cgroup(roots_.proc, self_pid_);
    if (!memberships) return fail(memberships.error());
    if (layout_ && *memberships == memberships_) return;
    std::vector<CgroupMount> mounts;
    if (roots_.cgroup_mounts) {
        mounts = *roots_.cgroup_mounts;
    } else {
        auto read = read_cgroup_mounts(join_path(roots_.proc, "self/mountinfo"));
        if (!read) return fail(read.error());
        mounts = std::move(*read);
    }
    layout_ = resolve_layout(*memberships, mounts, roots_.fs_root);
    memberships_ = std::move(*memberships);
    for (const auto& e : layout_->problems) problems.push_back(e.to_string());
}

CpuInfo Prober::sample_cpu(const CgroupLayout& layout, Clock::time_point now,
                           std::vector<std::string>& problems) {
    const auto note = [&](const Error& e) { problems.push_back(e.to_string()); };
    CpuInfo cpu;
    if (host_cores_ == 0) {
        if (auto online = read_online_cpus(roots_.fs_root)) {
            host_cores_ = *online;
        } else {
            note(online.error());
            const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
            host_cores_ = n > 0 ? static_cast<unsigned>(n) : 1;
        }
    }
    cpu.host_cores = host_cores_;
    cpu.affinity_cores = host_cores_;
    if (roots_.live_affinity) {
        if (auto affinity = read_affinity_cpus(self_pid_))
            cpu.affinity_cores = std::min(cpu.affinity_cores, *affinity);
        else
            note(affinity.error());
    }
    if (layout.cpuset) {
        if (auto count = read_cpuset_cpu_count(*layout.cpuset); !count)
            note(count.error());
        else if (count->has_value())
            cpu.affinity_cores = std::min(cpu.affinity_cores, **count);
    }
    if (layout.cpu) {
        if (auto quota = find_tightest_quota(*layout.cpu); !quota) {
            note(quota.error());
        } else if (quota->has_value()) {
            cpu.quota_cores = (*quota)->quota.cores();
            cpu.quota_cgroup = (*quota)->cgroup_path;
        }
    }
    resolve_effective_cores(cpu);

    // Counters: v2 cpu.stat has them all; v1 splits usage (cpuacct) from throttling (cpu).
    std::optional<std::uint64_t> usage;
    const auto take = [&](const Result<std::optional<CpuCounters>>& counters) {
        if (!counters) return note(counters.error());
        if (!counters->has_value()) return;
        const CpuCounters& c = **counters;
        if (c.usage_usec) usage = c.usage_usec;
        cpu.nr_periods = c.nr_periods;
        cpu.nr_throttled = c.nr_throttled;
        cpu.throttled_usec = c.throttled_usec;
    };
    if (layout.cpu) {
        take(layout.cpu->version == 2 ? read_cpu_stat_v2(layout.cpu->dir)
                                      : read_cpu_stat_v1(layout.cpu->dir));
    }
    if (!usage && layout.cpuacct) {
        if (layout.cpuacct->version == 1) {
            if (auto ns = read_cpuacct_usage_usec(layout.cpuacct->dir))
                usage = *ns;
            else
                note(ns.error());
        } else if (auto stat = read_cpu_stat_v2(layout.cpuacct->dir); !stat) {
            note(stat.error());
        } else if (stat->has_value()) {
            usage = (*stat)->usage_usec;
        }
    }
    if (usage) {
        cpu.usage_usec = *usage;
        if (previous_cpu_) {
            const double elapsed_usec =
                std::chrono::duration<double, std::micro>(now - previous_cpu_->at).count();
            cpu.utilisation = cpu_utilisation(previous_cpu_->usage_usec, *usage, elapsed_usec,
                                              cpu.quota_cores.value_or(cpu.effective_cores));
        }
        previous_cpu_ = CpuSample{now, *usage};
    }
    return cpu;
}

void Prober::sample_trees(Snapshot& out, const std::vector<std::pair<unsigned, pid_t>>& workers) {
    const bool with_pss = cycle_ % pss_every_ == 0;
    trees_.begin_cycle();
    std::unordered_set<pid_t> worker_pids;
    for (const auto& [id, pid] : workers) worker_pids.insert(pid);

    std::unordered_map<pid_t, std::optional<RollupReading>> rollup_now;
    // A tree not read yet (a new worker) is read at once: until then its RSS would stand for it,
    // which counts a preloaded app's shared pages in full. One whose read gave nothing (no
    // smaps_rollup) waits for the next nth cycle like the others.
    const auto sample = [&](pid_t pid) {
        const auto last = last_rollup_.find(pid);
        const bool read_pss = with_pss || last == last_rollup_.end();
        ProcessTreeSample tree = trees_.sample(pid, read_pss, worker_pids, out.problems);
        if (tree.pss_bytes) {
            rollup_now[pid] =
                RollupReading{*tree.pss_bytes, tree.private_bytes.value_or(0), tree.rss_bytes};
        } else if (last != last_rollup_.end() && last->second) {
            // Between refreshes the last reading stands, plus what the tree's RSS grew by since
            // (a new page is its own until shown otherwise): a worker first read while it was
            // still importing its app is not taken for its starting size for n cycles.
            const RollupReading& read = *last->second;
            const std::uint64_t grown =
                tree.rss_bytes > read.rss_bytes ? tree.rss_bytes - read.rss_bytes : 0;
            tree.pss_bytes = read.pss_bytes + grown;
            tree.private_bytes = read.private_bytes + grown;
            rollup_now[pid] = read;
        } else {
            rollup_now[pid] = std::nullopt;  // read, nothing known: not again before the nth cycle
        }
        return tree;
    };
    out.self = sample(self_pid_);
    out.worker_trees.clear();
    for (const auto& [id, pid] : workers) out.worker_trees[id] = sample(pid);
    last_rollup_ = std::move(rollup_now);  // forgets the pids no longer sampled
}

void Prober::sample(Snapshot& out, const std::vector<std::pair<unsigned, pid_t>>& workers) {
    out.taken_at = Clock::now();
    out.taken_at_wall = WallClock::now();
    out.problems.clear();
    discover(out.problems);
    const std::size_t problems_before = out.problems.size();
    // Without a layout (discovery failed) the host facts still count: no cgroup files are read.
    static const CgroupLayout kNoCgroups;
    const CgroupLayout& layout = layout_ ? *layout_ : kNoCgroups;
    out.cgroup = to_cgroup_info(layout);
    out.cpu = sample_cpu(layout, out.taken_at, out.problems);
    out.memory = probe_memory(layout.memory, roots_.proc, out.problems);
    out.pressure = probe_pressure(roots_.proc, layout.unified, out.problems);
    // A failed read may mean the process moved to another cgroup: look again next cycle.
    if (out.problems.size() > problems_before) layout_.reset();
    sample_trees(out, workers);
    ++cycle_;
}

}  // namespace tuner::probes
