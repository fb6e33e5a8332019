// The actuator's thread against a real PostgreSQL: a stopped server gives failed decisions (no
// crash, no blocked caller), retries with backoff succeed once it is back, and no credential ever
// appears in a decision, a report, a log line or a file tunerd writes.
#include "tuner/postgres/actuator.hpp"

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "pg_test_cluster.hpp"
#include "test_settings.hpp"
#include "tuner/postgres/state.hpp"

namespace tuner::postgres::testing {
namespace {

using namespace std::chrono_literals;

// Collects the actuator's reports; waits (with a generous deadline, not a timing assertion) for
// one that matches.
class Reports {
public:
    PostgresActuator::ReportCallback callback() {
        return [this](const PostgresReport& r) {
            std::lock_guard lock(mutex_);
            reports_.push_back(r);
            changed_.notify_all();
        };
    }

    template <typename Pred>
    std::optional<PostgresReport> wait_for(Pred pred, std::chrono::seconds deadline = 90s) {
        std::unique_lock lock(mutex_);
        std::optional<PostgresReport> found;
        changed_.wait_for(lock, deadline, [&] {
            for (const auto& r : reports_) {
                if (pred(r)) {
                    found = r;
                    return true;
                }
            }
            return false;
        });
        return found;
    }

    std::vector<PostgresReport> all() {
        std::lock_guard lock(mutex_);
        return reports_;
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<PostgresReport> reports_;
};

bool is_apply(const PostgresReport& r) {
    return r.action == "apply";
}

class PostgresActuatorTest : public PgTestCluster {
protected:
    ActuatorOptions options() const {
        ActuatorOptions o;
        o.state_dir = state_dir_;
        o.conninfo_file = admin_url_file_;
        o.conninfo_key = "database.admin_url_file";
        o.connect_timeout = 2s;
        o.retry_initial = 200ms;
        o.retry_max = 2s;
        return o;
    }

    // Every text a report carries.
    static std::string texts_of(const PostgresReport& r) {
        std::string all;
        for (const auto& d : r.decisions) {
            all += d.knob + "|" + to_string(d.old_value) + "|" + to_string(d.new_value) + "|" +
                   d.reason + "|" + d.error + "|" + d.inputs_json + "|" + d.rule + "\n";
        }
        for (const auto& n : r.notes) all += n + "\n";
        if (r.error) all += r.error->to_string() + "\n";
        return all;
    }
};

TEST_F(PostgresActuatorTest, StoppedServerGivesFailedDecisionsThenApplySucceedsAfterRestart) {
    pause_server();
    Reports reports;
    {
        PostgresActuator actuator(options(), reports.callback());
        actuator.set_target(PostgresMode::apply, one_gigabyte_settings());  // returns at once

        const auto failed = reports.wait_for(is_apply);
        ASSERT_TRUE(failed.has_value());
        EXPECT_FALSE(failed->ok());
        EXPECT_TRUE(failed->retry_later);
        ASSERT_EQ(failed->decisions.size(), one_gigabyte_settings().settings.size());
        for (const auto& d : failed->decisions) {
            EXPECT_EQ(d.outcome, Outcome::failed) << d.knob;
            EXPECT_NE(d.error.find("cannot connect"), std::string::npos) << d.error;
        }
        EXPECT_GE(actuator.status().consecutive_failures, 1u);

        resume_server();
        const auto applied = reports.wait_for(
            [](const PostgresReport& r) { return is_apply(r) && r.ok() && !r.decisions.empty(); });
        ASSERT_TRUE(applied.has_value()) << "no successful apply after the server came back";
        EXPECT_EQ(show("work_mem"), "9362kB");
        EXPECT_EQ(actuator.status().consecutive_failures, 0u);
        EXPECT_TRUE(actuator.status().last_error.empty());
    }
}

TEST_F(PostgresActuatorTest, RefreshReadsServerFactsForThePoolPolicy) {
    Reports reports;
    PostgresActuator actuator(options(), reports.callback());
    auto future = actuator.refresh();
    ASSERT_EQ(future.wait_for(60s), std::future_status::ready);
    const auto report = future.get();
    ASSERT_TRUE(report.ok()) << report.error->to_string();
    const auto facts = actuator.server_facts();
    ASSERT_TRUE(facts.has_value());
    EXPECT_EQ(facts->max_connections, 100u);
    EXPECT_EQ(facts->superuser_reserved_connections, 3u);
}

TEST_F(PostgresActuatorTest, RecommendModeWritesTheSnippetAndChangesNothing) {
    Reports reports;
    PostgresActuator actuator(options(), reports.callback());
    actuator.set_target(PostgresMode::recommend, one_gigabyte_settings());
    const auto report =
        reports.wait_for([](const PostgresReport& r) { return r.action == "recommend"; });
    ASSERT_TRUE(report.has_value());
    ASSERT_TRUE(report->ok()) << report->error->to_string();
    EXPECT_NE(read_text(postgres_snippet_path(state_dir_)).find("shared_buffers = '256MB'"),
              std::string::npos);
    EXPECT_EQ(show("work_mem"), "4MB");
}

TEST_F(PostgresActuatorTest, RollbackThroughTheActuatorRestores) {
    Reports reports;
    PostgresActuator actuator(options(), reports.callback());
    actuator.set_target(PostgresMode::apply, one_gigabyte_settings());
    ASSERT_TRUE(reports.wait_for([](const PostgresReport& r) { return is_apply(r) && r.ok(); }));
    auto future = actuator.rollback();
    ASSERT_EQ(future.wait_for(60s), std::future_status::ready);
    const auto report = future.get();
    ASSERT_TRUE(report.ok()) << report.error->to_string();
    EXPECT_EQ(show("work_mem"), "4MB");
    EXPECT_TRUE(actuator.status().rolled_back_at.has_value());
}

TEST_F(PostgresActuatorTest, CredentialsNeverAppearAnywhere) {
    std::ostringstream log;
    auto previous = spdlog::default_logger();
    auto capture = std::make_shared<spdlog::logger>(
        "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
    capture->set_level(spdlog::level::trace);
    spdlog::set_default_logger(capture);

    // A wrong password too: libpq's refusal must not echo what it was given.
    const std::string wrong_password = "wrong-" + password_;
    const std::string wrong_file = state_dir_ + "/wrong.url";
    std::string wrong_url = admin_url_;
    wrong_url.replace(wrong_url.find(password_), password_.size(), wrong_password);
    std::ofstream(wrong_file) << wrong_url << "\n";

    std::string seen;
    {
        Reports reports;
        PostgresActuator actuator(options(), reports.callback());
        actuator.set_target(PostgresMode::apply, one_gigabyte_settings());
        ASSERT_TRUE(
            reports.wait_for([](const PostgresReport& r) { return is_apply(r) && r.ok(); }));
        auto rolled = actuator.rollback();
        ASSERT_EQ(rolled.wait_for(60s), std::future_status::ready);
        rolled.get();

        auto wrong = options();
        wrong.conninfo_file = wrong_file;
        actuator.reconfigure(wrong);
        const auto refused =
            reports.wait_for([](const PostgresReport& r) { return is_apply(r) && !r.ok(); });
        ASSERT_TRUE(refused.has_value());
        EXPECT_NE(refused->error->to_string().find("password authentication failed"),
                  std::string::npos)
            << refused->error->to_string();
        for (const auto& r : reports.all()) seen += texts_of(r);
        seen += actuator.status().last_error;
    }
    seen += read_text(postgres_state_path(state_dir_));
    seen += read_text(postgres_snippet_path(state_dir_));
    spdlog::set_default_logger(previous);
    seen += log.str();

    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.find(password_), std::string::npos) << seen;
    EXPECT_EQ(seen.find(wrong_password), std::string::npos);
    EXPECT_EQ(seen.find(admin_url_), std::string::npos);
    EXPECT_EQ(seen.find("postgresql://"), std::string::npos);
}

}  // namespace
}  // namespace tuner::postgres::testing
