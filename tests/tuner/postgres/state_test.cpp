// postgres-state.json (originals, last applied, rollback time), the recommend snippet and the
// reports of an unreachable server: everything that needs no PostgreSQL.
#include "tuner/postgres/state.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_settings.hpp"
#include "tuner/postgres/actions.hpp"
#include "tuner/postgres/actuator.hpp"

namespace tuner::postgres {
namespace {

namespace fs = std::filesystem;

class StateDir : public ::testing::Test {
protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ = fs::temp_directory_path() /
               (std::string("tunerd-pgstate-") + info->name() + "-" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string read(const std::string& path) {
        std::ifstream in(path);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }

    fs::path dir_;
};

TEST_F(StateDir, MissingStateFileIsEmptyState) {
    const auto state = load_postgres_state(postgres_state_path(dir_.string()));
    ASSERT_TRUE(state.ok()) << state.error().to_string();
    EXPECT_TRUE(state->settings.empty());
    EXPECT_FALSE(state->rolled_back_at.has_value());
}

TEST_F(StateDir, StateRoundTrips) {
    PostgresState state;
    state.settings["shared_buffers"] = {"128MB", false, "256MB"};
    state.settings["random_page_cost"] = {"2", true, std::nullopt};
    state.rolled_back_at = WallClock::time_point(std::chrono::milliseconds(1'700'000'000'123));
    const auto path = postgres_state_path(dir_.string());
    ASSERT_TRUE(save_postgres_state(path, state).ok());
    const auto loaded = load_postgres_state(path);
    ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
    EXPECT_EQ(*loaded, state);
    EXPECT_FALSE(fs::exists(path + ".tmp." + std::to_string(::getpid())));
}

TEST_F(StateDir, DamagedStateFileIsAnErrorNamingIt) {
    const auto path = postgres_state_path(dir_.string());
    std::ofstream(path) << "{\"format\": 1, \"settings\": {\"work_mem\": {\"original\": 5}}}";
    auto loaded = load_postgres_state(path);
    ASSERT_FALSE(loaded.ok());
    EXPECT_EQ(loaded.error().where, path);
    std::ofstream(path) << "not json";
    loaded = load_postgres_state(path);
    ASSERT_FALSE(loaded.ok());
    EXPECT_NE(loaded.error().what.find("not a JSON object"), std::string::npos);
}

TEST_F(StateDir, SettingNameThatIsNotAPostgresNameRefusesTheWholeFile) {
    // The names go into ALTER SYSTEM unquoted: a state file with anything else in a name is
    // refused before a statement is built, and rollback and apply stop with this error.
    const auto path = postgres_state_path(dir_.string());
    for (const std::string name : {"work_mem = '64MB'; CREATE ROLE x SUPERUSER; --",
                                   "work_mem; DROP TABLE users", "work mem", "\"work_mem\"", ""}) {
        nlohmann::json state = {
            {"format", 1},
            {"settings",
             {{"shared_buffers", {{"original", "128MB"}, {"original_in_auto_conf", false}}},
              {name, {{"original", "4MB"}, {"original_in_auto_conf", true}}}}}};
        std::ofstream(path) << state.dump();
        const auto loaded = load_postgres_state(path);
        ASSERT_FALSE(loaded.ok()) << "accepted " << name;
        EXPECT_EQ(loaded.error().where, path);
        EXPECT_NE(loaded.error().what.find("is not a PostgreSQL setting name"), std::string::npos)
            << loaded.error().to_string();
        EXPECT_NE(loaded.error().what.find(nlohmann::json(name).dump()), std::string::npos)
            << loaded.error().to_string();
    }
}

TEST_F(StateDir, AtomicWriteIntoMissingDirectoryFailsWithThePath) {
    const auto path = (dir_ / "absent" / "x.json").string();
    const auto status = write_file_atomically(path, "{}");
    ASSERT_FALSE(status.ok());
    EXPECT_NE(status.error().to_string().find("absent"), std::string::npos);
}

TEST_F(StateDir, RecommendWritesTheSnippetWithoutADatabase) {
    ActionOptions options;
    options.state_dir = dir_.string();
    const auto report = recommend_settings(testing::one_gigabyte_settings(), std::nullopt, options);
    ASSERT_TRUE(report.ok()) << report.error->to_string();
    const std::string snippet = read(postgres_snippet_path(dir_.string()));
    EXPECT_NE(snippet.find("shared_buffers = '256MB'"), std::string::npos) << snippet;
    EXPECT_NE(snippet.find("wal_buffers = '7864kB'"), std::string::npos) << snippet;
    EXPECT_NE(snippet.find("max_connections = '14'"), std::string::npos) << snippet;
    EXPECT_NE(snippet.find("(restart)"), std::string::npos) << snippet;
    ASSERT_EQ(report.decisions.size(), testing::one_gigabyte_settings().settings.size());
    for (const auto& d : report.decisions) {
        EXPECT_EQ(d.subsystem, "postgres");
        EXPECT_EQ(d.outcome, Outcome::dry_run) << d.knob;
        EXPECT_EQ(d.old_value.index(), 0u) << d.knob;  // current value unknown
        EXPECT_TRUE(std::holds_alternative<Text>(d.new_value)) << d.knob;
    }
    EXPECT_EQ(report.decisions[0].rule, "db_pool_connections");
    EXPECT_EQ(report.decisions[1].rule, "pgtune_web");
}

TEST_F(StateDir, RecommendIntoUnwritableStateDirFailsEverySetting) {
    ActionOptions options;
    options.state_dir = (dir_ / "absent").string();
    const auto report = recommend_settings(testing::one_gigabyte_settings(), std::nullopt, options);
    ASSERT_FALSE(report.ok());
    for (const auto& d : report.decisions) EXPECT_EQ(d.outcome, Outcome::failed) << d.knob;
}

TEST(PostgresRollbackCli, NeedsAnAdminConnection) {
    Config config;
    config.state.dir = "/nonexistent";
    std::ostringstream out, err;
    EXPECT_EQ(run_rollback_cli(config, out, err), 78);
    EXPECT_NE(err.str().find("database.admin_url_file"), std::string::npos) << err.str();
}

TEST(PostgresRollbackCli, UnreadableConnectionFileIsUnavailableNotACrash) {
    Config config;
    config.state.dir = "/nonexistent";
    config.database.admin_url_file = "/nonexistent/admin.url";
    std::ostringstream out, err;
    EXPECT_EQ(run_rollback_cli(config, out, err), 69);
    EXPECT_NE(err.str().find("/nonexistent/admin.url"), std::string::npos) << err.str();
}

TEST(PostgresActuatorOptions, ApplyUsesOnlyTheAdminConnection) {
    Config config;
    config.database.url_file = "app.url";
    config.database.postgres = PostgresMode::recommend;
    EXPECT_EQ(actuator_options(config, "s").conninfo_file, "app.url");
    config.database.postgres = PostgresMode::apply;
    EXPECT_EQ(actuator_options(config, "s").conninfo_file, "");
    config.database.admin_url_file = "admin.url";
    const auto o = actuator_options(config, "s");
    EXPECT_EQ(o.conninfo_file, "admin.url");
    EXPECT_EQ(o.conninfo_key, "database.admin_url_file");
}

TEST(PostgresPlan, PlanCouplesPoolAndSettings) {
    Config config;
    config.workers.mode = PoolMode::formula;
    config.database.postgres = PostgresMode::recommend;
    Snapshot snap;
    snap.cpu.effective_cores = 2;
    snap.memory.limit_bytes = 2 * GiB;
    snap.memory.limited = true;
    const auto seed = policies::seed_formula(policies::seed_inputs(snap, config));
    const auto plan = plan_database(snap, config, seed, policies::PostgresServerFacts{});
    EXPECT_EQ(plan.max_workers, 5u);
    EXPECT_EQ(plan.settings.find("max_connections")->value, "20");
    EXPECT_EQ(plan.settings.find("shared_buffers")->value, "128MB");
}

}  // namespace
}  // namespace tuner::postgres
