// Finds a process's cgroups: its memberships (/proc/<pid>/cgroup), the cgroup mounts
// (/proc/self/mountinfo), and from both where each controller's files are. Classifies the
// machine as no cgroups, v1, v2, or hybrid (v1 controllers beside a cgroup2 mount).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/result.hpp"
#include "model/snapshot.hpp"

namespace tuner::probes {

// One line of /proc/<pid>/cgroup: "4:memory:/docker/abc" (v1) or "0::/system.slice/x" (v2).
struct CgroupMembership {
    unsigned hierarchy_id = 0;
    std::vector<std::string> controllers;  // empty for v2; "name=systemd" for named v1 ones
    std::string path;
    friend bool operator==(const CgroupMembership&, const CgroupMembership&) = default;
};

Result<std::vector<CgroupMembership>> parse_proc_cgroup(std::string_view content,
                                                        const std::string& where);
// Reads <proc_root>/<pid>/cgroup; a missing file (no such process) is an Error.
Result<std::vector<CgroupMembership>> read_proc_cgroup(const std::string& proc_root, pid_t pid);

// A cgroup or cgroup2 mount from mountinfo. `root` is the cgroup path the mount shows at its
// mount point: "/" on a host, "/docker/abc" in a container that sees only its own subtree.
struct CgroupMount {
    bool v2 = false;
    std::string root;
    std::string mount_point;
    std::vector<std::string> controllers;  // v1: the super options ("rw", "cpu", "name=systemd")
};

Result<std::vector<CgroupMount>> parse_mountinfo(std::string_view content,
                                                 const std::string& where);
// Reads the cgroup mounts of mountinfo at `path` (usually /proc/self/mountinfo).
Result<std::vector<CgroupMount>> read_cgroup_mounts(const std::string& path);

// Where one controller's files are for the process.
struct ControllerDir {
    int version = 0;          // 1 or 2
    std::string cgroup_path;  // as /proc/<pid>/cgroup names it: "/system.slice/x"
    std::string dir;          // its files: <fs_root><mount point><path below the mount root>
    std::string mount_dir;    // the mount point: walks up the hierarchy stop here
    std::string mount_root;   // the cgroup path shown at mount_dir
};

// One level on the way from a cgroup up to its mount root.
struct HierarchyLevel {
    std::string dir;
    std::string cgroup_path;
};
// The process's cgroup first, then each parent, up to and including the mount root.
std::vector<HierarchyLevel> hierarchy_levels(const ControllerDir& controller);

struct CgroupLayout {
    CgroupVersion version = CgroupVersion::none;
    std::optional<ControllerDir> cpu;      // cpu.max / cpu.cfs_quota_us, cpu.stat
    std::optional<ControllerDir> cpuacct;  // v1 cpuacct.usage; v2: cpu.stat usage_usec
    std::optional<ControllerDir> cpuset;
    std::optional<ControllerDir> memory;
    std::optional<ControllerDir> unified;  // the cgroup2 membership (PSI files), also in hybrid
    std::vector<Error> problems;           // controllers that could not be placed
};

// `fs_root` is prefixed to every mount point ("" on a real system, a fixture folder in tests).
CgroupLayout resolve_layout(const std::vector<CgroupMembership>& memberships,
                            const std::vector<CgroupMount>& mounts, const std::string& fs_root);

// The CgroupInfo of the Snapshot: version and the cgroup paths.
CgroupInfo to_cgroup_info(const CgroupLayout& layout);

}  // namespace tuner::probes
