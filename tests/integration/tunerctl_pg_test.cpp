// tunerctl against a real PostgreSQL (the postgres_cluster fixture's throwaway cluster): recommend
// shows each setting beside its current value, and rollback --postgres restores every setting a
// daemon in apply mode changed.
#include <signal.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/tunerd_process.hpp"
#include "tuner/decision_log/log.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

class TunerctlPostgres : public ::testing::Test {
protected:
    void SetUp() override {
        const std::string cluster = TUNER_PG_CLUSTER_DIR;
        const std::string unavailable = read_text(cluster + "/unavailable");
        // `make test` installs PostgreSQL: its absence is a failure, never a silent skip.
        ASSERT_TRUE(unavailable.empty()) << "no PostgreSQL: " << unavailable;
        admin_url_file_ = cluster + "/admin.url";
        ASSERT_FALSE(read_text(admin_url_file_).empty())
            << "the postgres_cluster fixture did not run";
        database_ = "[database]\nadmin_url_file = \"" + admin_url_file_ + "\"\n";
    }

    // tunerctl with a config of `toml` plus state.dir in this test's directory, and no daemon:
    // admin.listen is port 0 and the state dir holds no listen.json (a tunerd someone runs on
    // the default admin port must not answer for it).
    CommandResult tunerctl(std::vector<std::string> args, const std::string& toml) {
        const std::string config = dir_.path() + "/tunerctl.toml";
        std::ofstream(config) << toml << "[state]\ndir = \"" << dir_.path()
                              << "\"\n[admin]\nlisten = \"127.0.0.1:0\"\n";
        args.insert(args.begin(), TUNERCTL_BINARY);
        args.insert(args.end(), {"--config", config});
        return run_command(args);
    }

    // recommend --json's settings: name -> {recommended, current, differs, ...}.
    std::map<std::string, nlohmann::json> settings() {
        const auto r = tunerctl({"recommend", "--json"}, database_);
        EXPECT_EQ(r.exit_status, 0) << r.output;
        const auto j = nlohmann::json::parse(r.output, nullptr, false);
        std::map<std::string, nlohmann::json> out;
        if (j.is_discarded()) return out;
        EXPECT_EQ(j["postgres"]["reachable"], true) << j["postgres"].dump(2);
        for (const auto& s : j["postgres"]["settings"]) out[s["name"]] = s;
        return out;
    }

    TempDir dir_;
    std::string admin_url_file_;
    std::string database_;
};

TEST_F(TunerctlPostgres, RecommendShowsEverySettingBesideItsCurrentValue) {
    const auto r = tunerctl({"recommend"}, database_);
    ASSERT_EQ(r.exit_status, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("current values from database.admin_url_file"));
    EXPECT_THAT(r.output, HasSubstr("setting                            recommended  current"));
    const auto current = settings();
    ASSERT_FALSE(current.empty());
    for (const auto& [name, s] : current) {
        ASSERT_TRUE(s["current"].is_string()) << name << ": " << s.dump();
        // The text's row for the setting carries both values.
        std::string row = "    " + name;
        row.resize(39, ' ');
        std::string recommended = s["recommended"].get<std::string>();
        recommended.resize(13, ' ');
        EXPECT_THAT(r.output, HasSubstr(row + recommended + s["current"].get<std::string>()))
            << name;
    }
}

TEST_F(TunerctlPostgres, RollbackWithNothingAppliedChangesNothing) {
    const auto r = tunerctl({"rollback", "--postgres"}, database_);
    EXPECT_EQ(r.exit_status, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("nothing to roll back"));
}

TEST_F(TunerctlPostgres, RollbackRestoresWhatTheDaemonApplied) {
    const auto before = settings();
    ASSERT_FALSE(before.empty());

    TunerdOptions options;
    options.config = database_ + "postgres = \"apply\"\n[workers]\nmax = 4\n";
    TunerdProcess tunerd(options);
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    // Applied once every setting that was more than 5 % off shows its new value as current.
    bool applied = false;
    for (int attempt = 0; attempt < 120 && !applied; ++attempt) {
        auto decisions = tunerd.admin_json("/performance/decisions?limit=200");
        ASSERT_TRUE(decisions.ok());
        int postgres_applied = 0;
        for (const auto& d : (*decisions)["decisions"]) {
            if (d["subsystem"] == "postgres" && d["outcome"] == "applied") ++postgres_applied;
        }
        applied = postgres_applied > 0;
        if (!applied) std::this_thread::sleep_for(250ms);
    }
    ASSERT_TRUE(applied) << tunerd.log();
    tunerd.signal(SIGTERM);
    ASSERT_EQ(tunerd.wait_exit(60s), 0) << tunerd.log();

    // The daemon really changed something, so the comparison below means something.
    const auto applied_settings = settings();
    int changed = 0;
    for (const auto& [name, s] : before) {
        if (applied_settings.contains(name) && applied_settings.at(name)["current"] != s["current"])
            ++changed;
    }
    ASSERT_GT(changed, 0) << "apply mode changed no setting";

    // Rollback reads the originals from the daemon's state dir: give it the daemon's config.
    auto r =
        run_command({TUNERCTL_BINARY, "rollback", "--postgres", "--config", tunerd.config_path()});
    ASSERT_EQ(r.exit_status, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("PostgreSQL settings restored"));
    const auto after = settings();
    for (const auto& [name, s] : before) {
        ASSERT_TRUE(after.contains(name)) << name;
        EXPECT_EQ(after.at(name)["current"], s["current"]) << name;
    }
    // With no daemon running, tunerctl wrote the rollback to the decision log itself.
    auto logged = read_decisions(tunerd.state_dir() + "/tunerd.db", std::nullopt, 1000);
    ASSERT_TRUE(logged.ok()) << logged.error().to_string();
    int rollbacks = 0;
    for (const auto& d : *logged) rollbacks += d.rule == "rollback" ? 1 : 0;
    EXPECT_GT(rollbacks, 0);
}

TEST_F(TunerctlPostgres, RollbackGoesThroughARunningDaemonAndIsInItsLog) {
    const auto before = settings();
    TunerdOptions options;
    options.config = database_ + "postgres = \"apply\"\n[workers]\nmax = 4\n";
    TunerdProcess tunerd(options);
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    auto count_decisions = [&](const std::string& rule, const std::string& outcome) {
        auto decisions = tunerd.admin_json("/performance/decisions?limit=500");
        int n = 0;
        if (!decisions.ok()) return -1;
        for (const auto& d : (*decisions)["decisions"]) {
            if (d["subsystem"] == "postgres" && d["rule"] == rule && d["outcome"] == outcome) ++n;
        }
        return n;
    };
    bool applied = false;
    for (int attempt = 0; attempt < 120 && !applied; ++attempt) {
        applied = count_decisions("pgtune_web", "applied") > 0;
        if (!applied) std::this_thread::sleep_for(250ms);
    }
    ASSERT_TRUE(applied) << tunerd.log();

    auto r =
        run_command({TUNERCTL_BINARY, "rollback", "--postgres", "--config", tunerd.config_path()});
    ASSERT_EQ(r.exit_status, 0) << r.output;
    EXPECT_GT(count_decisions("rollback", "applied"), 0) << tunerd.log();
    const auto after = settings();
    for (const auto& [name, s] : before) {
        ASSERT_TRUE(after.contains(name)) << name;
        EXPECT_EQ(after.at(name)["current"], s["current"]) << name;
    }
    // The daemon holds off re-applying after a rollback (until a reload or restart).
    std::this_thread::sleep_for(3s);
    const auto later = settings();
    for (const auto& [name, s] : before) EXPECT_EQ(later.at(name)["current"], s["current"]) << name;
}

}  // namespace
}  // namespace tuner::test
