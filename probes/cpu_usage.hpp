// CPU usage and throttling counters of a cgroup: v2 cpu.stat, v1 cpuacct.usage and cpu.stat.
// Utilisation of the quota comes from two samples of the cumulative usage.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "model/result.hpp"

namespace tuner::probes {

// Cumulative counters, all in microseconds or counts.
struct CpuCounters {
    std::optional<std::uint64_t> usage_usec;
    std::uint64_t nr_periods = 0;
    std::uint64_t nr_throttled = 0;
    std::uint64_t throttled_usec = 0;
};

// v2 <dir>/cpu.stat: usage_usec (required when the file exists), nr_periods, nr_throttled,
// throttled_usec (present only with the cpu controller enabled). std::nullopt when missing.
Result<std::optional<CpuCounters>> read_cpu_stat_v2(const std::string& dir);

// v1 <dir>/cpu.stat: nr_periods, nr_throttled, throttled_time (ns); usage_usec stays unset.
Result<std::optional<CpuCounters>> read_cpu_stat_v1(const std::string& dir);

// v1 <dir>/cpuacct.usage: total CPU time in nanoseconds, returned in microseconds.
Result<std::optional<std::uint64_t>> read_cpuacct_usage_usec(const std::string& dir);

// The share of `capacity_cores` used between two samples: Δusage / (Δwall × capacity).
// std::nullopt when the interval is empty or the counter went backwards (a new cgroup).
std::optional<double> cpu_utilisation(std::uint64_t previous_usage_usec,
                                      std::uint64_t current_usage_usec, double elapsed_usec,
                                      double capacity_cores);

}  // namespace tuner::probes
