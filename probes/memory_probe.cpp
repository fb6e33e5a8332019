// Readers of the memory files and their assembly into MemoryInfo (see memory_probe.hpp).
// Working set = usage − inactive_file, as the kubelet computes it for eviction
// (kubernetes.io/docs/concepts/scheduling-eviction/node-pressure-eviction).
#include "probes/memory_probe.hpp"

#include "probes/kernel_file.hpp"
#include "probes/text_parse.hpp"

namespace tuner::probes {
namespace {

// A limit file: "max" (v2) or a value ≥ `unlimited_from` means no limit.
Result<std::optional<std::uint64_t>> read_limit(const std::string& dir, const char* name,
                                                std::uint64_t unlimited_from) {
    return read_parsed<std::uint64_t>(
        join_path(dir, name),
        [&](std::string_view content,
            const std::string& path) -> Result<std::optional<std::uint64_t>> {
            if (trim(content) == "max") return std::optional<std::uint64_t>{};
            auto bytes = parse_single_u64(content, path);
            if (!bytes) return bytes.error();
            if (*bytes >= unlimited_from) return std::optional<std::uint64_t>{};
            return std::optional<std::uint64_t>{*bytes};
        });
}

Result<std::optional<std::uint64_t>> read_number(const std::string& dir, const char* name) {
    return read_parsed<std::uint64_t>(join_path(dir, name), parse_single_u64);
}

// A "key value" counter that older kernels may not print: 0 when its line is absent.
Result<std::optional<std::uint64_t>> read_counter(const std::string& dir, const char* name,
                                                  const char* key) {
    return read_parsed<std::uint64_t>(
        join_path(dir, name),
        [&](std::string_view content, const std::string& path) -> Result<std::uint64_t> {
            auto value = find_keyed_u64(content, key, path);
            if (!value) return value.error();
            return value->value_or(0);
        });
}

std::string cgroup_source(const char* file, const std::string& cgroup_path) {
    return std::string("cgroup ") + file + " at " + cgroup_path;
}

}  // namespace

Result<std::optional<std::uint64_t>> read_memory_max(const std::string& dir) {
    return read_limit(dir, "memory.max", UINT64_MAX);
}

Result<std::optional<std::uint64_t>> read_memory_high(const std::string& dir) {
    return read_limit(dir, "memory.high", UINT64_MAX);
}

Result<std::optional<std::uint64_t>> read_memory_current(const std::string& dir) {
    return read_number(dir, "memory.current");
}

Result<std::optional<MemoryStatV2>> read_memory_stat_v2(const std::string& dir) {
    return read_parsed<MemoryStatV2>(
        join_path(dir, "memory.stat"),
        [](std::string_view content, const std::string& path) -> Result<MemoryStatV2> {
            MemoryStatV2 stat;
            auto inactive = find_keyed_u64(content, "inactive_file", path);
            if (!inactive) return inactive.error();
            if (!inactive->has_value()) {
                return make_error(path, "no inactive_file line in " + quote(content));
            }
            stat.inactive_file_bytes = **inactive;
            auto active = find_keyed_u64(content, "active_file", path);
            if (!active) return active.error();
            stat.active_file_bytes = active->value_or(0);
            return stat;
        });
}

Result<std::optional<std::uint64_t>> read_memory_events_oom_kill(const std::string& dir) {
    return read_counter(dir, "memory.events", "oom_kill");
}

Result<std::optional<std::uint64_t>> read_memory_limit_in_bytes(const std::string& dir) {
    return read_limit(dir, "memory.limit_in_bytes", kV1UnlimitedBytes);
}

Result<std::optional<std::uint64_t>> read_memory_usage_in_bytes(const std::string& dir) {
    return read_number(dir, "memory.usage_in_bytes");
}

Result<std::optional<MemoryStatV1>> read_memory_stat_v1(const std::string& dir) {
    return read_parsed<MemoryStatV1>(
        join_path(dir, "memory.stat"),
        [](std::string_view content, const std::string& path) -> Result<MemoryStatV1> {
            MemoryStatV1 stat;
            // total_* includes the descendants' pages; plain inactive_file is this cgroup only.
            auto inactive = find_keyed_u64(content, "total_inactive_file", path);
            if (inactive && !inactive->has_value())
                inactive = find_keyed_u64(content, "inactive_file", path);
            if (!inactive) return inactive.error();
            if (!inactive->has_value()) {
                return make_error(
                    path, "no total_inactive_file or inactive_file line in " + quote(content));
            }
            stat.inactive_file_bytes = **inactive;
            auto active = find_keyed_u64(content, "total_active_file", path);
            if (active && !active->has_value())
                active = find_keyed_u64(content, "active_file", path);
            if (!active) return active.error();
            stat.active_file_bytes = active->value_or(0);
            auto hierarchical = find_keyed_u64(content, "hierarchical_memory_limit", path);
            if (!hierarchical) return hierarchical.error();
            if (hierarchical->has_value() && **hierarchical < kV1UnlimitedBytes) {
                stat.hierarchical_limit_bytes = **hierarchical;
            }
            return stat;
        });
}

Result<std::optional<std::uint64_t>> read_memory_oom_control_oom_kill(const std::string& dir) {
    return read_counter(dir, "memory.oom_control", "oom_kill");
}

Result<HostMemory> read_meminfo(const std::string& proc_root) {
    const std::string path = join_path(proc_root, "meminfo");
    auto content = read_optional_file(path);
    if (!content) return content.error();
    if (!content->has_value()) return make_error(path, "no such file");
    auto total = find_kb_field_bytes(**content, "MemTotal", path);
    if (!total) return total.error();
    if (!total->has_value() || **total == 0) {
        return make_error(path, "no MemTotal line in " + quote(**content));
    }
    auto available = find_kb_field_bytes(**content, "MemAvailable", path);
    if (!available) return available.error();
    return HostMemory{**total, *available};
}

Result<CgroupMemoryLimits> find_tightest_memory_limits(const ControllerDir& memory) {
    CgroupMemoryLimits limits;
    const bool v2 = memory.version == 2;
    const char* max_file = v2 ? "memory.max" : "memory.limit_in_bytes";
    for (const auto& level : hierarchy_levels(memory)) {
        auto max = v2 ? read_memory_max(level.dir) : read_memory_limit_in_bytes(level.dir);
        if (!max) return max.error();
        if (max->has_value() && (!limits.max || **max < limits.max->bytes)) {
            limits.max = MemoryLimit{**max, cgroup_source(max_file, level.cgroup_path)};
        }
        if (!v2) continue;
        auto high = read_memory_high(level.dir);
        if (!high) return high.error();
        if (high->has_value() && (!limits.high_bytes || **high < *limits.high_bytes)) {
            limits.high_bytes = **high;
        }
    }
    return limits;
}

Result<std::uint64_t> read_oom_kills(const ControllerDir& memory) {
    auto kills = memory.version == 2 ? read_memory_events_oom_kill(memory.dir)
                                     : read_memory_oom_control_oom_kill(memory.dir);
    if (!kills) return kills.error();
    return kills->value_or(0);
}

MemoryInfo probe_memory(const std::optional<ControllerDir>& memory, const std::string& proc_root,
                        std::vector<std::string>& problems) {
    MemoryInfo info;
    const auto note = [&](const Error& e) { problems.push_back(e.to_string()); };
    if (auto host = read_meminfo(proc_root)) {
        info.host_total_bytes = host->total_bytes;
        info.host_available_bytes = host->available_bytes.value_or(0);
    } else {
        note(host.error());
    }

    std::optional<MemoryLimit> limit;
    std::optional<std::uint64_t> usage;
    std::uint64_t inactive_file = 0;
    std::uint64_t active_file = 0;
    if (memory) {
        auto limits = find_tightest_memory_limits(*memory);
        if (limits) {
            limit = limits->max;
            info.high_bytes = limits->high_bytes;
        } else {
            note(limits.error());
        }
        const bool v2 = memory->version == 2;
        auto current =
            v2 ? read_memory_current(memory->dir) : read_memory_usage_in_bytes(memory->dir);
        if (current)
            usage = *current;
        else
            note(current.error());
        if (v2) {
            if (auto stat = read_memory_stat_v2(memory->dir); !stat) {
                note(stat.error());
            } else if (stat->has_value()) {
                inactive_file = (*stat)->inactive_file_bytes;
                active_file = (*stat)->active_file_bytes;
            }
        } else if (auto stat = read_memory_stat_v1(memory->dir); !stat) {
            note(stat.error());
        } else if (stat->has_value()) {
            inactive_file = (*stat)->inactive_file_bytes;
            active_file = (*stat)->active_file_bytes;
            const auto& hierarchical = (*stat)->hierarchical_limit_bytes;
            if (hierarchical && (!limit || *hierarchical < limit->bytes)) {
                limit = MemoryLimit{*hierarchical,
                                    "cgroup hierarchical_memory_limit in "
                                    "memory.stat at " +
                                        memory->cgroup_path};
            }
        }
        if (auto kills = read_oom_kills(*memory))
            info.oom_kills = *kills;
        else
            note(kills.error());
    }

    // A cgroup limit above the host's memory does not bind: the host does.
    if (limit && (info.host_total_bytes == 0 || limit->bytes < info.host_total_bytes)) {
        info.limited = true;
        info.limit_bytes = limit->bytes;
        info.source = limit->source;
    } else {
        info.limit_bytes = info.host_total_bytes;
        info.source = "host MemTotal";
        if (limit) info.source += " (smaller than the " + limit->source + ")";
    }
    if (usage) {
        info.usage_bytes = *usage;
        info.inactive_file_bytes = inactive_file;
        info.active_file_bytes = active_file;
    } else if (info.host_total_bytes >= info.host_available_bytes) {
        // The root cgroup has no usage file: the host's use is the closest measure, and
        // MemAvailable already leaves reclaimable cache out.
        info.usage_bytes = info.host_total_bytes - info.host_available_bytes;
    }
    info.working_set_bytes = info.usage_bytes > info.inactive_file_bytes
                                 ? info.usage_bytes - info.inactive_file_bytes
                                 : 0;
    return info;
}

}  // namespace tuner::probes
