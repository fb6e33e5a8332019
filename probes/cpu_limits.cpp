// Readers of the CPU limit files and the effective-core rule (see cpu_limits.hpp).
#include "probes/cpu_limits.hpp"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "probes/kernel_file.hpp"
#include "probes/text_parse.hpp"

namespace tuner::probes {

Result<std::optional<CpuQuota>> read_cpu_max(const std::string& dir) {
    return read_parsed<CpuQuota>(
        join_path(dir, "cpu.max"),
        [](std::string_view content, const std::string& path) -> Result<std::optional<CpuQuota>> {
            const std::string_view text = trim(content);
            const std::size_t space = text.find(' ');
            const auto bad = [&] {
                return make_error(path, "not \"<quota|max> <period>\": " + quote(content));
            };
            if (space == std::string_view::npos) return bad();
            auto period = parse_u64(text.substr(space + 1), path);
            if (!period || *period == 0) return bad();
            const std::string_view quota_text = text.substr(0, space);
            if (quota_text == "max") return std::optional<CpuQuota>{};
            auto quota = parse_u64(quota_text, path);
            if (!quota) return bad();
            return std::optional<CpuQuota>{CpuQuota{*quota, *period}};
        });
}

Result<std::optional<std::uint64_t>> read_cfs_quota_us(const std::string& dir) {
    return read_parsed<std::uint64_t>(
        join_path(dir, "cpu.cfs_quota_us"),
        [](std::string_view content,
           const std::string& path) -> Result<std::optional<std::uint64_t>> {
            if (trim(content).empty()) return make_error(path, "empty file, expected a number");
            auto quota = parse_i64(content, path);
            if (!quota) return quota.error();
            if (*quota < 0) return std::optional<std::uint64_t>{};  // -1: unlimited
            return std::optional<std::uint64_t>{static_cast<std::uint64_t>(*quota)};
        });
}

Result<std::optional<std::uint64_t>> read_cfs_period_us(const std::string& dir) {
    return read_parsed<std::uint64_t>(
        join_path(dir, "cpu.cfs_period_us"),
        [](std::string_view content, const std::string& path) -> Result<std::uint64_t> {
            auto period = parse_single_u64(content, path);
            if (period && *period == 0) return make_error(path, "period of 0: " + quote(content));
            return period;
        });
}

Result<std::optional<CpuQuota>> read_cfs_quota_v1(const std::string& dir) {
    auto quota = read_cfs_quota_us(dir);
    if (!quota) return quota.error();
    if (!quota->has_value()) return std::optional<CpuQuota>{};
    auto period = read_cfs_period_us(dir);
    if (!period) return period.error();
    if (!period->has_value()) return std::optional<CpuQuota>{};
    return std::optional<CpuQuota>{CpuQuota{**quota, **period}};
}

Result<std::optional<unsigned>> read_cpuset_cpu_count(const ControllerDir& cpuset) {
    const auto read = [&](const char* name) {
        return read_parsed<unsigned>(join_path(cpuset.dir, name), count_cpu_list);
    };
    if (cpuset.version == 2) return read("cpuset.cpus.effective");
    auto effective = read("cpuset.effective_cpus");
    if (!effective || effective->has_value()) return effective;
    return read("cpuset.cpus");
}

Result<unsigned> read_online_cpus(const std::string& fs_root) {
    const std::string path = join_path(fs_root, "/sys/devices/system/cpu/online");
    auto count = read_parsed<unsigned>(path, count_cpu_list);
    if (!count) return count.error();
    if (!count->has_value()) return make_error(path, "no such file");
    return **count;
}

Result<unsigned> read_affinity_cpus(pid_t pid) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(pid, sizeof set, &set) != 0) {
        return make_error("sched_getaffinity(" + std::to_string(pid) + ")",
                          std::string("failed: ") + std::strerror(errno));
    }
    return static_cast<unsigned>(CPU_COUNT(&set));
}

Result<std::optional<QuotaLimit>> find_tightest_quota(const ControllerDir& cpu) {
    std::optional<QuotaLimit> tightest;
    for (const auto& level : hierarchy_levels(cpu)) {
        auto quota = cpu.version == 2 ? read_cpu_max(level.dir) : read_cfs_quota_v1(level.dir);
        if (!quota) return quota.error();
        if (!quota->has_value()) continue;
        if (!tightest || (*quota)->cores() < tightest->quota.cores()) {
            tightest = QuotaLimit{**quota, level.cgroup_path};
        }
    }
    return tightest;
}

void resolve_effective_cores(CpuInfo& cpu) {
    const unsigned affinity = std::max(1u, std::min(cpu.affinity_cores, cpu.host_cores));
    if (cpu.quota_cores) {
        // ceil(): a 1.5-core quota still lets 2 threads run at once, just not all the time.
        const double ceiled = std::ceil(*cpu.quota_cores);
        const unsigned quota_cores = ceiled < 1 ? 1u : static_cast<unsigned>(std::min(ceiled, 1e6));
        // On a tie the quota is named: it is the bound that also throttles.
        if (quota_cores <= affinity) {
            cpu.effective_cores = quota_cores;
            cpu.source = "quota";
            return;
        }
    }
    cpu.effective_cores = affinity;
    cpu.source = affinity < cpu.host_cores ? "cpuset" : "host";
}

}  // namespace tuner::probes
