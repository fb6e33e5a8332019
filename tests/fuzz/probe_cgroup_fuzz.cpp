// Fuzz target: cgroup discovery (probes/cgroup_discovery.hpp). The input is a /proc/<pid>/cgroup
// file and a mountinfo file, separated by a NUL byte. Both are parsed; when both parse, the
// layout is resolved and every controller's hierarchy walked up to its mount. What must hold: no
// crash; a resolved controller directory lies under its mount point; the walk starts at the
// controller's own directory, never leaves the mount point, and ends after at most one level
// per character of the path.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "probes/cgroup_discovery.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using namespace tuner::probes;

void check(const std::optional<ControllerDir>& controller) {
    if (!controller) return;
    const ControllerDir& c = *controller;
    FUZZ_CHECK(c.dir.compare(0, c.mount_dir.size(), c.mount_dir) == 0,
               "controller directory " + c.dir + " outside its mount " + c.mount_dir);
    const auto levels = hierarchy_levels(c);
    FUZZ_CHECK(!levels.empty() && levels.front().dir == c.dir &&
                   levels.front().cgroup_path == c.cgroup_path,
               "the walk does not start at the controller's directory");
    FUZZ_CHECK(levels.size() <= c.dir.size() + 1, "the walk up the hierarchy does not end");
    for (const auto& level : levels) {
        FUZZ_CHECK(level.dir.compare(0, c.mount_dir.size(), c.mount_dir) == 0,
                   "the walk left the mount: " + level.dir + " above " + c.mount_dir);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto parts = tuner::fuzz::split_parts(tuner::fuzz::as_text(data, size), 2);
    const auto memberships = parse_proc_cgroup(parts[0], "cgroup");
    const auto mounts =
        parse_mountinfo(parts.size() > 1 ? parts[1] : std::string_view{}, "mountinfo");
    if (!memberships || !mounts) return 0;
    const CgroupLayout layout = resolve_layout(*memberships, *mounts, "/fuzz-root");
    for (const auto* controller :
         {&layout.cpu, &layout.cpuacct, &layout.cpuset, &layout.memory, &layout.unified}) {
        check(*controller);
    }
    (void)to_cgroup_info(layout);
    return 0;
}
