// Readers of the CPU usage counters (see cpu_usage.hpp).
#include "probes/cpu_usage.hpp"

#include <initializer_list>

#include "probes/kernel_file.hpp"
#include "probes/text_parse.hpp"

namespace tuner::probes {
namespace {

struct Counter {
    const char* key;
    std::uint64_t* into;
};

// Copies the counters present in "key value" `content`; a required one missing is an Error.
Status take_counters(std::string_view content, const std::string& path, Counter required,
                     std::initializer_list<Counter> optional) {
    auto value = find_keyed_u64(content, required.key, path);
    if (!value) return value.error();
    if (!value->has_value()) {
        return make_error(path, std::string("no ") + required.key + " line in " + quote(content));
    }
    *required.into = **value;
    for (const auto& c : optional) {
        auto v = find_keyed_u64(content, c.key, path);
        if (!v) return v.error();
        if (v->has_value()) *c.into = **v;
    }
    return {};
}

}  // namespace

Result<std::optional<CpuCounters>> read_cpu_stat_v2(const std::string& dir) {
    return read_parsed<CpuCounters>(
        join_path(dir, "cpu.stat"),
        [](std::string_view content, const std::string& path) -> Result<CpuCounters> {
            CpuCounters c;
            std::uint64_t usage = 0;
            auto ok = take_counters(content, path, {"usage_usec", &usage},
                                    {{"nr_periods", &c.nr_periods},
                                     {"nr_throttled", &c.nr_throttled},
                                     {"throttled_usec", &c.throttled_usec}});
            if (!ok) return ok.error();
            c.usage_usec = usage;
            return c;
        });
}

Result<std::optional<CpuCounters>> read_cpu_stat_v1(const std::string& dir) {
    return read_parsed<CpuCounters>(
        join_path(dir, "cpu.stat"),
        [](std::string_view content, const std::string& path) -> Result<CpuCounters> {
            CpuCounters c;
            std::uint64_t throttled_ns = 0;
            auto ok = take_counters(
                content, path, {"nr_periods", &c.nr_periods},
                {{"nr_throttled", &c.nr_throttled}, {"throttled_time", &throttled_ns}});
            if (!ok) return ok.error();
            c.throttled_usec = throttled_ns / 1000;
            return c;
        });
}

Result<std::optional<std::uint64_t>> read_cpuacct_usage_usec(const std::string& dir) {
    return read_parsed<std::uint64_t>(
        join_path(dir, "cpuacct.usage"),
        [](std::string_view content, const std::string& path) -> Result<std::uint64_t> {
            auto ns = parse_single_u64(content, path);
            if (!ns) return ns.error();
            return *ns / 1000;
        });
}

std::optional<double> cpu_utilisation(std::uint64_t previous_usage_usec,
                                      std::uint64_t current_usage_usec, double elapsed_usec,
                                      double capacity_cores) {
    if (elapsed_usec <= 0 || capacity_cores <= 0 || current_usage_usec < previous_usage_usec) {
        return std::nullopt;
    }
    return static_cast<double>(current_usage_usec - previous_usage_usec) /
           (elapsed_usec * capacity_cores);
}

}  // namespace tuner::probes
