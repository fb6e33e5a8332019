// The decision log with a working database: typed round trips, outcomes, recent() and query(),
// runs and samples, id continuity across restarts, and retention under an injected clock.
#include "tuner/decision_log/log.hpp"

#include <limits>

#include <gtest/gtest.h>

#include "tests/tuner/decision_log/test_support.hpp"

namespace tuner {
namespace {

using namespace decision_log_testing;
using namespace std::chrono_literals;

TEST(DecisionLog, RoundTripsEveryValueType) {
    ScratchDir dir;
    SettableClock clock(fixed_start());
    const std::string path = dir.file("tunerd.db");
    const std::vector<std::pair<KnobValue, KnobValue>> values = {
        {Count{3}, Count{5}},
        {Count{-7}, Count{std::numeric_limits<std::int64_t>::max()}},
        {ByteSize{0}, ByteSize{128 * MiB}},
        {ByteSize{std::numeric_limits<std::uint64_t>::max()}, ByteSize{9223372036854771712ULL}},
        {Seconds{0.1}, Seconds{1e-3}},
        {Text{"128MB"}, Text{"256MB – ünïcode, 'quotes'"}},
        {KnobValue{}, Count{4}},
        {Count{4}, ByteSize{1024}},
        {Text{""}, KnobValue{}},
        {KnobValue{}, KnobValue{}},
    };
    std::vector<Decision> expected;
    {
        DecisionLog log(options_for(path, clock));
        for (std::size_t i = 0; i < values.size(); ++i) {
            Decision d = workers_decision(0, 0, fixed_start() + std::chrono::seconds(i));
            d.plan_id = 100 + i;
            d.old_value = values[i].first;
            d.new_value = values[i].second;
            d.id = log.record(d);
            expected.push_back(d);
        }
        log.flush(20s);
        EXPECT_TRUE(log.stats().healthy) << log.stats().last_error;
        EXPECT_EQ(log.stats().queued, 0u);
    }
    const auto stored = stored_oldest_first(path);
    ASSERT_EQ(stored.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) expect_same_decision(stored[i], expected[i]);
}

TEST(DecisionLog, RecordsOutcomesOfWrittenAndQueuedDecisions) {
    ScratchDir dir;
    SettableClock clock(fixed_start());
    const std::string path = dir.file("tunerd.db");
    DecisionLog log(options_for(path, clock));
    const auto written = log.record(workers_decision(2, 5));
    log.flush(20s);
    log.record_outcome(written, Outcome::applied);
    const auto queued = log.record(workers_decision(5, 9));
    log.record_outcome(queued, Outcome::failed, "spawn failed: ENOMEM");
    log.flush(20s);

    const auto stored = stored_oldest_first(path);
    ASSERT_EQ(stored.size(), 2u);
    EXPECT_EQ(stored[0].outcome, Outcome::applied);
    EXPECT_EQ(stored[0].error, "");
    EXPECT_EQ(stored[1].outcome, Outcome::failed);
    EXPECT_EQ(stored[1].error, "spawn failed: ENOMEM");
    const auto recent = log.recent(10);
    ASSERT_EQ(recent.size(), 2u);
    EXPECT_EQ(recent[0].outcome, Outcome::failed);
    EXPECT_EQ(recent[1].outcome, Outcome::applied);
}

TEST(DecisionLog, RecentIsNewestFirstAndCappedByMemoryKeep) {
    ScratchDir dir;
    SettableClock clock(fixed_start());
    auto options = options_for(dir.file("tunerd.db"), clock);
    options.memory_keep = 5;
    DecisionLog log(options);
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < 8; ++i) ids.push_back(log.record(workers_decision(i, i + 1)));
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));

    EXPECT_EQ(ids_of(log.recent(100)),
              (std::vector<std::uint64_t>{ids[7], ids[6], ids[5], ids[4], ids[3]}));
    EXPECT_EQ(ids_of(log.recent(2)), (std::vector<std::uint64_t>{ids[7], ids[6]}));
    EXPECT_TRUE(log.recent(0).empty());
}

TEST(DecisionLog, QueryFiltersBySinceAndLimitNewestFirst) {
    ScratchDir dir;
    SettableClock clock(fixed_start());
    const std::string path = dir.file("tunerd.db");
    const auto minute = [](int i) { return fixed_start() + std::chrono::minutes(i); };
    {
        DecisionLog log(options_for(path, clock));
        for (int i = 0; i < 10; ++i) log.record(workers_decision(i, i + 1, minute(i)));
        log.flush(20s);

        auto three = log.query(minute(5), 3);
        ASSERT_TRUE(three.ok()) << three.error().to_string();
        ASSERT_EQ(three->size(), 3u);
        EXPECT_EQ((*three)[0].time, minute(9));
        EXPECT_EQ((*three)[2].time, minute(7));

        auto tail = log.query(minute(8), 10);
        ASSERT_TRUE(tail.ok());
        EXPECT_EQ(tail->size(), 2u);
        auto none = log.query(std::nullopt, 0);
        ASSERT_TRUE(none.ok());
        EXPECT_TRUE(none->empty());
    }
    // A new log has nothing in memory: the answer comes from the file.
    DecisionLog reopened(options_for(path, clock));
    EXPECT_TRUE(reopened.recent(100).empty());
    auto from_file = reopened.query(minute(5), 100);
    ASSERT_TRUE(from_file.ok()) << from_file.error().to_string();
    ASSERT_EQ(from_file->size(), 5u);
    EXPECT_EQ(from_file->front().time, minute(9));
    EXPECT_EQ(from_file->back().time, minute(5));

    auto offline = read_decisions(path, minute(5), 2);
    ASSERT_TRUE(offline.ok()) << offline.error().to_string();
    ASSERT_EQ(offline->size(), 2u);
    EXPECT_EQ((*offline)[0].time, minute(9));
}

TEST(DecisionLog, QueryMergesQueuedDecisionsWithTheFile) {
    ScratchDir dir;
    SettableClock clock(fixed_start());
    const std::string path = dir.file("tunerd.db");
    {
        DecisionLog first(options_for(path, clock));
        first.record(workers_decision(1, 2, fixed_start()));
    }
    DecisionLog log(options_for(path, clock));
    const auto id = log.record(workers_decision(2, 3, fixed_start() + 1s));
    log.record_outcome(id, Outcome::applied);
    auto all = log.query(std::nullopt, 10);
    ASSERT_TRUE(all.ok()) << all.error().to_string();
    ASSERT_EQ(all->size(), 2u);
    EXPECT_EQ((*all)[0].id, id);
    EXPECT_EQ((*all)[0].outcome, Outcome::applied);
    EXPECT_EQ((*all)[1].new_value, KnobValue{Count{2}});
}

TEST(DecisionLog, IdsAndRunIdsContinueAfterRestart) {
    ScratchDir dir;
    SettableClock clock(fixed_start());
    const std::string path = dir.file("tunerd.db");
    std::uint64_t last_id = 0;
    std::int64_t first_run = 0;
    {
        DecisionLog log(options_for(path, clock));
        log.start_run("0.1.0", "hash-a", "");
        first_run = log.current_run().run_id;
        for (int i = 0; i < 3; ++i) last_id = log.record(workers_decision(i, i + 1));
    }
    DecisionLog log(options_for(path, clock));
    log.start_run("0.1.0", "hash-b", "");
    EXPECT_GT(log.current_run().run_id, first_run);
    EXPECT_GT(log.record(workers_decision(3, 4)), last_id);
    log.flush(20s);
    EXPECT_EQ(stored_oldest_first(path).size(), 4u);
}

TEST(DecisionLog, StartRunStoresTheRunAndTagsDecisionsAndSamples) {
    ScratchDir dir;
    SettableClock clock(fixed_start());
    const std::string path = dir.file("tunerd.db");
    DecisionLog log(options_for(path, clock));
    EXPECT_EQ(log.current_run().run_id, 0);
    log.start_run("0.1.0 (abc123)", "sha256:feed", "[workers]\nmode = \"adaptive\"\n");
    const RunInfo run = log.current_run();
    EXPECT_NE(run.run_id, 0);
    EXPECT_EQ(run.started, fixed_start());
    log.record(workers_decision(1, 3));
    Sample sample;
    sample.workers_target = 3;
    sample.workers_ready = 2;
    sample.threads = 1;
    sample.rps = 310.5;
    sample.p95_ms = 61.25;
    sample.queue_wait_p95_ms = 4.5;
    sample.memory_usage_bytes = 300 * MiB;
    sample.working_set_bytes = 250 * MiB;
    sample.memory_limit_bytes = 512 * MiB;
    sample.cpu_utilisation = 0.75;
    sample.psi_cpu_some_avg10 = 1.5;
    sample.psi_memory_some_avg10 = 0.25;
    log.record_sample(sample);
    log.flush(20s);

    RawDatabase raw(path);
    const std::string run_id = std::to_string(run.run_id);
    EXPECT_EQ(raw.text("SELECT version FROM runs WHERE id = " + run_id), "0.1.0 (abc123)");
    EXPECT_EQ(raw.text("SELECT config_hash FROM runs WHERE id = " + run_id), "sha256:feed");
    EXPECT_EQ(raw.text("SELECT config_text FROM runs WHERE id = " + run_id),
              "[workers]\nmode = \"adaptive\"\n");
    EXPECT_EQ(raw.text("SELECT started FROM runs WHERE id = " + run_id),
              "2024-05-01T10:00:00.000Z");
    EXPECT_EQ(raw.integer("SELECT run_id FROM decisions"), run.run_id);
    EXPECT_EQ(raw.integer("SELECT run_id FROM samples"), run.run_id);
    EXPECT_EQ(raw.text("SELECT time FROM samples"), "2024-05-01T10:00:00.000Z");
    EXPECT_EQ(raw.text("SELECT printf('%d %d %d %.2f %.2f %.2f %d %d %d %.2f %.2f %.2f', "
                       "workers_target, workers_ready, threads, rps, p95_ms, queue_wait_p95_ms, "
                       "memory_usage_bytes, working_set_bytes, memory_limit_bytes, "
                       "cpu_utilisation, psi_cpu_some_avg10, psi_memory_some_avg10) FROM samples"),
              "3 2 1 310.50 61.25 4.50 314572800 262144000 536870912 0.75 1.50 0.25");
}

TEST(DecisionLog, RetentionDeletesOldEntriesAndEmptyRunsButNeverTheCurrentRun) {
    ScratchDir dir;
    const std::string path = dir.file("tunerd.db");
    SettableClock old_clock(fixed_start() - std::chrono::hours(24 * 40));
    {
        DecisionLog log(options_for(path, old_clock));
        log.start_run("0.0.9", "old", "");
        log.record(workers_decision(1, 2));
        log.record_sample(Sample{});
    }
    SettableClock clock(fixed_start());
    DecisionLog log(options_for(path, clock));  // retention at open
    log.start_run("0.1.0", "new", "");
    const auto day = std::chrono::hours(24);
    log.record(workers_decision(2, 3, fixed_start() - 10 * day));
    log.record(workers_decision(3, 4, fixed_start() - 30 * day + std::chrono::minutes(30)));
    log.flush(20s);
    {
        RawDatabase raw(path);
        EXPECT_EQ(raw.integer("SELECT count(*) FROM decisions"), 2);
        EXPECT_EQ(raw.integer("SELECT count(*) FROM samples"), 0);
        EXPECT_EQ(raw.integer("SELECT count(*) FROM runs"), 1);
        EXPECT_EQ(raw.text("SELECT config_hash FROM runs"), "new");
    }
    // An hour later the 29.98-day-old decision has passed the 30 days; the next write runs
    // the hourly retention first.
    clock.advance(std::chrono::hours(1));
    log.record_sample(Sample{});
    log.flush(20s);
    {
        RawDatabase raw(path);
        EXPECT_EQ(raw.integer("SELECT count(*) FROM decisions"), 1);
        EXPECT_EQ(raw.integer("SELECT count(*) FROM samples"), 1);
    }
    // Forty days on, everything is old, yet the current run stays.
    clock.advance(40 * day);
    log.record_sample(Sample{});
    log.flush(20s);
    RawDatabase raw(path);
    EXPECT_EQ(raw.integer("SELECT count(*) FROM decisions"), 0);
    EXPECT_EQ(raw.integer("SELECT count(*) FROM samples"), 1);
    EXPECT_EQ(raw.integer("SELECT count(*) FROM runs"), 1);
    EXPECT_EQ(raw.text("SELECT config_hash FROM runs"), "new");
}

TEST(DecisionLog, WithoutAPathKeepsDecisionsInMemoryOnly) {
    SettableClock clock(fixed_start());
    DecisionLog log(options_for("", clock));
    log.start_run("0.1.0", "h", "");
    const auto id = log.record(workers_decision(1, 2));
    log.record_outcome(id, Outcome::dry_run);
    log.record_sample(Sample{});
    log.flush(1s);
    const auto stats = log.stats();
    EXPECT_TRUE(stats.healthy);
    EXPECT_EQ(stats.queued, 0u);
    EXPECT_EQ(stats.written_total, 0u);
    auto found = log.query(std::nullopt, 5);
    ASSERT_TRUE(found.ok());
    ASSERT_EQ(found->size(), 1u);
    EXPECT_EQ(found->front().outcome, Outcome::dry_run);
    EXPECT_EQ(found->front().time, fixed_start());
}

}  // namespace
}  // namespace tuner
