// Helpers shared by the decision-log suites: a scratch directory, a settable clock, sample
// decisions, bounded polling, and raw SQLite look-ups to check what really reached the file.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "tests/support/temp_dir.hpp"
#include "tuner/decision_log/log.hpp"

namespace tuner::decision_log_testing {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed (permissions restored first) at the end.
using ScratchDir = tuner::test::TempDir;

// A wall clock the test moves by hand; copies share the same time.
class SettableClock {
public:
    explicit SettableClock(WallClock::time_point start)
        : ms_(std::make_shared<std::atomic<std::int64_t>>(
              std::chrono::duration_cast<std::chrono::milliseconds>(start.time_since_epoch())
                  .count())) {}

    WallClock::time_point now() const {
        return WallClock::time_point{std::chrono::milliseconds{ms_->load()}};
    }
    void advance(Duration by) { ms_->fetch_add(by.count()); }
    std::function<WallClock::time_point()> function() const {
        return [ms = ms_] { return WallClock::time_point{std::chrono::milliseconds{ms->load()}}; };
    }

private:
    std::shared_ptr<std::atomic<std::int64_t>> ms_;
};

// 2024-05-01T10:00:00Z: a fixed point so times and retention cut-offs are predictable.
inline WallClock::time_point fixed_start() {
    return WallClock::time_point{std::chrono::milliseconds{1714557600000}};
}

// Options for tests: quick retries so recovery tests finish fast, the given clock.
inline DecisionLog::Options options_for(const std::string& path, const SettableClock& clock) {
    DecisionLog::Options options;
    options.path = path;
    options.retry_interval = std::chrono::milliseconds(20);
    options.now = clock.function();
    return options;
}

inline Decision workers_decision(std::int64_t from, std::int64_t to,
                                 WallClock::time_point time = {}) {
    Decision d;
    d.time = time;
    d.plan_id = 7;
    d.subsystem = "workers";
    d.knob = "workers.count";
    d.old_value = Count{from};
    d.new_value = Count{to};
    d.rule = "littles_law";
    d.reason = "queue wait p95 120 ms > 50 ms; λ=310 rps, S=55 ms → need " + std::to_string(to);
    d.inputs_json = R"({"arrival_rps":310,"service_ms":55})";
    return d;
}

// Every field, with the decision's id in the failure message.
inline void expect_same_decision(const Decision& actual, const Decision& expected) {
    SCOPED_TRACE("decision " + std::to_string(expected.id));
    EXPECT_EQ(actual.id, expected.id);
    EXPECT_EQ(actual.time, expected.time);
    EXPECT_EQ(actual.plan_id, expected.plan_id);
    EXPECT_EQ(actual.subsystem, expected.subsystem);
    EXPECT_EQ(actual.knob, expected.knob);
    EXPECT_EQ(actual.old_value, expected.old_value) << to_string(actual.old_value);
    EXPECT_EQ(actual.new_value, expected.new_value) << to_string(actual.new_value);
    EXPECT_EQ(actual.rule, expected.rule);
    EXPECT_EQ(actual.reason, expected.reason);
    EXPECT_EQ(actual.inputs_json, expected.inputs_json);
    EXPECT_EQ(actual.outcome, expected.outcome) << to_string(actual.outcome);
    EXPECT_EQ(actual.error, expected.error);
}

// Polls `condition` until it holds or `limit` passes; the bound only stops a broken test.
inline bool eventually(const std::function<bool()>& condition,
                       Duration limit = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

// A plain connection for checking the file from outside the log.
struct RawDatabase {
    explicit RawDatabase(const std::string& path) {
        if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
            ADD_FAILURE() << "cannot open " << path << ": " << sqlite3_errmsg(db);
        }
        sqlite3_busy_timeout(db, 2000);
    }
    ~RawDatabase() { sqlite3_close_v2(db); }
    RawDatabase(const RawDatabase&) = delete;
    RawDatabase& operator=(const RawDatabase&) = delete;

    bool exec(const std::string& sql) {
        char* message = nullptr;
        const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
        if (rc != SQLITE_OK) {
            ADD_FAILURE() << sql << ": " << (message ? message : "?");
            sqlite3_free(message);
        }
        return rc == SQLITE_OK;
    }

    // The first column of the first row as an integer (-1 when there is no row).
    std::int64_t integer(const std::string& sql) {
        sqlite3_stmt* stmt = nullptr;
        std::int64_t value = -1;
        if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
            ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
        } else if (sqlite3_step(stmt) == SQLITE_ROW) {
            value = sqlite3_column_int64(stmt, 0);
        }
        sqlite3_finalize(stmt);
        return value;
    }

    // The first column of the first row as text ("" when there is no row).
    std::string text(const std::string& sql) {
        sqlite3_stmt* stmt = nullptr;
        std::string value;
        if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
            ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
        } else if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0)) {
            value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
        }
        sqlite3_finalize(stmt);
        return value;
    }

    sqlite3* db = nullptr;
};

// All decisions in the file, oldest first (read_decisions gives newest first).
inline std::vector<Decision> stored_oldest_first(const std::string& path) {
    auto stored = read_decisions(path, std::nullopt, 100000);
    EXPECT_TRUE(stored.ok()) << (stored.ok() ? "" : stored.error().to_string());
    if (!stored.ok()) return {};
    return {stored->rbegin(), stored->rend()};
}

inline std::vector<std::uint64_t> ids_of(const std::vector<Decision>& decisions) {
    std::vector<std::uint64_t> ids;
    for (const auto& d : decisions) ids.push_back(d.id);
    return ids;
}

}  // namespace tuner::decision_log_testing
