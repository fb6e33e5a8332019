// Fuzz target: the CPU readers (probes/cpu_limits.hpp, probes/cpu_usage.hpp) and the effective
// core rule, as Prober::sample_cpu puts them together. The input is the files of one cgroup
// directory, separated by NUL bytes, in this order (a part not in the input: no such file):
//   cpu.max, cpu.cfs_quota_us, cpu.cfs_period_us, cpuset.cpus.effective, cpuset.effective_cpus,
//   cpuset.cpus, /sys/devices/system/cpu/online, cpu.stat, cpuacct.usage
// Each is read as v1 and as v2 where both exist. What must hold: no crash; effective_cores is
// at least 1 and at most the affinity (itself at most the host's CPUs); a utilisation is a
// number, never negative.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "probes/cpu_limits.hpp"
#include "probes/cpu_usage.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using namespace tuner::probes;

void sample(const ControllerDir& dir, const std::string& fs_root) {
    tuner::CpuInfo cpu;
    const auto online = read_online_cpus(fs_root);
    cpu.host_cores = online ? *online : 1;
    cpu.affinity_cores = cpu.host_cores;
    if (const auto count = read_cpuset_cpu_count(dir); count && count->has_value())
        cpu.affinity_cores = std::min(cpu.affinity_cores, **count);
    if (const auto quota = find_tightest_quota(dir); quota && quota->has_value())
        cpu.quota_cores = (*quota)->quota.cores();
    resolve_effective_cores(cpu);
    FUZZ_CHECK(cpu.effective_cores >= 1, "no effective core");
    FUZZ_CHECK(cpu.effective_cores <= std::max(1u, cpu.affinity_cores),
               "more effective cores than the affinity allows");

    const auto counters = dir.version == 2 ? read_cpu_stat_v2(dir.dir) : read_cpu_stat_v1(dir.dir);
    const auto usage = read_cpuacct_usage_usec(dir.dir);
    if (counters && counters->has_value() && (*counters)->usage_usec) {
        const auto used = cpu_utilisation(0, *(*counters)->usage_usec, 1e6,
                                          static_cast<double>(cpu.effective_cores));
        FUZZ_CHECK(!used || (!std::isnan(*used) && *used >= 0), "a utilisation below 0 or NaN");
    }
    (void)usage;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const char* const kFiles[] = {"cg/cpu.max",
                                         "cg/cpu.cfs_quota_us",
                                         "cg/cpu.cfs_period_us",
                                         "cg/cpuset.cpus.effective",
                                         "cg/cpuset.effective_cpus",
                                         "cg/cpuset.cpus",
                                         "sys/devices/system/cpu/online",
                                         "cg/cpu.stat",
                                         "cg/cpuacct.usage"};
    constexpr std::size_t kCount = sizeof kFiles / sizeof kFiles[0];
    auto& scratch = tuner::fuzz::Scratch::get();
    const auto parts = tuner::fuzz::split_parts(tuner::fuzz::as_text(data, size), kCount);
    for (std::size_t i = 0; i < kCount; ++i) scratch.put_part(kFiles[i], parts, i);

    const std::string dir = scratch.path() + "/cg";
    (void)read_cpu_max(dir);
    (void)read_cfs_quota_us(dir);
    (void)read_cfs_period_us(dir);
    (void)read_cfs_quota_v1(dir);
    for (int version : {1, 2}) {
        ControllerDir controller;
        controller.version = version;
        controller.cgroup_path = "/";
        controller.dir = dir;
        controller.mount_dir = dir;
        controller.mount_root = "/";
        sample(controller, scratch.path());
    }
    return 0;
}
