// The decision log on filesystems only root can set up: a tiny tmpfs that fills up, and
// read-only mounts. Skipped with the reason when not root or when mounting is not allowed.
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

#include "tests/tuner/decision_log/test_support.hpp"
#include "tuner/decision_log/log.hpp"

namespace tuner {
namespace {

using namespace decision_log_testing;
using namespace std::chrono_literals;

// A tmpfs on a fresh directory, unmounted (lazily if still busy) and removed at the end.
class TmpfsMount {
public:
    explicit TmpfsMount(const std::string& size) {
        std::string pattern = (fs::temp_directory_path() / "tunerd-dlog-tmpfs-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            problem_ = "mkdtemp failed: " + std::string(std::strerror(errno));
            return;
        }
        dir_ = pattern;
        if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                    ("size=" + size + ",mode=0755").c_str()) != 0) {
            problem_ = "mount -t tmpfs on " + dir_.string() + " failed: " + std::strerror(errno);
            return;
        }
        mounted_ = true;
    }
    ~TmpfsMount() {
        if (mounted_ && ::umount2(dir_.c_str(), 0) != 0) ::umount2(dir_.c_str(), MNT_DETACH);
        if (!dir_.empty()) ::rmdir(dir_.c_str());
    }
    TmpfsMount(const TmpfsMount&) = delete;
    TmpfsMount& operator=(const TmpfsMount&) = delete;

    // Why the mount is not there ("" when it is).
    const std::string& problem() const { return problem_; }
    std::string file(const std::string& name) const { return (dir_ / name).string(); }

    // Remounts with new options, e.g. "size=16m" or read-only.
    ::testing::AssertionResult remount(const std::string& options, bool read_only = false) {
        const unsigned long flags = MS_REMOUNT | MS_NOSUID | MS_NODEV | (read_only ? MS_RDONLY : 0);
        if (::mount("tmpfs", dir_.c_str(), "tmpfs", flags, options.c_str()) != 0) {
            return ::testing::AssertionFailure()
                   << "remount " << options << " failed: " << std::strerror(errno);
        }
        return ::testing::AssertionSuccess();
    }

private:
    fs::path dir_;
    bool mounted_ = false;
    std::string problem_;
};

#define SKIP_UNLESS_MOUNTED(mount)                                                      \
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a tmpfs; not root here"; \
    if (!(mount).problem().empty()) GTEST_SKIP() << "cannot mount: " << (mount).problem();

Decision large_decision(int i) {
    Decision d = workers_decision(i, i + 1);
    d.reason = std::string(2048, 'r') + " #" + std::to_string(i);  // fills 64 KB in ~30 records
    return d;
}

TEST(DecisionLogRoot, FullTmpfsNeverBlocksTheCallerAndWritesTheBacklogOnceGrown) {
    TmpfsMount mount("64k");
    SKIP_UNLESS_MOUNTED(mount);
    SettableClock clock(fixed_start());
    const std::string path = mount.file("tunerd.db");
    DecisionLog log(options_for(path, clock));

    std::vector<Decision> expected;
    auto slowest = std::chrono::steady_clock::duration::zero();
    for (int i = 0; i < 300; ++i) {
        Decision d = large_decision(i);
        const auto before = std::chrono::steady_clock::now();
        d.id = log.record(d);
        log.record_outcome(d.id, Outcome::applied);
        log.record_sample(Sample{});
        slowest = std::max(slowest, std::chrono::steady_clock::now() - before);
        d.time = fixed_start();
        d.outcome = Outcome::applied;
        expected.push_back(d);
    }
    // Loose on purpose (a noisy shared VM): a caller waiting on the disk would take far longer.
    EXPECT_LT(slowest, 100ms);
    ASSERT_TRUE(eventually([&] { return !log.stats().healthy; })) << "the tmpfs never filled";
    const auto failing = log.stats();
    EXPECT_GT(failing.errors_total, 0u);
    EXPECT_NE(failing.last_error.find("SQLITE_FULL"), std::string::npos) << failing.last_error;
    EXPECT_GT(failing.queued, 0u);
    EXPECT_EQ(log.recent(1000).size(), 300u);

    ASSERT_TRUE(mount.remount("size=16m"));
    log.flush(30s);
    const auto after = log.stats();
    ASSERT_TRUE(after.healthy) << after.last_error;
    EXPECT_EQ(after.queued, 0u);
    const auto stored = stored_oldest_first(path);
    ASSERT_EQ(ids_of(stored), ids_of(expected));
    for (std::size_t i = 0; i < expected.size(); ++i) expect_same_decision(stored[i], expected[i]);
}

TEST(DecisionLogRoot, ReadOnlyMountedDirectoryRecoversWhenWritable) {
    TmpfsMount mount("1m");
    SKIP_UNLESS_MOUNTED(mount);
    ASSERT_TRUE(mount.remount("size=1m", true));
    SettableClock clock(fixed_start());
    const std::string path = mount.file("tunerd.db");
    DecisionLog log(options_for(path, clock));
    std::vector<Decision> expected;
    for (int i = 0; i < 3; ++i) {
        Decision d = workers_decision(i, i + 1, fixed_start());
        d.id = log.record(d);
        expected.push_back(d);
    }
    ASSERT_TRUE(eventually([&] { return !log.stats().healthy; }));
    EXPECT_NE(log.stats().last_error.find("not writable (Read-only file system)"),
              std::string::npos)
        << log.stats().last_error;

    ASSERT_TRUE(mount.remount("size=1m"));
    log.flush(30s);
    ASSERT_TRUE(log.stats().healthy) << log.stats().last_error;
    const auto stored = stored_oldest_first(path);
    ASSERT_EQ(ids_of(stored), ids_of(expected));
}

TEST(DecisionLogRoot, ReadOnlyMountedFileRecoversWhenWritable) {
    TmpfsMount mount("1m");
    SKIP_UNLESS_MOUNTED(mount);
    SettableClock clock(fixed_start());
    const std::string path = mount.file("tunerd.db");
    std::vector<std::uint64_t> expected;
    {
        DecisionLog first(options_for(path, clock));
        expected.push_back(first.record(workers_decision(1, 2)));
    }
    ASSERT_TRUE(mount.remount("size=1m", true));
    // tunerctl decisions --db reads it although no -shm file can be created beside it.
    auto readable = read_decisions(path, std::nullopt, 10);
    ASSERT_TRUE(readable.ok()) << readable.error().to_string();
    EXPECT_EQ(ids_of(*readable), expected);

    DecisionLog log(options_for(path, clock));
    expected.push_back(log.record(workers_decision(2, 3)));
    expected.push_back(log.record(workers_decision(3, 4)));
    ASSERT_TRUE(eventually([&] { return !log.stats().healthy; }));
    EXPECT_NE(log.stats().last_error.find("read-only"), std::string::npos)
        << log.stats().last_error;

    ASSERT_TRUE(mount.remount("size=1m"));
    log.flush(30s);
    ASSERT_TRUE(log.stats().healthy) << log.stats().last_error;
    EXPECT_EQ(ids_of(stored_oldest_first(path)), expected);
}

}  // namespace
}  // namespace tuner
