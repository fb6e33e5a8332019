// Cgroup discovery: memberships and mounts in, where each controller's files are out.
// Mount roots matter in containers: a mount whose root is "/docker/abc" shows that cgroup at its
// mount point, so "/docker/abc/x" lives at <mount point>/x (proc(5), "mountinfo").
#include "probes/cgroup_discovery.hpp"

#include <algorithm>
#include <array>

#include "probes/kernel_file.hpp"
#include "probes/text_parse.hpp"

namespace tuner::probes {
namespace {

std::vector<std::string_view> split(std::string_view text, char sep) {
    std::vector<std::string_view> parts;
    while (true) {
        const std::size_t at = text.find(sep);
        parts.push_back(text.substr(0, at));
        if (at == std::string_view::npos) return parts;
        text.remove_prefix(at + 1);
    }
}

std::vector<std::string_view> lines_of(std::string_view content) {
    std::vector<std::string_view> lines;
    for (std::string_view line : split(content, '\n')) {
        if (!trim(line).empty()) lines.push_back(line);
    }
    return lines;
}

// mountinfo escapes space, tab, newline and backslash as \ooo octal.
std::string unescape_octal(std::string_view text) {
    const auto is_octal = [](char c) { return c >= '0' && c <= '7'; };
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 3 < text.size() && is_octal(text[i + 1]) &&
            is_octal(text[i + 2]) && is_octal(text[i + 3])) {
            out += static_cast<char>((text[i + 1] - '0') * 64 + (text[i + 2] - '0') * 8 +
                                     (text[i + 3] - '0'));
            i += 3;
            continue;
        }
        out += text[i];
    }
    return out;
}

bool contains(const std::vector<std::string>& list, std::string_view item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

// The cgroup `path` as seen through `mount`, or nothing when the mount does not show it.
std::optional<ControllerDir> map_through_mount(int version, const std::string& path,
                                               const CgroupMount& mount,
                                               const std::string& fs_root) {
    std::string below;
    if (mount.root == "/") {
        below = path == "/" ? "" : path;
    } else if (path == mount.root) {
        below = "";
    } else if (path.size() > mount.root.size() &&
               path.compare(0, mount.root.size(), mount.root) == 0 &&
               path[mount.root.size()] == '/') {
        below = path.substr(mount.root.size());
    } else {
        return std::nullopt;
    }
    ControllerDir c;
    c.version = version;
    c.cgroup_path = path;
    c.mount_dir = join_path(fs_root, mount.mount_point);
    c.dir = below.empty() ? c.mount_dir : join_path(c.mount_dir, below);
    c.mount_root = mount.root;
    return c;
}

// Places `path` through the first mount that shows it; records a problem when none does.
std::optional<ControllerDir> place(int version, const std::string& path,
                                   const std::vector<const CgroupMount*>& candidates,
                                   const std::string& fs_root, std::string_view what,
                                   std::vector<Error>& problems) {
    for (const CgroupMount* mount : candidates) {
        if (auto dir = map_through_mount(version, path, *mount, fs_root)) return dir;
    }
    if (!candidates.empty()) {
        problems.push_back(make_error(
            std::string(what), "cgroup " + quote(path) + " is outside every mount root (first: " +
                                   quote(candidates.front()->root) + " at " +
                                   candidates.front()->mount_point + ")"));
    }
    return std::nullopt;
}

}  // namespace

Result<std::vector<CgroupMembership>> parse_proc_cgroup(std::string_view content,
                                                        const std::string& where) {
    std::vector<CgroupMembership> out;
    for (std::string_view line : lines_of(content)) {
        const std::size_t first = line.find(':');
        const std::size_t second =
            first == std::string_view::npos ? first : line.find(':', first + 1);
        if (second == std::string_view::npos) {
            return make_error(where, "not \"id:controllers:path\": " + quote(line));
        }
        auto id = parse_u64(line.substr(0, first), where);
        const std::string_view path = trim(line.substr(second + 1));
        if (!id || path.empty() || path.front() != '/') {
            return make_error(where, "not \"id:controllers:path\": " + quote(line));
        }
        CgroupMembership m;
        m.hierarchy_id = static_cast<unsigned>(*id);
        const std::string_view controllers = line.substr(first + 1, second - first - 1);
        if (!controllers.empty()) {
            for (std::string_view c : split(controllers, ',')) m.controllers.emplace_back(c);
        }
        m.path = std::string(path);
        out.push_back(std::move(m));
    }
    if (out.empty()) return make_error(where, "empty file, expected lines like \"0::/path\"");
    return out;
}

Result<std::vector<CgroupMembership>> read_proc_cgroup(const std::string& proc_root, pid_t pid) {
    const std::string path = join_path(proc_root, std::to_string(pid) + "/cgroup");
    auto content = read_optional_file(path);
    if (!content) return content.error();
    if (!content->has_value()) return make_error(path, "no such file: is the process running?");
    return parse_proc_cgroup(**content, path);
}

Result<std::vector<CgroupMount>> parse_mountinfo(std::string_view content,
                                                 const std::string& where) {
    std::vector<CgroupMount> out;
    for (std::string_view line : lines_of(content)) {
        const std::vector<std::string_view> fields = split(trim(line), ' ');
        // "id parent major:minor root mount_point options [optional...] - fstype source super"
        const auto dash = std::find(fields.begin(), fields.end(), "-");
        const auto before = dash - fields.begin();
        if (dash == fields.end() || before < 6 || fields.end() - dash < 4) {
            return make_error(where, "not a mountinfo line: " + quote(line));
        }
        const std::string_view fstype = *(dash + 1);
        if (fstype != "cgroup" && fstype != "cgroup2") continue;
        CgroupMount m;
        m.v2 = fstype == "cgroup2";
        m.root = unescape_octal(fields[3]);
        m.mount_point = unescape_octal(fields[4]);
        if (!m.v2) {
            for (std::string_view option : split(*(dash + 3), ',')) {
                m.controllers.emplace_back(option);
            }
        }
        out.push_back(std::move(m));
    }
    return out;
}

Result<std::vector<CgroupMount>> read_cgroup_mounts(const std::string& path) {
    auto content = read_optional_file(path);
    if (!content) return content.error();
    if (!content->has_value()) return make_error(path, "no such file");
    return parse_mountinfo(**content, path);
}

std::vector<HierarchyLevel> hierarchy_levels(const ControllerDir& controller) {
    std::vector<HierarchyLevel> levels;
    std::string dir = controller.dir;
    std::string path = controller.cgroup_path;
    levels.push_back({dir, path});
    while (dir.size() > controller.mount_dir.size()) {
        const std::size_t dir_slash = dir.rfind('/');
        const std::size_t path_slash = path.rfind('/');
        if (dir_slash == std::string::npos || path_slash == std::string::npos) break;
        dir.resize(std::max(dir_slash, controller.mount_dir.size()));
        path.resize(path_slash == 0 ? 1 : path_slash);
        levels.push_back({dir, path});
    }
    return levels;
}

CgroupLayout resolve_layout(const std::vector<CgroupMembership>& memberships,
                            const std::vector<CgroupMount>& mounts, const std::string& fs_root) {
    CgroupLayout layout;
    std::vector<const CgroupMount*> v2_mounts;
    for (const auto& m : mounts) {
        if (m.v2) v2_mounts.push_back(&m);
    }
    for (const auto& member : memberships) {
        if (member.hierarchy_id == 0 && member.controllers.empty()) {
            layout.unified = place(2, member.path, v2_mounts, fs_root, "cgroup2", layout.problems);
        }
    }

    bool any_v1 = false;
    const std::array<std::pair<const char*, std::optional<ControllerDir>*>, 4> wanted = {{
        {"cpu", &layout.cpu},
        {"cpuacct", &layout.cpuacct},
        {"cpuset", &layout.cpuset},
        {"memory", &layout.memory},
    }};
    for (const auto& [controller, slot] : wanted) {
        for (const auto& member : memberships) {
            if (!contains(member.controllers, controller)) continue;
            std::vector<const CgroupMount*> candidates;
            for (const auto& m : mounts) {
                if (!m.v2 && contains(m.controllers, controller)) candidates.push_back(&m);
            }
            *slot = place(1, member.path, candidates, fs_root, controller, layout.problems);
            if (*slot) any_v1 = true;
            break;
        }
        // A controller no v1 hierarchy holds is v2's (or not enabled: then its files are
        // simply absent, which reads as "no limit").
        if (!*slot && layout.unified) *slot = layout.unified;
    }
    if (any_v1)
        layout.version = layout.unified ? CgroupVersion::hybrid : CgroupVersion::v1;
    else if (layout.unified)
        layout.version = CgroupVersion::v2;
    return layout;
}

CgroupInfo to_cgroup_info(const CgroupLayout& layout) {
    CgroupInfo info;
    info.version = layout.version;
    if (layout.cpu) info.cpu_path = layout.cpu->cgroup_path;
    if (layout.memory) info.memory_path = layout.memory->cgroup_path;
    if (layout.version == CgroupVersion::v2 && layout.unified) {
        info.path = layout.unified->cgroup_path;
    } else {
        info.path = !info.memory_path.empty() ? info.memory_path : info.cpu_path;
    }
    return info;
}

}  // namespace tuner::probes
