// What tunerd knows about its box and its traffic at one instant: plain data produced by probes/
// (limits, usage, pressure, per-process memory) and by server/ (the front's window statistics and
// the pool's state). Policies read only this; they never touch files or sockets.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/units.hpp"

namespace tuner {

// ---- from probes/ -------------------------------------------------------------------------

enum class CgroupVersion { none, v1, v2, hybrid };

inline const char* to_string(CgroupVersion v) {
    switch (v) {
        case CgroupVersion::none:
            return "none";
        case CgroupVersion::v1:
            return "v1";
        case CgroupVersion::v2:
            return "v2";
        case CgroupVersion::hybrid:
            return "hybrid";
    }
    return "?";
}

struct CgroupInfo {
    CgroupVersion version = CgroupVersion::none;
    std::string
        path;  // the process's cgroup, e.g. "/system.slice/tunerd.service" (v2 or v1 memory)
    std::string cpu_path;     // v1: the cpu controller's cgroup; v2: same as path
    std::string memory_path;  // v1: the memory controller's cgroup; v2: same as path
};

struct CpuInfo {
    unsigned effective_cores = 1;       // min(affinity, ceil(quota/period)), at least 1
    std::string source = "host";        // "quota", "cpuset" or "host": what bounded effective_cores
    unsigned host_cores = 1;            // online CPUs of the machine
    unsigned affinity_cores = 1;        // sched_getaffinity / cpuset.cpus.effective
    std::optional<double> quota_cores;  // quota/period of the tightest limit, unset = unlimited
    std::string quota_cgroup;           // where that limit was found
    // Cumulative counters of the cgroup (0 when unknown); utilisation comes from two snapshots.
    std::uint64_t usage_usec = 0;
    std::uint64_t nr_periods = 0;
    std::uint64_t nr_throttled = 0;
    std::uint64_t throttled_usec = 0;
    // Utilisation of the quota (or of effective_cores) since the previous snapshot, 0..1+.
    std::optional<double> utilisation;
};

struct MemoryInfo {
    std::uint64_t limit_bytes = 0;            // the tightest cgroup limit, else host MemTotal
    bool limited = false;                     // a cgroup limit applies
    std::string source = "host";              // "cgroup <file> at <path>" or "host MemTotal"
    std::optional<std::uint64_t> high_bytes;  // v2 memory.high, if set
    std::uint64_t usage_bytes = 0;            // cgroup usage (includes page cache)
    std::uint64_t inactive_file_bytes = 0;
    std::uint64_t working_set_bytes = 0;  // usage − inactive_file
    // Page cache on the active list: in the working set, yet the kernel reclaims it before it
    // OOM-kills (a worker's imported modules, a log file just written).
    std::uint64_t active_file_bytes = 0;
    // What the kernel cannot give back without swap: anonymous memory, shmem, kernel memory.
    // The OOM killer fires when this reaches the limit; the working set may sit above it.
    [[nodiscard]] std::uint64_t unreclaimable_bytes() const {
        return working_set_bytes > active_file_bytes ? working_set_bytes - active_file_bytes : 0;
    }
    std::uint64_t oom_kills = 0;  // cumulative, memory.events / memory.oom_control
    std::uint64_t host_total_bytes = 0;
    std::uint64_t host_available_bytes = 0;  // MemAvailable: a signal only

    // memory.high when it is set below the limit (above it the kernel throttles and reclaims
    // hard), else the limit; 0 when no cgroup limit applies.
    [[nodiscard]] bool high_is_the_line() const {
        return high_bytes && *high_bytes > 0 && (!limited || *high_bytes < limit_bytes);
    }
    [[nodiscard]] std::uint64_t line_bytes() const {
        return high_is_the_line() ? *high_bytes : (limited ? limit_bytes : 0);
    }
};

struct PressureLine {
    double avg10 = 0;
    double avg60 = 0;
    double avg300 = 0;
    std::uint64_t total_usec = 0;
};

struct PressureResource {
    std::optional<PressureLine> some;
    std::optional<PressureLine> full;
};

struct PressureInfo {
    std::string source;  // "cgroup <path>", "/proc/pressure" or "" when PSI is absent
    std::optional<PressureResource> cpu;
    std::optional<PressureResource> memory;
    std::optional<PressureResource> io;
};

// One process and all its descendants (a gunicorn master and its worker).
struct ProcessTreeSample {
    pid_t pid = 0;
    unsigned processes = 0;
    std::uint64_t rss_bytes = 0;
    std::optional<std::uint64_t> pss_bytes;  // refreshed every Nth cycle
    // Private_Clean + Private_Dirty of smaps_rollup summed over the tree (USS), read with PSS:
    // the pages no process outside it maps. For a worker forked from a preloader, what one more
    // such worker costs (the app's shared pages are the preloader's).
    std::optional<std::uint64_t> private_bytes;
    double cpu_seconds = 0;  // utime + stime, cumulative, whole tree
    // Time its threads spent runnable but waiting for a CPU (schedstat run_delay), cumulative,
    // whole tree; unset when the kernel offers no schedstat. A thread that exited takes its
    // share with it, so the sum can fall.
    std::optional<double> cpu_wait_seconds;
};

// ---- from server/ ---------------------------------------------------------------------------

struct Percentiles {
    double p50_ms = 0;
    double p95_ms = 0;
    double p99_ms = 0;
    double mean_ms = 0;
};

struct WorkerWindowStats {
    unsigned id = 0;
    double busy_fraction = 0;  // time with ≥1 request in flight / window
    std::uint64_t served = 0;  // requests completed in the window
};

// The front's statistics over the last window (default 10 s).
struct WindowStats {
    Duration window{0};           // how long the window really covers
    std::uint64_t completed = 0;  // responses sent (any code)
    double rate_rps = 0;          // completed / window
    double arrival_rps = 0;       // requests accepted / window
    Percentiles queue_wait;
    Percentiles service;  // upstream time, first byte sent to last byte received
    Percentiles total;
    double inflight_mean = 0;  // requests at workers
    double inflight_max = 0;
    double queue_length_mean = 0;
    double queue_length_max = 0;
    std::map<int, std::uint64_t> codes;  // status code -> count
    std::uint64_t rejected_queue_full = 0;
    std::uint64_t timed_out_in_queue = 0;
    std::uint64_t upstream_errors = 0;  // 502/504 produced by the front
    unsigned min_ready = 0;             // minimum number of ready workers seen in the window
    // Not windowed: the front's cumulative arrivals and its queue at the snapshot instant, so the
    // controller sees the last cycle without the window's lag (a queue growing, standing or
    // draining). Unset = the front does not report them; the controller then uses the window.
    std::optional<std::uint64_t> accepted_total;  // requests accepted since start
    std::optional<std::uint64_t> queue_length_now;
    std::vector<WorkerWindowStats> workers;
};

enum class WorkerState { starting, ready, draining, stopping };

inline const char* to_string(WorkerState s) {
    switch (s) {
        case WorkerState::starting:
            return "starting";
        case WorkerState::ready:
            return "ready";
        case WorkerState::draining:
            return "draining";
        case WorkerState::stopping:
            return "stopping";
    }
    return "?";
}

struct WorkerInfo {
    unsigned id = 0;
    pid_t pid = 0;
    std::optional<std::uint16_t> port;
    WorkerState state = WorkerState::starting;
    unsigned threads = 1;
    unsigned inflight = 0;
    std::uint64_t served = 0;
    std::uint64_t rss_bytes = 0;  // process tree, from the probes (0 until measured)
    double age_s = 0;
    unsigned restarts = 0;    // how many times this slot was restarted after a crash
    unsigned generation = 1;  // the rolling restart it was started in (1: before any)
};

struct PoolState {
    unsigned target = 0;
    unsigned ready = 0;
    unsigned starting = 0;
    unsigned draining = 0;
    unsigned threads = 1;                   // the pool's current per-worker threads (the knob)
    std::optional<unsigned> manual_target;  // set while an admin pins the pool
    std::vector<WorkerInfo> workers;
};

// The front's micro-cache as memory ([cache], server/micro_cache.hpp): its entries are tunerd's
// own memory, in tunerd's RSS as far as they are held; the rest of its capacity may still come.
struct CacheMemory {
    bool enabled = false;              // cache.size > 0
    std::uint64_t size_bytes = 0;      // cache.size: the knob's ceiling
    std::uint64_t capacity_bytes = 0;  // the knob cache.capacity: what it may hold now
    std::uint64_t bytes = 0;           // what it holds
    // Capacity not held yet: memory the cache may still take (not in tunerd's RSS yet).
    [[nodiscard]] std::uint64_t room_bytes() const {
        return enabled && capacity_bytes > bytes ? capacity_bytes - bytes : 0;
    }
};

// ---- the whole picture ----------------------------------------------------------------------

struct Snapshot {
    Clock::time_point taken_at{};
    WallClock::time_point taken_at_wall{};
    CgroupInfo cgroup;
    CpuInfo cpu;
    MemoryInfo memory;
    PressureInfo pressure;
    ProcessTreeSample self;                              // tunerd itself (not its workers)
    std::map<unsigned, ProcessTreeSample> worker_trees;  // by worker id
    PoolState pool;
    WindowStats window;
    CacheMemory cache;  // the front's micro-cache (all zero when it is off or not reported)
    std::vector<std::string> problems;  // probe errors, as "file: what"
};

}  // namespace tuner
