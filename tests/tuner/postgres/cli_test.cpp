// `tunerctl recommend`'s database section and `tunerctl rollback --postgres` against a real
// PostgreSQL.
#include <sstream>

#include "pg_test_cluster.hpp"
#include "test_settings.hpp"
#include "tuner/postgres/actions.hpp"
#include "tuner/postgres/actuator.hpp"
#include "tuner/postgres/state.hpp"

namespace tuner::postgres::testing {
namespace {

class PostgresCli : public PgTestCluster {
protected:
    Config config() const {
        Config c;
        c.database.admin_url_file = admin_url_file_;
        c.database.postgres = PostgresMode::apply;
        c.state.dir = state_dir_;
        c.workers.mode = PoolMode::formula;
        return c;
    }

    static Snapshot two_gigabytes_two_cores() {
        Snapshot s;
        s.cpu.effective_cores = 2;
        s.memory.limit_bytes = 2 * GiB;
        s.memory.limited = true;
        return s;
    }
};

TEST_F(PostgresCli, RecommendShowsRecommendedBesideCurrentValues) {
    const auto r = recommend_database(config(), two_gigabytes_two_cores());
    const auto& pg = r.json.at("postgres");
    EXPECT_TRUE(pg.at("reachable").get<bool>()) << pg.dump();
    bool saw_shared_buffers = false;
    for (const auto& s : pg.at("settings")) {
        if (s.at("name") == "shared_buffers") {
            saw_shared_buffers = true;
            EXPECT_EQ(s.at("recommended"), "128MB");  // 25 % of 2GB = 512MB, /4
            EXPECT_EQ(s.at("current"), "128MB");
            EXPECT_FALSE(s.at("differs").get<bool>());
        }
        if (s.at("name") == "work_mem") {
            EXPECT_EQ(s.at("current"), "4MB");
            EXPECT_TRUE(s.at("differs").get<bool>());
        }
    }
    EXPECT_TRUE(saw_shared_buffers);
    const auto& pool = r.json.at("db_pool");
    EXPECT_EQ(pool.at("max_workers"), 5);  // formula: min(2×2+1, 1.5GB / 100MB)
    EXPECT_EQ(pool.at("max_connections_live"), 100);
    EXPECT_EQ(pool.at("wanted_max_connections"), 20);
    EXPECT_NE(r.text.find("shared_buffers"), std::string::npos) << r.text;
    EXPECT_NE(r.text.find("pool_size 1"), std::string::npos) << r.text;
    EXPECT_EQ(r.text.find(password_), std::string::npos);
    EXPECT_EQ(r.json.dump().find(password_), std::string::npos);
    // Recommending writes nothing.
    EXPECT_TRUE(read_text(postgres_snippet_path(state_dir_)).empty());
}

TEST_F(PostgresCli, RecommendWithoutDatabaseStillRecommends) {
    Config c;
    c.database.postgres = PostgresMode::recommend;
    const auto r = recommend_database(c, two_gigabytes_two_cores());
    EXPECT_FALSE(r.json.at("postgres").at("reachable").get<bool>());
    EXPECT_EQ(r.json.at("postgres").at("settings").size(), 12u);
    EXPECT_NE(r.text.find("unknown"), std::string::npos) << r.text;
}

TEST_F(PostgresCli, RollbackCommandRestoresAndPrints) {
    {
        auto session = admin();
        ActionOptions o;
        o.state_dir = state_dir_;
        o.config_loaded_at = WallClock::now();
        ASSERT_TRUE(apply_settings(session, one_gigabyte_settings(), o).ok());
    }
    ASSERT_EQ(show("work_mem"), "9362kB");
    std::ostringstream out, err;
    EXPECT_EQ(run_rollback_cli(config(), out, err), 0) << err.str();
    EXPECT_NE(out.str().find("work_mem: 9362kB -> 4MB (applied)"), std::string::npos) << out.str();
    EXPECT_EQ(show("work_mem"), "4MB");
    EXPECT_EQ(out.str().find(password_), std::string::npos);
}

TEST_F(PostgresCli, RollbackCommandWithServerDownIsUnavailable) {
    pause_server();
    std::ostringstream out, err;
    const int status = run_rollback_cli(config(), out, err);
    resume_server();
    EXPECT_EQ(status, 69);
    EXPECT_NE(err.str().find("cannot connect"), std::string::npos) << err.str();
    EXPECT_EQ(err.str().find(password_), std::string::npos);
}

}  // namespace
}  // namespace tuner::postgres::testing
