// Readers of the PSI files (see pressure.hpp).
#include "probes/pressure.hpp"

#include <array>

#include "probes/kernel_file.hpp"
#include "probes/text_parse.hpp"

namespace tuner::probes {
namespace {

// "avg10=0.12 avg60=0.30 avg300=0.05 total=12345"
Result<PressureLine> parse_pressure_line(std::string_view fields, std::string_view line,
                                         const std::string& where) {
    PressureLine out;
    bool seen[4] = {false, false, false, false};
    while (!(fields = trim(fields)).empty()) {
        const std::size_t end = fields.find(' ');
        const std::string_view field = fields.substr(0, end);
        fields.remove_prefix(end == std::string_view::npos ? fields.size() : end);
        const std::size_t eq = field.find('=');
        const std::string_view key = field.substr(0, eq);
        const std::string_view value =
            eq == std::string_view::npos ? std::string_view{} : field.substr(eq + 1);
        const auto bad = [&] { return make_error(where, "not a PSI line: " + quote(line)); };
        if (key == "total") {
            auto total = parse_u64(value, where);
            if (!total) return bad();
            out.total_usec = *total;
            seen[3] = true;
            continue;
        }
        auto number = parse_double(value, where);
        if (!number) return bad();
        if (key == "avg10") {
            out.avg10 = *number;
            seen[0] = true;
        } else if (key == "avg60") {
            out.avg60 = *number;
            seen[1] = true;
        } else if (key == "avg300") {
            out.avg300 = *number;
            seen[2] = true;
        }
    }
    if (!(seen[0] && seen[1] && seen[2] && seen[3])) {
        return make_error(where, "PSI line lacks avg10, avg60, avg300 or total: " + quote(line));
    }
    return out;
}

}  // namespace

Result<PressureResource> parse_pressure(std::string_view content, const std::string& where) {
    PressureResource out;
    std::string_view rest = content;
    while (!rest.empty()) {
        const std::size_t nl = rest.find('\n');
        const std::string_view line = trim(rest.substr(0, nl));
        rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
        if (line.empty()) continue;
        const std::size_t space = line.find(' ');
        const std::string_view kind = line.substr(0, space);
        if (kind != "some" && kind != "full") {
            return make_error(where,
                              "not a PSI line (\"some ...\" or \"full ...\"): " + quote(line));
        }
        auto parsed = parse_pressure_line(
            space == std::string_view::npos ? std::string_view{} : line.substr(space), line, where);
        if (!parsed) return parsed.error();
        (kind == "some" ? out.some : out.full) = *parsed;
    }
    if (!out.some) return make_error(where, "no \"some\" line in " + quote(content));
    return out;
}

Result<std::optional<PressureResource>> read_pressure_file(const std::string& path) {
    return read_parsed<PressureResource>(path, parse_pressure);
}

PressureInfo probe_pressure(const std::string& proc_root,
                            const std::optional<ControllerDir>& unified,
                            std::vector<std::string>& problems) {
    struct Resource {
        const char* name;
        std::optional<PressureResource> PressureInfo::*slot;
    };
    constexpr std::array<Resource, 3> resources = {{{"cpu", &PressureInfo::cpu},
                                                    {"memory", &PressureInfo::memory},
                                                    {"io", &PressureInfo::io}}};
    // Reads every resource from `path_of(name)`; true when any file was there.
    const auto read_all = [&](PressureInfo& info, auto path_of) {
        bool any = false;
        for (const auto& r : resources) {
            auto value = read_pressure_file(path_of(r.name));
            if (!value) {
                problems.push_back(value.error().to_string());
                any = true;
                continue;
            }
            if (value->has_value()) any = true;
            info.*(r.slot) = *value;
        }
        return any;
    };

    PressureInfo info;
    if (unified && read_all(info, [&](const char* name) {
            return join_path(unified->dir, std::string(name) + ".pressure");
        })) {
        info.source = "cgroup " + unified->cgroup_path;
        return info;
    }
    info = PressureInfo{};
    if (read_all(info, [&](const char* name) {
            return join_path(proc_root, std::string("pressure/") + name);
        })) {
        info.source = "/proc/pressure";
    }
    return info;
}

}  // namespace tuner::probes
