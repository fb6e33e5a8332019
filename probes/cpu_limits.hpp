// CPU limits: the quota (v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us), the cpuset, the
// affinity mask and the host's online CPUs, and from them the effective core count.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "model/result.hpp"
#include "model/snapshot.hpp"
#include "probes/cgroup_discovery.hpp"

namespace tuner::probes {

struct CpuQuota {
    std::uint64_t quota_usec = 0;
    std::uint64_t period_usec = 100000;
    [[nodiscard]] double cores() const {
        return static_cast<double>(quota_usec) / static_cast<double>(period_usec);
    }
};

// v2 <dir>/cpu.max: "150000 100000" is 1.5 cores; "max 100000" or a missing file is no limit.
Result<std::optional<CpuQuota>> read_cpu_max(const std::string& dir);
// v1 <dir>/cpu.cfs_quota_us: microseconds per period; -1 or a missing file is no limit.
Result<std::optional<std::uint64_t>> read_cfs_quota_us(const std::string& dir);
// v1 <dir>/cpu.cfs_period_us (must be > 0); std::nullopt when missing.
Result<std::optional<std::uint64_t>> read_cfs_period_us(const std::string& dir);
// v1: both files together; no limit when either is absent or the quota is -1.
Result<std::optional<CpuQuota>> read_cfs_quota_v1(const std::string& dir);

// The CPUs the cgroup may run on: v2 cpuset.cpus.effective, v1 cpuset.effective_cpus or else
// cpuset.cpus. std::nullopt when the files are absent (no cpuset controller).
Result<std::optional<unsigned>> read_cpuset_cpu_count(const ControllerDir& cpuset);

// The host's online CPUs from <fs_root>/sys/devices/system/cpu/online ("0-3").
Result<unsigned> read_online_cpus(const std::string& fs_root);

// CPUs in the live process's affinity mask (sched_getaffinity(2)).
Result<unsigned> read_affinity_cpus(pid_t pid);

// The tightest quota from the process's cgroup up to the mount root.
struct QuotaLimit {
    CpuQuota quota;
    std::string cgroup_path;  // where it was found
};
Result<std::optional<QuotaLimit>> find_tightest_quota(const ControllerDir& cpu);

// effective_cores = max(1, min(affinity_cores, ceil(quota/period))), host_cores when
// unlimited (DESIGN "Probes"). Sets effective_cores and source ("quota", "cpuset", "host")
// from host_cores, affinity_cores and quota_cores already in `cpu`.
void resolve_effective_cores(CpuInfo& cpu);

}  // namespace tuner::probes
