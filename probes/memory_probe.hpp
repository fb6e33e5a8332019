// Memory: the cgroup limit (tightest up the hierarchy), usage, inactive file cache, OOM kills
// (v2 memory.* files, v1 memory.*_in_bytes, memory.stat, memory.oom_control) and host
// /proc/meminfo, gathered into the Snapshot's MemoryInfo.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/result.hpp"
#include "model/snapshot.hpp"
#include "probes/cgroup_discovery.hpp"

namespace tuner::probes {

// v1 memory.limit_in_bytes at or above 2^62 is "unlimited": the kernel reports
// PAGE_COUNTER_MAX rounded down to a page (9223372036854771712 with 4 KiB pages).
inline constexpr std::uint64_t kV1UnlimitedBytes = 1ULL << 62;

// v2 <dir>/memory.max and memory.high: bytes; "max" or a missing file is no limit (nullopt).
Result<std::optional<std::uint64_t>> read_memory_max(const std::string& dir);
Result<std::optional<std::uint64_t>> read_memory_high(const std::string& dir);
// v2 <dir>/memory.current: bytes in use (absent in the root cgroup).
Result<std::optional<std::uint64_t>> read_memory_current(const std::string& dir);
// v2 <dir>/memory.stat: its inactive_file (required when the file exists) and active_file (0
// when absent).
struct MemoryStatV2 {
    std::uint64_t inactive_file_bytes = 0;
    std::uint64_t active_file_bytes = 0;
};
Result<std::optional<MemoryStatV2>> read_memory_stat_v2(const std::string& dir);
// v2 <dir>/memory.events: its oom_kill count (0 when the line is absent).
Result<std::optional<std::uint64_t>> read_memory_events_oom_kill(const std::string& dir);

// v1 <dir>/memory.limit_in_bytes: bytes; ≥ 2^62 or a missing file is no limit (nullopt).
Result<std::optional<std::uint64_t>> read_memory_limit_in_bytes(const std::string& dir);
// v1 <dir>/memory.usage_in_bytes.
Result<std::optional<std::uint64_t>> read_memory_usage_in_bytes(const std::string& dir);
// v1 <dir>/memory.stat: total_inactive_file (else inactive_file), total_active_file (else
// active_file, else 0) and hierarchical_memory_limit
// (std::nullopt when ≥ 2^62, i.e. no ancestor is limited).
struct MemoryStatV1 {
    std::uint64_t inactive_file_bytes = 0;
    std::uint64_t active_file_bytes = 0;
    std::optional<std::uint64_t> hierarchical_limit_bytes;
};
Result<std::optional<MemoryStatV1>> read_memory_stat_v1(const std::string& dir);
// v1 <dir>/memory.oom_control: its oom_kill count (kernel ≥ 4.13; 0 when the line is absent).
Result<std::optional<std::uint64_t>> read_memory_oom_control_oom_kill(const std::string& dir);

// <proc_root>/meminfo MemTotal and MemAvailable (absent before Linux 3.14).
struct HostMemory {
    std::uint64_t total_bytes = 0;
    std::optional<std::uint64_t> available_bytes;
};
Result<HostMemory> read_meminfo(const std::string& proc_root);

// The tightest limit file (v2 memory.max and memory.high, v1 memory.limit_in_bytes) from the
// process's cgroup up to the mount root. probe_memory adds v1's hierarchical_memory_limit.
struct MemoryLimit {
    std::uint64_t bytes = 0;
    std::string source;  // "cgroup memory.max at /app.slice"
};
struct CgroupMemoryLimits {
    std::optional<MemoryLimit> max;
    std::optional<std::uint64_t> high_bytes;  // v2 only
};
Result<CgroupMemoryLimits> find_tightest_memory_limits(const ControllerDir& memory);

// The cgroup's oom_kill count (memory.events or memory.oom_control), 0 when not reported.
Result<std::uint64_t> read_oom_kills(const ControllerDir& memory);

// Fills MemoryInfo from the cgroup (when there is one) and the host; every failed read becomes a
// problem string and leaves its field at the fallback (host MemTotal, usage from MemAvailable).
MemoryInfo probe_memory(const std::optional<ControllerDir>& memory, const std::string& proc_root,
                        std::vector<std::string>& problems);

}  // namespace tuner::probes
