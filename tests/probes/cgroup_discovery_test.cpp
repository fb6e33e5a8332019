// Cgroup discovery: /proc/<pid>/cgroup, mountinfo, mount-root mapping and classification.
#include "probes/cgroup_discovery.hpp"

#include <algorithm>

#include <gtest/gtest.h>

#include "tests/probes/probe_test_support.hpp"

namespace tuner::probes {
namespace {

using testing::fixture;

TEST(ProcCgroup, ParsesV1AndV2Lines) {
    auto m = parse_proc_cgroup("4:cpu,cpuacct:/docker/a\n1:name=systemd:/x\n0::/app.slice\n", "f");
    ASSERT_TRUE(m.ok()) << m.error().to_string();
    ASSERT_EQ(m->size(), 3u);
    EXPECT_EQ((*m)[0].hierarchy_id, 4u);
    EXPECT_EQ((*m)[0].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
    EXPECT_EQ((*m)[0].path, "/docker/a");
    EXPECT_TRUE((*m)[2].controllers.empty());
    EXPECT_EQ((*m)[2].path, "/app.slice");
}

TEST(ProcCgroup, KeepsColonsInsidePath) {
    auto m = parse_proc_cgroup("0::/a:b\n", "f");
    ASSERT_TRUE(m.ok());
    EXPECT_EQ((*m)[0].path, "/a:b");
}

TEST(ProcCgroup, EmptyFileIsError) {
    auto m = parse_proc_cgroup("", "/proc/1/cgroup");
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().where, "/proc/1/cgroup");
}

TEST(ProcCgroup, MalformedLineIsQuoted) {
    auto m = parse_proc_cgroup("garbage\n", "f");
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().what.find("\"garbage\""), std::string::npos) << m.error().what;
}

TEST(ProcCgroup, MissingProcessIsError) {
    auto m = read_proc_cgroup(fixture("cgroup2-limited/proc"), 4242);
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().where.find("4242/cgroup"), std::string::npos);
}

TEST(Mountinfo, KeepsOnlyCgroupMountsWithRootsAndControllers) {
    const std::string content =
        "23 28 0:22 / /proc rw - proc proc rw\n"
        "705 700 0:30 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid master:16 - cgroup cgroup "
        "rw,cpu,cpuacct\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    auto mounts = parse_mountinfo(content, "f");
    ASSERT_TRUE(mounts.ok()) << mounts.error().to_string();
    ASSERT_EQ(mounts->size(), 2u);
    EXPECT_FALSE((*mounts)[0].v2);
    EXPECT_EQ((*mounts)[0].root, "/docker/abc");
    EXPECT_EQ((*mounts)[0].mount_point, "/sys/fs/cgroup/cpu,cpuacct");
    EXPECT_NE(std::find((*mounts)[0].controllers.begin(), (*mounts)[0].controllers.end(), "cpu"),
              (*mounts)[0].controllers.end());
    EXPECT_TRUE((*mounts)[1].v2);
}

TEST(Mountinfo, DecodesOctalEscapesInPaths) {
    auto mounts =
        parse_mountinfo("30 23 0:26 /my\\040pod /sys/fs/cg\\040x rw - cgroup2 cgroup2 rw\n", "f");
    ASSERT_TRUE(mounts.ok());
    EXPECT_EQ((*mounts)[0].root, "/my pod");
    EXPECT_EQ((*mounts)[0].mount_point, "/sys/fs/cg x");
}

TEST(Mountinfo, MalformedLineIsQuoted) {
    auto mounts = parse_mountinfo("30 23 0:26 / /sys/fs/cgroup rw cgroup2\n", "/proc/self/mi");
    ASSERT_FALSE(mounts.ok());
    EXPECT_EQ(mounts.error().where, "/proc/self/mi");
    EXPECT_NE(mounts.error().what.find("cgroup2"), std::string::npos);
}

TEST(Mountinfo, MissingFileIsError) {
    auto mounts = read_cgroup_mounts(fixture("cgroup2-limited/proc/self/no-mountinfo"));
    ASSERT_FALSE(mounts.ok());
    EXPECT_NE(mounts.error().where.find("no-mountinfo"), std::string::npos);
}

TEST(Mountinfo, EmptyFileHasNoMounts) {
    auto mounts = parse_mountinfo("", "f");
    ASSERT_TRUE(mounts.ok());
    EXPECT_TRUE(mounts->empty());
}

TEST(Mountinfo, NoCgroupMountsIsEmptyNotError) {
    auto mounts = parse_mountinfo("23 28 0:22 / /proc rw - proc proc rw\n", "f");
    ASSERT_TRUE(mounts.ok());
    EXPECT_TRUE(mounts->empty());
}

CgroupMount v1_mount(std::string root, std::string point, std::vector<std::string> options) {
    return CgroupMount{false, std::move(root), std::move(point), std::move(options)};
}
CgroupMount v2_mount(std::string root, std::string point) {
    return CgroupMount{true, std::move(root), std::move(point), {}};
}

TEST(CgroupLayout, PureV2PlacesEveryControllerInTheUnifiedCgroup) {
    const auto layout =
        resolve_layout({{0, {}, "/app.slice/web"}}, {v2_mount("/", "/sys/fs/cgroup")}, "/fx");
    EXPECT_EQ(layout.version, CgroupVersion::v2);
    ASSERT_TRUE(layout.memory);
    EXPECT_EQ(layout.memory->dir, "/fx/sys/fs/cgroup/app.slice/web");
    EXPECT_EQ(layout.memory->mount_dir, "/fx/sys/fs/cgroup");
    ASSERT_TRUE(layout.cpu);
    EXPECT_EQ(layout.cpu->version, 2);
}

TEST(CgroupLayout, V1ControllersBesideEmptyCgroup2AreHybrid) {
    const auto layout = resolve_layout({{4, {"memory"}, "/m"}, {1, {"cpu"}, "/"}, {0, {}, "/"}},
                                       {v1_mount("/", "/sys/fs/cgroup/memory", {"rw", "memory"}),
                                        v1_mount("/", "/sys/fs/cgroup/cpu", {"rw", "cpu"}),
                                        v2_mount("/", "/sys/fs/cgroup/unified")},
                                       "");
    EXPECT_EQ(layout.version, CgroupVersion::hybrid);
    ASSERT_TRUE(layout.memory && layout.cpu && layout.unified);
    EXPECT_EQ(layout.memory->version, 1);
    EXPECT_EQ(layout.memory->dir, "/sys/fs/cgroup/memory/m");
    EXPECT_EQ(layout.cpu->dir, "/sys/fs/cgroup/cpu");
    EXPECT_EQ(layout.unified->dir, "/sys/fs/cgroup/unified");
    // cpuacct is on no v1 hierarchy here: its counters come from the v2 cgroup.
    ASSERT_TRUE(layout.cpuacct);
    EXPECT_EQ(layout.cpuacct->version, 2);
}

TEST(CgroupLayout, NamedV1HierarchyAloneIsNotACgroupSetup) {
    const auto layout =
        resolve_layout({{1, {"name=systemd"}, "/"}},
                       {v1_mount("/", "/sys/fs/cgroup/systemd", {"name=systemd"})}, "");
    EXPECT_EQ(layout.version, CgroupVersion::none);
    EXPECT_FALSE(layout.cpu);
    EXPECT_FALSE(layout.memory);
}

TEST(CgroupLayout, MapsPathThroughContainerMountRoot) {
    const auto layout = resolve_layout({{0, {}, "/kubepods/pod1/app"}},
                                       {v2_mount("/kubepods/pod1", "/sys/fs/cgroup")}, "");
    ASSERT_TRUE(layout.memory);
    EXPECT_EQ(layout.memory->dir, "/sys/fs/cgroup/app");
    EXPECT_EQ(layout.memory->cgroup_path, "/kubepods/pod1/app");
    const auto levels = hierarchy_levels(*layout.memory);
    ASSERT_EQ(levels.size(), 2u);
    EXPECT_EQ(levels[1].dir, "/sys/fs/cgroup");
    EXPECT_EQ(levels[1].cgroup_path, "/kubepods/pod1");
}

TEST(CgroupLayout, PathOutsideEveryMountRootIsAProblem) {
    const auto layout =
        resolve_layout({{0, {}, "/elsewhere"}}, {v2_mount("/kubepods/pod1", "/sys/fs/cgroup")}, "");
    EXPECT_EQ(layout.version, CgroupVersion::none);
    ASSERT_EQ(layout.problems.size(), 1u);
    EXPECT_NE(layout.problems[0].what.find("/elsewhere"), std::string::npos);
}

TEST(CgroupLayout, PrefixThatIsNotAPathComponentDoesNotMatch) {
    // "/pod10" is not below "/pod1".
    const auto layout =
        resolve_layout({{0, {}, "/pod10"}}, {v2_mount("/pod1", "/sys/fs/cgroup")}, "");
    EXPECT_FALSE(layout.unified);
}

TEST(CgroupLayout, HierarchyLevelsRunFromLeafToMountRoot) {
    ControllerDir c{2, "/a/b", "/m/a/b", "/m", "/"};
    const auto levels = hierarchy_levels(c);
    ASSERT_EQ(levels.size(), 3u);
    EXPECT_EQ(levels[0].cgroup_path, "/a/b");
    EXPECT_EQ(levels[1].dir, "/m/a");
    EXPECT_EQ(levels[1].cgroup_path, "/a");
    EXPECT_EQ(levels[2].dir, "/m");
    EXPECT_EQ(levels[2].cgroup_path, "/");
}

TEST(CgroupLayout, InfoNamesV1ControllerPaths) {
    const auto layout = resolve_layout(
        {{4, {"memory"}, "/mem"}, {1, {"cpu", "cpuacct"}, "/cpu"}},
        {v1_mount("/", "/c/memory", {"memory"}), v1_mount("/", "/c/cpu", {"cpu", "cpuacct"})}, "");
    const CgroupInfo info = to_cgroup_info(layout);
    EXPECT_EQ(info.version, CgroupVersion::v1);
    EXPECT_EQ(info.path, "/mem");
    EXPECT_EQ(info.memory_path, "/mem");
    EXPECT_EQ(info.cpu_path, "/cpu");
}

}  // namespace
}  // namespace tuner::probes
