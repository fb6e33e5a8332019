// Builds the probe report in JSON and text (see probe_report.hpp). JSON sizes are bytes
// (`_bytes`), times seconds (`_s`) or microseconds (`_usec`), as DESIGN's API sketch asks.
#include "tuner/report/probe_report.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace tuner::report {
namespace {

nlohmann::json optional_json(const auto& value) {
    return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

nlohmann::json pressure_line_json(const std::optional<PressureLine>& line) {
    if (!line) return nullptr;
    return {{"avg10", line->avg10},
            {"avg60", line->avg60},
            {"avg300", line->avg300},
            {"total_usec", line->total_usec}};
}

nlohmann::json pressure_resource_json(const std::optional<PressureResource>& resource) {
    if (!resource) return nullptr;
    return {{"some", pressure_line_json(resource->some)},
            {"full", pressure_line_json(resource->full)}};
}

// "2026-11-23T15:53:40Z"
std::string utc_text(WallClock::time_point at) {
    const std::time_t t = WallClock::to_time_t(at);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string fixed(double value, int decimals) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
    return buf;
}

std::string pressure_line_text(const std::optional<PressureLine>& line) {
    if (!line) return "-";
    return fixed(line->avg10, 2) + "/" + fixed(line->avg60, 2) + "/" + fixed(line->avg300, 2);
}

}  // namespace

nlohmann::json cgroup_json(const CgroupInfo& cgroup) {
    return {{"version", to_string(cgroup.version)},
            {"path", cgroup.path},
            {"cpu_path", cgroup.cpu_path},
            {"memory_path", cgroup.memory_path}};
}

nlohmann::json cpu_json(const CpuInfo& cpu) {
    return {{"effective_cores", cpu.effective_cores},
            {"source", cpu.source},
            {"host_cores", cpu.host_cores},
            {"affinity_cores", cpu.affinity_cores},
            {"quota_cores", optional_json(cpu.quota_cores)},
            {"quota_cgroup", cpu.quota_cgroup},
            {"usage_usec", cpu.usage_usec},
            {"nr_periods", cpu.nr_periods},
            {"nr_throttled", cpu.nr_throttled},
            {"throttled_usec", cpu.throttled_usec},
            {"utilisation", optional_json(cpu.utilisation)}};
}

nlohmann::json memory_json(const MemoryInfo& memory) {
    return {{"limit_bytes", memory.limit_bytes},
            {"limited", memory.limited},
            {"source", memory.source},
            {"high_bytes", optional_json(memory.high_bytes)},
            {"usage_bytes", memory.usage_bytes},
            {"inactive_file_bytes", memory.inactive_file_bytes},
            {"working_set_bytes", memory.working_set_bytes},
            {"active_file_bytes", memory.active_file_bytes},
            {"unreclaimable_bytes", memory.unreclaimable_bytes()},
            {"oom_kills", memory.oom_kills},
            {"host_total_bytes", memory.host_total_bytes},
            {"host_available_bytes", memory.host_available_bytes}};
}

nlohmann::json pressure_json(const PressureInfo& pressure) {
    return {{"source", pressure.source},
            {"cpu", pressure_resource_json(pressure.cpu)},
            {"memory", pressure_resource_json(pressure.memory)},
            {"io", pressure_resource_json(pressure.io)}};
}

nlohmann::json process_tree_json(const ProcessTreeSample& tree) {
    return {{"pid", tree.pid},
            {"processes", tree.processes},
            {"rss_bytes", tree.rss_bytes},
            {"pss_bytes", optional_json(tree.pss_bytes)},
            {"private_bytes", optional_json(tree.private_bytes)},
            {"cpu_s", tree.cpu_seconds}};
}

nlohmann::json seed_formula_json(const policies::SeedInputs& in, const policies::SeedResult& out) {
    return {{"effective_cores", in.effective_cores},
            {"cpu_workers", out.cpu_workers},
            {"memory_limit_bytes", in.memory_limit_bytes},
            {"memory_limited", in.memory_limited},
            {"os_reserve_bytes", in.memory_limited ? 0 : in.os_reserve_bytes},
            {"postgres_share_bytes", in.postgres_share_bytes},
            {"self_rss_bytes", in.self_rss_bytes},
            {"cache_room_bytes", in.cache_room_bytes},
            {"budget_bytes", out.budget_bytes},
            {"per_worker_bytes", in.per_worker_bytes},
            {"per_worker_measured", in.per_worker_measured},
            {"memory_ceiling", out.memory_ceiling},
            {"min_workers", in.min_workers},
            {"max_workers", in.max_workers},
            {"workers", out.workers},
            {"memory_capped", out.memory_capped},
            {"below_min", out.below_min},
            {"reason", out.reason}};
}

nlohmann::json probe_json(const Snapshot& snapshot, const policies::SeedInputs& in,
                          const policies::SeedResult& out) {
    return {{"taken_at", utc_text(snapshot.taken_at_wall)},
            {"cgroup", cgroup_json(snapshot.cgroup)},
            {"cpu", cpu_json(snapshot.cpu)},
            {"memory", memory_json(snapshot.memory)},
            {"pressure", pressure_json(snapshot.pressure)},
            {"process", process_tree_json(snapshot.self)},
            {"seed_formula", seed_formula_json(in, out)},
            {"problems", snapshot.problems}};
}

std::string probe_text(const Snapshot& s, const policies::SeedResult& seed) {
    std::string t;
    const auto line = [&t](const char* label, const std::string& text) {
        char head[16];
        std::snprintf(head, sizeof head, "%-10s ", label);
        t += head + text + "\n";
    };
    line("cgroup", std::string(to_string(s.cgroup.version)) +
                       (s.cgroup.path.empty() ? "" : " " + s.cgroup.path) +
                       (s.cgroup.cpu_path != s.cgroup.path && !s.cgroup.cpu_path.empty()
                            ? " (cpu " + s.cgroup.cpu_path + ")"
                            : ""));

    const CpuInfo& c = s.cpu;
    std::string cpu = std::to_string(c.effective_cores) + " effective cores, bound by " + c.source;
    cpu += c.quota_cores ? " (quota " + fixed(*c.quota_cores, 2) + " cores at " + c.quota_cgroup
                         : " (no quota";
    cpu += "; affinity " + std::to_string(c.affinity_cores) + ", host " +
           std::to_string(c.host_cores) + ")";
    line("cpu", cpu);
    line("", "usage " + fixed(static_cast<double>(c.usage_usec) / 1e6, 1) + " s; throttled " +
                 std::to_string(c.nr_throttled) + " of " + std::to_string(c.nr_periods) +
                 " periods (" + fixed(static_cast<double>(c.throttled_usec) / 1e6, 1) + " s)");

    const MemoryInfo& m = s.memory;
    line("memory", "limit " + format_size_approx(m.limit_bytes) + " from " + m.source);
    line("", "usage " + format_size_approx(m.usage_bytes) + ", working set " +
                 format_size_approx(m.working_set_bytes) + " (inactive file " +
                 format_size_approx(m.inactive_file_bytes) + ", active file " +
                 format_size_approx(m.active_file_bytes) + "); high " +
                 (m.high_bytes ? format_size_approx(*m.high_bytes) : std::string("none")) +
                 "; OOM kills " + std::to_string(m.oom_kills));
    line("", "host " + format_size_approx(m.host_total_bytes) + " total, " +
                 format_size_approx(m.host_available_bytes) + " available");

    const PressureInfo& p = s.pressure;
    if (p.source.empty()) {
        line("pressure", "not available (no PSI on this kernel)");
    } else {
        line("pressure", p.source + " (avg10/avg60/avg300 %)");
        const std::pair<const char*, const std::optional<PressureResource>*> resources[] = {
            {"cpu", &p.cpu}, {"memory", &p.memory}, {"io", &p.io}};
        for (const auto& [name, resource] : resources) {
            if (!*resource) continue;
            char row[160];
            std::snprintf(row, sizeof row, "  %-7s some %s  full %s", name,
                          pressure_line_text((*resource)->some).c_str(),
                          pressure_line_text((*resource)->full).c_str());
            line("", row);
        }
    }

    const ProcessTreeSample& self = s.self;
    line("process", "pid " + std::to_string(self.pid) + ": " + std::to_string(self.processes) +
                        (self.processes == 1 ? " process" : " processes") + ", RSS " +
                        format_size_approx(self.rss_bytes) +
                        (self.pss_bytes ? ", PSS " + format_size_approx(*self.pss_bytes) : "") +
                        ", CPU " + fixed(self.cpu_seconds, 2) + " s");
    line("seed", std::to_string(seed.workers) + " workers: " + seed.reason);
    if (s.problems.empty()) {
        line("problems", "none");
    } else {
        for (std::size_t i = 0; i < s.problems.size(); ++i) {
            line(i == 0 ? "problems" : "", s.problems[i]);
        }
    }
    return t;
}

}  // namespace tuner::report
