// The workers' socket directory: owner-only wherever it is, a random mkdtemp name when the usual
// places are too long for a socket address, and a clear error (naming the directory) for what
// cannot be made safe: a symbolic link, a file, another user's directory, a missing temp root.
#include "tuner/daemon/socket_dir.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/support/temp_dir.hpp"

namespace tuner {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

const char* no_environment(const char*) {
    return nullptr;
}

struct stat stat_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st;
}

TEST(SocketDirectory, StateRunIsCreatedOwnerOnlyAndAnOpenOneIsNarrowed) {
    TempDir dir;
    auto made = prepare_socket_directory(dir.path(), no_environment);
    ASSERT_TRUE(made.ok()) << made.error().to_string();
    EXPECT_EQ(made->path, dir.path() + "/run");
    EXPECT_FALSE(made->temporary);
    EXPECT_TRUE(S_ISDIR(stat_of(made->path).st_mode));
    EXPECT_EQ(stat_of(made->path).st_mode & 07777, 0700u);

    ASSERT_EQ(::chmod(made->path.c_str(), 0777), 0);
    made = prepare_socket_directory(dir.path(), no_environment);
    ASSERT_TRUE(made.ok()) << made.error().to_string();
    EXPECT_EQ(stat_of(made->path).st_mode & 07777, 0700u);
}

TEST(SocketDirectory, RuntimeDirectoryComesFirst) {
    TempDir dir;
    const std::string runtime = dir.path() + "/rt";
    const std::string listed = runtime + ":" + dir.path() + "/second";
    const auto made = prepare_socket_directory(dir.path() + "/state", [&](const char* name) {
        return std::string(name) == "RUNTIME_DIRECTORY" ? listed.c_str() : nullptr;
    });
    ASSERT_TRUE(made.ok()) << made.error().to_string();
    EXPECT_EQ(made->path, runtime);
    EXPECT_EQ(stat_of(runtime).st_mode & 07777, 0700u);
    EXPECT_FALSE(fs::exists(dir.path() + "/state/run"));
}

TEST(SocketDirectory, TooLongForASocketFallsBackToAFreshRandomDirectory) {
    // The old fallback was /tmp/tunerd-<uid>-<pid>: another local user could create it first.
    TempDir root;
    const std::string long_state_dir = root.path() + "/" + std::string(100, 's');
    const auto first = prepare_socket_directory(long_state_dir, no_environment, root.path());
    const auto second = prepare_socket_directory(long_state_dir, no_environment, root.path());
    ASSERT_TRUE(first.ok()) << first.error().to_string();
    ASSERT_TRUE(second.ok()) << second.error().to_string();
    EXPECT_NE(first->path, second->path);
    for (const auto& made : {*first, *second}) {
        EXPECT_TRUE(made.temporary);
        EXPECT_EQ(made.path.rfind(root.path() + "/tunerd-", 0), 0u) << made.path;
        EXPECT_EQ(made.path.find(std::to_string(::getpid())), std::string::npos) << made.path;
        EXPECT_TRUE(S_ISDIR(stat_of(made.path).st_mode));
        EXPECT_EQ(stat_of(made.path).st_mode & 07777, 0700u);
    }
}

TEST(SocketDirectory, AMissingTempRootIsAnErrorNamingIt) {
    TempDir root;
    const std::string missing = root.path() + "/absent";
    const auto made = prepare_socket_directory(root.path() + "/" + std::string(100, 's'),
                                               no_environment, missing);
    ASSERT_FALSE(made.ok());
    EXPECT_EQ(made.error().where, missing);
    EXPECT_NE(made.error().what.find("mkdtemp"), std::string::npos) << made.error().to_string();
    EXPECT_EQ(made.error().code, ENOENT);
}

TEST(SocketDirectory, ASymbolicLinkOrAFileInItsPlaceIsRefused) {
    TempDir dir;
    fs::create_directory(dir.path() + "/elsewhere");
    fs::create_directory_symlink(dir.path() + "/elsewhere", dir.path() + "/run");
    auto made = prepare_socket_directory(dir.path(), no_environment);
    ASSERT_FALSE(made.ok());
    EXPECT_EQ(made.error().where, dir.path() + "/run");
    EXPECT_NE(made.error().what.find("symbolic link"), std::string::npos)
        << made.error().to_string();

    TempDir other;
    std::ofstream(other.path() + "/run") << "not a directory";
    made = prepare_socket_directory(other.path(), no_environment);
    ASSERT_FALSE(made.ok());
    EXPECT_EQ(made.error().where, other.path() + "/run");
    EXPECT_EQ(made.error().code, ENOTDIR) << made.error().to_string();
}

TEST(SocketDirectory, ADirectoryAnotherUserOwnsIsRefused) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a directory to another user";
    TempDir dir;
    const std::string run = dir.path() + "/run";
    ASSERT_EQ(::mkdir(run.c_str(), 0700), 0);
    ASSERT_EQ(::chown(run.c_str(), 65534, 65534), 0);
    const auto made = prepare_socket_directory(dir.path(), no_environment);
    ASSERT_FALSE(made.ok());
    EXPECT_EQ(made.error().where, run);
    EXPECT_NE(made.error().what.find("owned by uid 65534"), std::string::npos)
        << made.error().to_string();
}

}  // namespace
}  // namespace tuner
