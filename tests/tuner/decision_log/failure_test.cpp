// The decision log when the database fails: locked by another connection, file deleted,
// directory removed, read-only (as root too, without its permission override), queue full. Each
// time the caller goes on, errors are counted, and once the database is back every decision is
// written, in order.
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

// Records `count` decisions, each with an outcome; returns them as the log should store them.
std::vector<Decision> record_with_outcomes(DecisionLog& log, int count, int first_value) {
    std::vector<Decision> recorded;
    for (int i = 0; i < count; ++i) {
        Decision d = workers_decision(first_value + i, first_value + i + 1);
        d.id = log.record(d);
        d.time = log.recent(1).front().time;
        log.record_outcome(d.id, Outcome::applied);
        d.outcome = Outcome::applied;
        recorded.push_back(d);
    }
    return recorded;
}

void expect_all_stored(const std::string& path, const std::vector<Decision>& expected) {
    const auto stored = stored_oldest_first(path);
    ASSERT_EQ(ids_of(stored), ids_of(expected));
    for (std::size_t i = 0; i < expected.size(); ++i) expect_same_decision(stored[i], expected[i]);
}

bool failing(const DecisionLog& log) {
    const auto stats = log.stats();
    return !stats.healthy && stats.errors_total > 0;
}

bool recovered(DecisionLog& log) {
    log.flush(20s);
    const auto stats = log.stats();
    return stats.healthy && stats.queued == 0;
}

TEST(DecisionLogFailure, LockedDatabaseKeepsDecisionsAndWritesThemWhenReleased) {
    ScratchDir dir;
    SettableClock clock(fixed_start());
    const std::string path = dir.file("tunerd.db");
    DecisionLog log(options_for(path, clock));
    auto expected = record_with_outcomes(log, 2, 1);
    log.flush(20s);

    RawDatabase other(path);
    ASSERT_TRUE(other.exec("BEGIN EXCLUSIVE; INSERT INTO runs VALUES (999, 'x', 'x', 'x', 'x')"));
    auto during = record_with_outcomes(log, 3, 10);
    expected.insert(expected.end(), during.begin(), during.end());
    ASSERT_TRUE(eventually([&] { return failing(log); }));
    EXPECT_NE(log.stats().last_error.find("SQLITE_BUSY"), std::string::npos)
        << log.stats().last_error;
    EXPECT_GT(log.stats().queued, 0u);
    auto from_memory = log.query(std::nullopt, 100);
    ASSERT_TRUE(from_memory.ok());
    EXPECT_EQ(from_memory->size(), 5u);

    ASSERT_TRUE(other.exec("ROLLBACK"));
    ASSERT_TRUE(recovered(log)) << log.stats().last_error;
    expect_all_stored(path, expected);
}

TEST(DecisionLogFailure, DeletedFileIsRecreatedWithTheDecisionsInMemory) {
    ScratchDir dir;
    SettableClock clock(fixed_start());
    const std::string path = dir.file("tunerd.db");
    DecisionLog log(options_for(path, clock));
    log.start_run("0.1.0", "h", "");
    auto expected = record_with_outcomes(log, 3, 1);
    log.flush(20s);
    ASSERT_EQ(::unlink(path.c_str()), 0);

    auto after = record_with_outcomes(log, 2, 10);
    expected.insert(expected.end(), after.begin(), after.end());
    ASSERT_TRUE(recovered(log)) << log.stats().last_error;
    EXPECT_GE(log.stats().errors_total, 1u);
    EXPECT_NE(log.stats().last_error.find("deleted or replaced"), std::string::npos);
    expect_all_stored(path, expected);
    RawDatabase raw(path);
    EXPECT_EQ(raw.integer("SELECT count(*) FROM runs"), 1);
}

TEST(DecisionLogFailure, RemovedDirectoryRecoversWhenItComesBack) {
    ScratchDir dir;
    SettableClock clock(fixed_start());
    const fs::path state = fs::path(dir.path()) / "state";
    fs::create_directory(state);
    const std::string path = (state / "tunerd.db").string();
    DecisionLog log(options_for(path, clock));
    auto expected = record_with_outcomes(log, 2, 1);
    log.flush(20s);
    fs::remove_all(state);

    auto during = record_with_outcomes(log, 3, 10);
    expected.insert(expected.end(), during.begin(), during.end());
    ASSERT_TRUE(eventually([&] {
        return failing(log) && log.stats().last_error.find("does not exist") != std::string::npos;
    })) << log.stats().last_error;
    EXPECT_NE(log.stats().last_error.find(path), std::string::npos) << log.stats().last_error;
    EXPECT_EQ(log.recent(10).size(), 5u);

    fs::create_directory(state);
    ASSERT_TRUE(recovered(log)) << log.stats().last_error;
    expect_all_stored(path, expected);
}

// Root ignores permission bits by its capabilities CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: as
// root, the test takes them out of the calling thread's effective set while it runs (the decision
// log's writer thread, started meanwhile, inherits that), so permission bits stop it as they stop
// a service user. The permitted set keeps them: the destructor raises them again.
class WithoutPermissionOverride {
public:
    WithoutPermissionOverride() {
        if (::geteuid() != 0) return;
        if (!get(saved_)) return;
        __user_cap_data_struct lowered[2] = {saved_[0], saved_[1]};
        constexpr unsigned kDropped =
            (1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH) | (1u << CAP_FOWNER);
        lowered[0].effective &= ~kDropped;
        active_ = set(lowered);
    }
    ~WithoutPermissionOverride() {
        if (active_) set(saved_);
    }
    WithoutPermissionOverride(const WithoutPermissionOverride&) = delete;
    WithoutPermissionOverride& operator=(const WithoutPermissionOverride&) = delete;

    // True when permission bits bind this thread: not root, or root without the override.
    [[nodiscard]] bool binds() const { return ::geteuid() != 0 || active_; }

private:
    static bool get(__user_cap_data_struct (&data)[2]) {
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        return ::syscall(SYS_capget, &header, data) == 0;
    }
    static bool set(__user_cap_data_struct (&data)[2]) {
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        return ::syscall(SYS_capset, &header, data) == 0;
    }

    __user_cap_data_struct saved_[2] = {};
    bool active_ = false;
};

#define PERMISSIONS_BIND()                                                            \
    const WithoutPermissionOverride permissions_bind;                                 \
    ASSERT_TRUE(permissions_bind.binds())                                             \
        << "root could not drop CAP_DAC_OVERRIDE for the test: " << std::strerror(errno)

TEST(DecisionLogFailure, ReadOnlyDirectoryRecoversWhenWritable) {
    PERMISSIONS_BIND();
    ScratchDir dir;
    SettableClock clock(fixed_start());
    const std::string path = dir.file("tunerd.db");
    ASSERT_EQ(::chmod(dir.path().c_str(), 0555), 0);
    DecisionLog log(options_for(path, clock));
    auto expected = record_with_outcomes(log, 3, 1);
    ASSERT_TRUE(eventually([&] { return failing(log); }));
    EXPECT_NE(log.stats().last_error.find(path), std::string::npos) << log.stats().last_error;
    EXPECT_NE(log.stats().last_error.find("is not writable (Permission denied)"), std::string::npos)
        << log.stats().last_error;

    ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
    ASSERT_TRUE(recovered(log)) << log.stats().last_error;
    expect_all_stored(path, expected);
}

TEST(DecisionLogFailure, ReadOnlyFileRecoversWhenWritable) {
    PERMISSIONS_BIND();
    ScratchDir dir;
    SettableClock clock(fixed_start());
    const std::string path = dir.file("tunerd.db");
    std::vector<Decision> expected;
    {
        DecisionLog first(options_for(path, clock));
        expected = record_with_outcomes(first, 1, 1);
    }
    ASSERT_EQ(::chmod(path.c_str(), 0444), 0);
    DecisionLog log(options_for(path, clock));
    auto during = record_with_outcomes(log, 2, 10);
    expected.insert(expected.end(), during.begin(), during.end());
    ASSERT_TRUE(eventually([&] { return failing(log); }));
    EXPECT_NE(log.stats().last_error.find("read-only"), std::string::npos)
        << log.stats().last_error;

    ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
    ASSERT_TRUE(recovered(log)) << log.stats().last_error;
    expect_all_stored(path, expected);
}

TEST(DecisionLogFailure, ReaderOpensAStoppedLogInADirectoryItCannotWrite) {
    PERMISSIONS_BIND();
    ScratchDir dir;
    SettableClock clock(fixed_start());
    const std::string path = dir.file("tunerd.db");
    std::uint64_t id = 0;
    {
        DecisionLog log(options_for(path, clock));
        id = log.record(workers_decision(1, 2));
    }
    ASSERT_FALSE(fs::exists(path + "-shm"));
    ASSERT_EQ(::chmod(dir.path().c_str(), 0555), 0);
    auto stored = read_decisions(path, std::nullopt, 10);
    ASSERT_TRUE(stored.ok()) << stored.error().to_string();
    EXPECT_EQ(ids_of(*stored), std::vector<std::uint64_t>{id});
}

TEST(DecisionLogFailure, FullQueueDropsSamplesFirstAndMemoryStillHoldsEveryDecision) {
    ScratchDir dir;
    SettableClock clock(fixed_start());
    const fs::path state = fs::path(dir.path()) / "not-yet";
    const std::string path = (state / "tunerd.db").string();
    auto options = options_for(path, clock);
    options.queue_capacity = 10;
    options.retry_interval = std::chrono::hours(1);  // no retry during the test: a stable queue
    auto log = std::make_unique<DecisionLog>(options);
    ASSERT_FALSE(log->stats().healthy);

    std::vector<Decision> expected = record_with_outcomes(*log, 4, 1);
    for (int i = 0; i < 10; ++i) log->record_sample(Sample{});
    EXPECT_EQ(log->stats().dropped_total, 4u);  // four samples made room for the last ones
    EXPECT_EQ(log->stats().queued, 10u);

    auto more = record_with_outcomes(*log, 8, 10);
    expected.insert(expected.end(), more.begin(), more.end());
    // Six samples went first, then the two oldest decisions: only decisions were left.
    EXPECT_EQ(log->stats().dropped_total, 12u);
    EXPECT_EQ(log->stats().queued, 10u);
    EXPECT_EQ(log->recent(100).size(), 12u);

    // The directory appears; the destructor's drain opens the file once more (not waiting for
    // retry_interval) and writes the decisions memory holds, the two dropped ones included.
    fs::create_directory(state);
    log.reset();
    expect_all_stored(path, expected);
    RawDatabase raw(path);
    EXPECT_EQ(raw.integer("SELECT count(*) FROM samples"), 0);
}

}  // namespace
}  // namespace tuner
