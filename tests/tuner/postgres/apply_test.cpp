// recommend, apply and rollback against a real PostgreSQL: values checked with SHOW and
// pg_file_settings, originals recorded, administrators' changes respected.
#include <algorithm>

#include "pg_test_cluster.hpp"
#include "policies/postgres_settings.hpp"
#include "test_settings.hpp"
#include "tuner/postgres/actions.hpp"
#include "tuner/postgres/state.hpp"

namespace tuner::postgres::testing {
namespace {

const Decision* decision_for(const PostgresReport& report, const std::string& knob) {
    const auto it = std::find_if(report.decisions.begin(), report.decisions.end(),
                                 [&](const Decision& d) { return d.knob == knob; });
    return it == report.decisions.end() ? nullptr : &*it;
}

class PostgresApply : public PgTestCluster {
protected:
    ActionOptions options() const {
        ActionOptions o;
        o.state_dir = state_dir_;
        o.config_loaded_at = WallClock::now();
        return o;
    }

    PostgresReport apply(
        const policies::PostgresSettingsResult& settings = one_gigabyte_settings()) {
        auto session = admin();
        return apply_settings(session, settings, options());
    }

    PostgresReport rollback() {
        auto session = admin();
        return rollback_settings(session, options());
    }
};

TEST_F(PostgresApply, RecommendWritesTheSnippetBesideCurrentValues) {
    auto session = admin();
    const auto live = read_live_state(session, policies::postgres_setting_names());
    ASSERT_TRUE(live.ok()) << live.error().to_string();
    const auto report = recommend_settings(one_gigabyte_settings(), *live, options());
    ASSERT_TRUE(report.ok()) << report.error->to_string();

    const std::string snippet = read_text(postgres_snippet_path(state_dir_));
    EXPECT_NE(snippet.find("shared_buffers = '256MB'"), std::string::npos) << snippet;
    EXPECT_NE(snippet.find("work_mem = '9362kB'"), std::string::npos) << snippet;

    const auto* sb = decision_for(report, "shared_buffers");
    ASSERT_NE(sb, nullptr);
    EXPECT_EQ(std::get<Text>(sb->old_value).value, "128MB");  // initdb's value
    EXPECT_EQ(std::get<Text>(sb->new_value).value, "256MB");
    EXPECT_EQ(sb->outcome, Outcome::dry_run);
    // Recommending changes nothing.
    EXPECT_EQ(show("work_mem"), "4MB");
    EXPECT_FALSE(auto_conf("shared_buffers").has_value());
}

TEST_F(PostgresApply, ApplyChangesSettingsAndRecordsOriginals) {
    const auto report = apply();
    ASSERT_TRUE(report.ok()) << report.error->to_string();

    EXPECT_EQ(show("work_mem"), "9362kB");
    EXPECT_EQ(show("effective_cache_size"), "768MB");
    EXPECT_EQ(show("maintenance_work_mem"), "64MB");
    EXPECT_EQ(show("random_page_cost"), "1.1");
    EXPECT_EQ(show("effective_io_concurrency"), "200");
    EXPECT_EQ(show("max_wal_size"), "4GB");
    EXPECT_EQ(auto_conf("shared_buffers"), "256MB");

    const auto* work_mem = decision_for(report, "work_mem");
    ASSERT_NE(work_mem, nullptr);
    EXPECT_EQ(work_mem->outcome, Outcome::applied) << work_mem->reason;
    EXPECT_EQ(work_mem->subsystem, "postgres");
    EXPECT_EQ(work_mem->rule, "pgtune_web");
    EXPECT_EQ(std::get<Text>(work_mem->old_value).value, "4MB");
    EXPECT_EQ(std::get<Text>(work_mem->new_value).value, "9362kB");

    const auto state = load_postgres_state(postgres_state_path(state_dir_));
    ASSERT_TRUE(state.ok()) << state.error().to_string();
    const auto& sb = state->settings.at("shared_buffers");
    EXPECT_EQ(sb.original, "128MB");
    EXPECT_FALSE(sb.original_in_auto_conf);
    EXPECT_EQ(sb.last_applied, "256MB");
    EXPECT_EQ(state->settings.at("work_mem").original, "4MB");
}

TEST_F(PostgresApply, SharedBuffersIsFlaggedPendingRestartNotRestarted) {
    const auto report = apply();
    ASSERT_TRUE(report.ok());
    const auto* sb = decision_for(report, "shared_buffers");
    ASSERT_NE(sb, nullptr);
    EXPECT_EQ(sb->outcome, Outcome::applied);
    EXPECT_NE(sb->reason.find("pending restart"), std::string::npos) << sb->reason;
    ASSERT_TRUE(report.live.has_value());
    EXPECT_TRUE(report.live->find("shared_buffers")->pending_restart);
    EXPECT_EQ(show("shared_buffers"), "128MB");  // still running with the old value
    const auto* mc = decision_for(report, "max_connections");
    ASSERT_NE(mc, nullptr);
    EXPECT_NE(mc->reason.find("pending restart"), std::string::npos) << mc->reason;
}

TEST_F(PostgresApply, SecondApplyChangesNothing) {
    ASSERT_TRUE(apply().ok());
    const auto again = apply();
    ASSERT_TRUE(again.ok());
    for (const auto& d : again.decisions) EXPECT_EQ(d.outcome, Outcome::unchanged) << d.knob;
    EXPECT_NE(decision_for(again, "shared_buffers")->reason.find("pending restart"),
              std::string::npos);
}

TEST_F(PostgresApply, SettingWithinFivePercentIsLeftAlone) {
    alter_system("effective_cache_size", "760MB");  // wanted 768MB: 1 % off
    reload();
    const auto report = apply();
    ASSERT_TRUE(report.ok());
    EXPECT_EQ(decision_for(report, "effective_cache_size")->outcome, Outcome::unchanged);
    EXPECT_EQ(show("effective_cache_size"), "760MB");
}

TEST_F(PostgresApply, RollbackRestoresOriginalsAndResetsWhatWasNotInAutoConf) {
    alter_system("random_page_cost", "2");  // an original that lives in postgresql.auto.conf
    reload();
    ASSERT_TRUE(apply().ok());
    ASSERT_EQ(show("random_page_cost"), "1.1");

    const auto report = rollback();
    ASSERT_TRUE(report.ok()) << report.error->to_string();
    EXPECT_EQ(auto_conf("random_page_cost"), "2");  // SET back
    EXPECT_EQ(show("random_page_cost"), "2");
    EXPECT_FALSE(auto_conf("work_mem").has_value());  // RESET
    EXPECT_FALSE(auto_conf("shared_buffers").has_value());
    EXPECT_EQ(show("work_mem"), "4MB");
    const auto* work_mem = decision_for(report, "work_mem");
    ASSERT_NE(work_mem, nullptr);
    EXPECT_EQ(work_mem->outcome, Outcome::applied);
    EXPECT_EQ(work_mem->rule, "rollback");
    EXPECT_NE(work_mem->reason.find("RESET"), std::string::npos) << work_mem->reason;

    // Never live, so nothing is left pending: PostgreSQL still runs with the original.
    const auto* sb = decision_for(report, "shared_buffers");
    ASSERT_NE(sb, nullptr);
    EXPECT_EQ(sb->reason.find("pending restart"), std::string::npos) << sb->reason;

    const auto state = load_postgres_state(postgres_state_path(state_dir_));
    ASSERT_TRUE(state.ok());
    EXPECT_TRUE(state->settings.empty());
    EXPECT_TRUE(state->rolled_back_at.has_value());
}

TEST_F(PostgresApply, RollbackRefusesASettingTunerdDoesNotManage) {
    // A state file that names a setting tunerd never changes (here with a command as its
    // "original") is not acted on for that setting; what tunerd applied is still restored.
    ASSERT_TRUE(apply().ok());
    const std::string archive_command = show("archive_command");
    const auto path = postgres_state_path(state_dir_);
    auto state = load_postgres_state(path);
    ASSERT_TRUE(state.ok()) << state.error().to_string();
    state->settings["archive_command"] = {"touch /tmp/tunerd-pwned", true, std::nullopt};
    ASSERT_TRUE(save_postgres_state(path, *state).ok());

    const auto report = rollback();
    ASSERT_TRUE(report.ok()) << report.error->to_string();
    const auto* refused = decision_for(report, "archive_command");
    ASSERT_NE(refused, nullptr);
    EXPECT_EQ(refused->outcome, Outcome::failed);
    EXPECT_NE(refused->reason.find("not a setting tunerd manages"), std::string::npos)
        << refused->reason;
    EXPECT_FALSE(auto_conf("archive_command").has_value());
    EXPECT_EQ(show("archive_command"), archive_command);
    EXPECT_EQ(decision_for(report, "work_mem")->outcome, Outcome::applied);
    EXPECT_EQ(show("work_mem"), "4MB");
    const auto after = load_postgres_state(path);
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->settings.count("archive_command"), 1u) << "kept for an administrator";
}

TEST_F(PostgresApply, AfterARestartTheNewValuesRunAndRollbackFlagsTheOriginalsPending) {
    ASSERT_TRUE(apply().ok());
    pause_server();  // an administrator's restart, which tunerd never does itself
    resume_server();
    EXPECT_EQ(show("shared_buffers"), "256MB");
    EXPECT_EQ(show("max_connections"), "14");

    const auto report = rollback();
    ASSERT_TRUE(report.ok()) << report.error->to_string();
    const auto* sb = decision_for(report, "shared_buffers");
    ASSERT_NE(sb, nullptr);
    EXPECT_EQ(sb->outcome, Outcome::applied);
    EXPECT_NE(sb->reason.find("pending restart"), std::string::npos) << sb->reason;

    // Leave the cluster as other tests expect it: PostgreSQL's originals running.
    pause_server();
    resume_server();
    EXPECT_EQ(show("max_connections"), "100");
}

TEST_F(PostgresApply, AfterRollbackApplyWaitsForAReloadAndIsNoAdministratorChange) {
    ASSERT_TRUE(apply().ok());
    const auto loaded_before_rollback = WallClock::now();
    ASSERT_TRUE(rollback().ok());

    auto session = admin();
    auto held_options = options();
    held_options.config_loaded_at = loaded_before_rollback;
    const auto held = apply_settings(session, one_gigabyte_settings(), held_options);
    EXPECT_TRUE(held.decisions.empty());
    ASSERT_FALSE(held.notes.empty());
    EXPECT_NE(held.notes.back().find("rolled back"), std::string::npos);
    EXPECT_EQ(show("work_mem"), "4MB");

    // A reload (config_loaded_at after the rollback) applies again, with nothing "overridden".
    const auto again = apply();
    ASSERT_TRUE(again.ok());
    for (const auto& d : again.decisions) EXPECT_NE(d.outcome, Outcome::overridden) << d.knob;
    EXPECT_EQ(show("work_mem"), "9362kB");
}

TEST_F(PostgresApply, AdministratorChangeIsRespectedNotFought) {
    ASSERT_TRUE(apply().ok());
    alter_system("work_mem", "12MB");
    reload();

    const auto report = apply();
    ASSERT_TRUE(report.ok());
    const auto* work_mem = decision_for(report, "work_mem");
    ASSERT_NE(work_mem, nullptr);
    EXPECT_EQ(work_mem->outcome, Outcome::overridden);
    EXPECT_NE(work_mem->reason.find("administrator"), std::string::npos) << work_mem->reason;
    EXPECT_EQ(std::get<Text>(work_mem->old_value).value, "12MB");
    EXPECT_EQ(show("work_mem"), "12MB");

    // A rollback leaves the administrator's value too.
    const auto rolled = rollback();
    ASSERT_TRUE(rolled.ok());
    EXPECT_EQ(decision_for(rolled, "work_mem")->outcome, Outcome::overridden);
    EXPECT_EQ(show("work_mem"), "12MB");
    EXPECT_EQ(show("random_page_cost"), "4");
}

TEST_F(PostgresApply, RollbackWithNothingAppliedSaysSo) {
    const auto report = rollback();
    ASSERT_TRUE(report.ok());
    EXPECT_TRUE(report.decisions.empty());
    ASSERT_FALSE(report.notes.empty());
    EXPECT_NE(report.notes.front().find("nothing to roll back"), std::string::npos);
}

TEST_F(PostgresApply, LiveStateGivesThePoolPolicyItsFacts) {
    alter_system("idle_session_timeout", "90s");
    reload();
    auto session = admin();
    const auto live = read_live_state(session, {});
    ASSERT_TRUE(live.ok());
    const auto facts = live->facts();
    EXPECT_EQ(facts.max_connections, 100u);
    EXPECT_EQ(facts.superuser_reserved_connections, 3u);
    EXPECT_EQ(facts.idle_session_timeout, std::chrono::seconds(90));
    EXPECT_GE(live->server_version_num, 100000);
    EXPECT_TRUE(live->auto_conf_known);
    EXPECT_EQ(live->auto_conf.at("idle_session_timeout"), "90s");
}

}  // namespace
}  // namespace tuner::postgres::testing
