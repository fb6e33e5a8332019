// The decision log's schema: migration from a version-0 fixture, the step-by-step mechanism,
// refusal of newer files, reader errors, row upserts, and the RFC 3339 timestamps stored.
#include "tuner/decision_log/schema.hpp"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/tuner/decision_log/test_support.hpp"
#include "tuner/decision_log/store.hpp"
#include "tuner/decision_log/timestamps.hpp"

namespace tuner {
namespace {

using namespace decision_log_testing;
using namespace std::chrono_literals;
using decision_log::schema::Migration;

std::string fixture_sql(const std::string& relative) {
    std::ifstream in(std::string(TUNER_FIXTURES_DIR) + "/" + relative);
    EXPECT_TRUE(in.good()) << "missing fixture " << relative;
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::vector<Migration> with_extra_steps(std::vector<Migration> extra) {
    std::vector<Migration> steps = decision_log::schema::migrations();
    steps.insert(steps.end(), extra.begin(), extra.end());
    return steps;
}

TEST(DecisionLogSchema, MigratesVersionZeroFixtureAndKeepsForeignTables) {
    ScratchDir dir;
    const std::string path = dir.file("tunerd.db");
    {
        RawDatabase raw(path);
        ASSERT_TRUE(raw.exec(fixture_sql("decision-log-v0/tunerd.sql")));
        ASSERT_EQ(raw.integer("PRAGMA user_version"), 0);
    }
    SettableClock clock(fixed_start());
    {
        DecisionLog log(options_for(path, clock));
        EXPECT_TRUE(log.stats().healthy) << log.stats().last_error;
        log.record(workers_decision(1, 2));
        log.flush(20s);
    }
    RawDatabase raw(path);
    EXPECT_EQ(raw.integer("PRAGMA user_version"), decision_log::schema::current_version());
    EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
    EXPECT_EQ(raw.integer("SELECT count(*) FROM decisions"), 1);
    EXPECT_EQ(raw.integer("SELECT count(*) FROM sqlite_master WHERE name = 'decisions_by_time'"),
              1);
    EXPECT_EQ(raw.text("SELECT note FROM operator_notes"),
              "raised memory limit to 2GB after the March incident");
}

TEST(DecisionLogSchema, MigratesTheEmptyFileTouchLeaves) {
    ScratchDir dir;
    const std::string path = dir.file("tunerd.db");
    std::ofstream(path).close();
    SettableClock clock(fixed_start());
    DecisionLog log(options_for(path, clock));
    log.record(workers_decision(1, 2));
    log.flush(20s);
    EXPECT_TRUE(log.stats().healthy) << log.stats().last_error;
    EXPECT_EQ(stored_oldest_first(path).size(), 1u);
}

// The permission bits of a file (0 when it does not exist).
mode_t mode_of(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
}

// Sets the process umask for a scope: tunerd runs under whatever umask it was started with.
class ScopedUmask {
public:
    explicit ScopedUmask(mode_t mask) : previous_(::umask(mask)) {}
    ~ScopedUmask() { ::umask(previous_); }

private:
    mode_t previous_;
};

TEST(DecisionLogSchema, CreatesTheLogAndItsWalAndShmForTheOwnerOnly) {
    // The log holds the config text (workers.env included): under the usual umask 022 it was
    // created 0644, readable by every local user.
    const ScopedUmask umask(022);
    ScratchDir dir;
    const std::string path = dir.file("tunerd.db");
    auto db = decision_log::schema::open_for_writing(path, 100ms);
    ASSERT_TRUE(db.ok()) << db.error().to_string();
    ASSERT_TRUE(decision_log::schema::schema_version(db->get()).ok());  // WAL files exist now
    EXPECT_EQ(mode_of(path), 0600u);
    ASSERT_TRUE(fs::exists(path + "-wal"));
    EXPECT_EQ(mode_of(path + "-wal"), 0600u);
    ASSERT_TRUE(fs::exists(path + "-shm"));
    EXPECT_EQ(mode_of(path + "-shm"), 0600u);
}

TEST(DecisionLogSchema, NarrowsAnOlderLogOpenToOthersToItsOwner) {
    const ScopedUmask umask(022);
    ScratchDir dir;
    const std::string path = dir.file("tunerd.db");
    std::ofstream(path).close();
    std::ofstream(path + "-journal").close();  // a side file a crash left behind
    ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
    ASSERT_EQ(::chmod((path + "-journal").c_str(), 0664), 0);
    auto db = decision_log::schema::open_for_writing(path, 100ms);
    ASSERT_TRUE(db.ok()) << db.error().to_string();
    EXPECT_EQ(mode_of(path), 0600u);
    EXPECT_EQ(mode_of(path + "-wal"), 0600u);
    if (fs::exists(path + "-journal")) {
        EXPECT_EQ(mode_of(path + "-journal"), 0600u);
    }
}

TEST(DecisionLogSchema, RunsOnlyTheStepsAboveTheStoredVersion) {
    ScratchDir dir;
    const std::string path = dir.file("tunerd.db");
    RawDatabase raw(path);
    const Migration add_note{2, "add decisions.note", "ALTER TABLE decisions ADD COLUMN note TEXT"};
    const Migration add_host{3, "add runs.host", "ALTER TABLE runs ADD COLUMN host TEXT"};

    auto first = decision_log::schema::migrate(raw.db, with_extra_steps({add_note}));
    ASSERT_TRUE(first.ok()) << first.error().to_string();
    EXPECT_EQ(raw.integer("PRAGMA user_version"), 2);
    raw.exec(
        "INSERT INTO decisions (id, time, plan_id, subsystem, knob, value_type, rule, "
        "reason, inputs_json, outcome, note) VALUES (1, '2024-05-01T10:00:00.000Z', 1, "
        "'workers', 'workers.count', 'count', 'manual', 'r', '{}', 'applied', 'kept')");

    // Re-running steps 1 and 2 would fail (their tables and column exist): only 3 may run.
    auto second = decision_log::schema::migrate(raw.db, with_extra_steps({add_note, add_host}));
    ASSERT_TRUE(second.ok()) << second.error().to_string();
    EXPECT_EQ(raw.integer("PRAGMA user_version"), 3);
    EXPECT_EQ(raw.integer("SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'host'"), 1);
    EXPECT_EQ(raw.text("SELECT note FROM decisions WHERE id = 1"), "kept");
}

TEST(DecisionLogSchema, FailedStepRollsBackToThePreviousVersion) {
    ScratchDir dir;
    const std::string path = dir.file("tunerd.db");
    RawDatabase raw(path);
    const Migration broken{2, "split the reasons table",
                           "CREATE TABLE reasons (text TEXT); INSERT INTO reasons SELECT x FROM "
                           "no_such_table"};
    auto result = decision_log::schema::migrate(raw.db, with_extra_steps({broken}));
    ASSERT_FALSE(result.ok());
    EXPECT_NE(result.error().what.find("schema version 2 (split the reasons table)"),
              std::string::npos)
        << result.error().what;
    EXPECT_NE(result.error().what.find("no_such_table"), std::string::npos);
    EXPECT_EQ(result.error().where, path);
    EXPECT_EQ(raw.integer("PRAGMA user_version"), 1);
    EXPECT_EQ(raw.integer("SELECT count(*) FROM sqlite_master WHERE name = 'reasons'"), 0);
}

TEST(DecisionLogSchema, RefusesAFileFromANewerBuild) {
    ScratchDir dir;
    const std::string path = dir.file("tunerd.db");
    {
        RawDatabase raw(path);
        raw.exec("PRAGMA user_version = 7");
    }
    SettableClock clock(fixed_start());
    {
        DecisionLog log(options_for(path, clock));
        const auto id = log.record(workers_decision(1, 2));
        const auto stats = log.stats();
        EXPECT_FALSE(stats.healthy);
        EXPECT_NE(stats.last_error.find("schema version 7 was written by a newer tunerd"),
                  std::string::npos)
            << stats.last_error;
        EXPECT_NE(stats.last_error.find(path), std::string::npos);
        ASSERT_EQ(log.recent(1).size(), 1u);
        EXPECT_EQ(log.recent(1).front().id, id);
    }
    auto read = read_decisions(path, std::nullopt, 10);
    ASSERT_FALSE(read.ok());
    EXPECT_NE(read.error().what.find("newer tunerd"), std::string::npos) << read.error().what;
    RawDatabase raw(path);
    EXPECT_EQ(raw.integer("PRAGMA user_version"), 7);
}

TEST(DecisionLogSchema, ReaderNamesTheFileAndWhatIsWrongWithIt) {
    ScratchDir dir;
    auto missing = read_decisions(dir.file("absent.db"), std::nullopt, 10);
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().where, dir.file("absent.db"));
    EXPECT_EQ(missing.error().what, "no such file");

    const std::string text_file = dir.file("notes.txt");
    std::ofstream(text_file) << "this is not a database, just some text long enough to matter\n";
    auto garbage = read_decisions(text_file, std::nullopt, 10);
    ASSERT_FALSE(garbage.ok());
    EXPECT_EQ(garbage.error().where, text_file);
    EXPECT_NE(garbage.error().what.find("SQLITE_NOTADB"), std::string::npos)
        << garbage.error().what;

    const std::string empty_db = dir.file("empty.db");
    {
        RawDatabase raw(empty_db);
        raw.exec("CREATE TABLE t (x)");
    }
    auto foreign = read_decisions(empty_db, std::nullopt, 10);
    ASSERT_FALSE(foreign.ok());
    EXPECT_NE(foreign.error().what.find("not a tunerd decision log"), std::string::npos)
        << foreign.error().what;
}

TEST(DecisionLogStore, PendingRewriteNeverOverwritesAnOutcome) {
    ScratchDir dir;
    RawDatabase raw(dir.file("tunerd.db"));
    ASSERT_TRUE(decision_log::schema::migrate(raw.db).ok());
    Decision d = workers_decision(1, 2, fixed_start());
    d.id = 42;
    d.outcome = Outcome::failed;
    d.error = "spawn failed";
    ASSERT_TRUE(decision_log::store::upsert_decision(raw.db, 0, d).ok());
    Decision stale = d;
    stale.outcome = Outcome::pending;
    stale.error.clear();
    ASSERT_TRUE(decision_log::store::upsert_decision(raw.db, 0, stale).ok());
    EXPECT_EQ(raw.text("SELECT outcome || ': ' || error FROM decisions WHERE id = 42"),
              "failed: spawn failed");
    d.outcome = Outcome::applied;
    d.error.clear();
    ASSERT_TRUE(decision_log::store::upsert_decision(raw.db, 0, d).ok());
    EXPECT_EQ(raw.text("SELECT outcome FROM decisions WHERE id = 42"), "applied");
    EXPECT_EQ(raw.integer("SELECT count(*) FROM decisions"), 1);
}

TEST(DecisionLogTime, FormatsUtcWithMillisecondsThatSortAsText) {
    EXPECT_EQ(format_rfc3339_ms(fixed_start() + 123ms), "2024-05-01T10:00:00.123Z");
    EXPECT_EQ(format_rfc3339_ms(fixed_start() + std::chrono::microseconds(999'999)),
              "2024-05-01T10:00:00.999Z");
    EXPECT_EQ(format_rfc3339_ms(WallClock::time_point{}), "1970-01-01T00:00:00.000Z");
    EXPECT_LT(format_rfc3339_ms(fixed_start() + 9s), format_rfc3339_ms(fixed_start() + 10s));
}

TEST(DecisionLogTime, ParsesFractionsAndOffsets) {
    auto utc = parse_rfc3339("2024-05-01T10:00:00.123Z");
    ASSERT_TRUE(utc.ok()) << utc.error().what;
    EXPECT_EQ(*utc, fixed_start() + 123ms);
    auto offset = parse_rfc3339("2024-05-01T12:30:00+02:30");
    ASSERT_TRUE(offset.ok()) << offset.error().what;
    EXPECT_EQ(*offset, fixed_start());
    auto lower = parse_rfc3339("2024-05-01 10:00:00.5z");
    ASSERT_TRUE(lower.ok());
    EXPECT_EQ(*lower, fixed_start() + 500ms);
    auto west = parse_rfc3339("2024-05-01T05:00:00-05:00");
    ASSERT_TRUE(west.ok());
    EXPECT_EQ(*west, fixed_start());
}

TEST(DecisionLogTime, RejectsWhatIsNotRfc3339AndQuotesIt) {
    for (const char* bad :
         {"", "2024-05-01", "2024-05-01T10:00:00", "2024-13-01T10:00:00Z", "2024-02-30T10:00:00Z",
          "2024-05-01T10:00:00.Z", "2024-05-01T10:00:00Z trailing", "1714557600"}) {
        auto parsed = parse_rfc3339(bad);
        EXPECT_FALSE(parsed.ok()) << bad;
        if (!parsed.ok()) {
            EXPECT_NE(parsed.error().what.find("\"" + std::string(bad) + "\""), std::string::npos);
        }
    }
}

}  // namespace
}  // namespace tuner

namespace tuner {
namespace {

TEST(Rfc3339, RejectsTimesTheSystemClockCannotHold) {
    EXPECT_FALSE(parse_rfc3339("2999-01-01T00:00:00Z").ok());
    EXPECT_FALSE(parse_rfc3339("1969-12-31T23:59:59Z").ok());
    EXPECT_NE(parse_rfc3339("2999-01-01T00:00:00Z").error().what.find("out of range"),
              std::string::npos);
    EXPECT_TRUE(parse_rfc3339("2261-12-31T23:59:59Z").ok());
}

}  // namespace
}  // namespace tuner
