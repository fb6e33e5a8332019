// The database side end to end: the real daemon sizes the Flask example's SQLAlchemy
// pools for a real PostgreSQL (the ctest fixture's throwaway cluster), passes them to gunicorn
// workers in their environment, writes the recommended settings, and keeps serving when
// PostgreSQL is unreachable.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include "tests/support/load_generator.hpp"
#include "tests/support/tunerd_process.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

// The cluster the postgres_cluster fixture started.
class DatabaseDaemon : public ::testing::Test {
protected:
    void SetUp() override {
        const std::string dir = TUNER_PG_CLUSTER_DIR;
        const std::string unavailable = read_text(dir + "/unavailable");
        // `make test` installs PostgreSQL: its absence is a failure, never a silent skip.
        ASSERT_TRUE(unavailable.empty()) << "no PostgreSQL: " << unavailable;
        url_file_ = dir + "/admin.url";
        url_ = trim(read_text(url_file_));
        password_ = trim(read_text(dir + "/password"));
        ASSERT_FALSE(url_.empty()) << "the postgres_cluster fixture did not run";
        // A database of our own, so counts of connections are ours alone.
        auto r = query("SELECT 1 FROM pg_database WHERE datname = 'tunerd_it'");
        if (r.empty()) (void)query("CREATE DATABASE tunerd_it");
        app_url_ = url_.substr(0, url_.rfind('/')) + "/tunerd_it";
        app_url_file_ = dir_.path() + "/app.url";
        std::ofstream(app_url_file_) << app_url_ << "\n";
        (void)query("ALTER SYSTEM RESET ALL");
        (void)query("SELECT pg_reload_conf()");
    }

    // One value of the first row ("" on error), from a fresh connection.
    std::string query(const std::string& sql) {
        PGconn* c = PQconnectdb(url_.c_str());
        std::string out;
        if (PQstatus(c) == CONNECTION_OK) {
            PGresult* r = PQexec(c, sql.c_str());
            if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
            PQclear(r);
        }
        PQfinish(c);
        return out;
    }

    int app_connections() {
        const auto n = query("SELECT count(*) FROM pg_stat_activity WHERE datname = 'tunerd_it'");
        return n.empty() ? -1 : std::stoi(n);
    }

    std::string flask_config(const std::string& database) const {
        return std::string("[workers]\n") +
               "command = [\"/usr/bin/python3\", \"-m\", \"gunicorn\", \"-w\", \"1\", "
               "\"--threads\", \"{threads}\", "
               "\"-b\", \"unix:{socket}\", \"--chdir\", \"" TUNER_SOURCE_DIR
               "/examples/flask\", \"app:app\"]\n" +
               "health_path = \"/health\"\nmode = \"fixed\"\ncount = 3\nthreads = 2\nmax = 4\n" +
               "startup_timeout = \"60s\"\n[database]\n" + database;
    }

    TempDir dir_;
    std::string url_file_, url_, password_, app_url_, app_url_file_;
};

std::string environ_of(pid_t pid) {
    std::string text = read_text("/proc/" + std::to_string(pid) + "/environ");
    std::replace(text.begin(), text.end(), '\0', '\n');
    return text;
}

TEST_F(DatabaseDaemon, SizedPoolsReachGunicornWorkersAndHoldUnderLoad) {
    TunerdProcess tunerd(
        {.config = flask_config("url_file = \"" + app_url_file_ + "\"\nadmin_url_file = \"" +
                                url_file_ + "\"\npostgres = \"recommend\"\n"),
         .ready_timeout = 90s});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();

    // The pool policy's numbers are decisions, and every worker started with them.
    auto perf = tunerd.admin_json("/performance");
    ASSERT_TRUE(perf.ok());
    const auto& db = (*perf)["recommendations"]["database"];
    ASSERT_TRUE(db.is_object()) << perf->dump(2);
    const unsigned pool_size = db["pool"]["pool_size"];
    const unsigned max_overflow = db["pool"]["max_overflow"];
    const unsigned budget = db["pool"]["connection_budget"];
    EXPECT_EQ(pool_size, 2u);  // = threads
    EXPECT_LE(4 * (pool_size + max_overflow), budget);
    for (pid_t pid : tunerd.ready_worker_pids()) {
        const auto env = environ_of(pid);
        EXPECT_NE(env.find("DB_POOL_SIZE=" + std::to_string(pool_size)), std::string::npos) << env;
        EXPECT_NE(env.find("DB_MAX_OVERFLOW=" + std::to_string(max_overflow)), std::string::npos);
        EXPECT_NE(env.find("DB_POOL_RECYCLE="), std::string::npos);
        EXPECT_NE(env.find("DB_POOL_TIMEOUT="), std::string::npos);
        EXPECT_NE(env.find("DATABASE_URL=" + app_url_), std::string::npos);
    }

    // Under load the database route works and the app never opens more than its pools allow.
    LoadGenerator load({.address = tunerd.public_address(),
                        .target = "/db",
                        .connections = 16,
                        .max_duration = 60s});
    load.start();
    int most = 0;
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < until) {
        most = std::max(most, app_connections());
        std::this_thread::sleep_for(100ms);
    }
    const auto result = load.stop();
    EXPECT_GT(result.ok_2xx, 50u) << result.summary();
    EXPECT_EQ(result.non_2xx(), 0u) << result.summary();
    EXPECT_EQ(result.client_errors, 0u) << result.summary();
    EXPECT_GT(most, 0);
    EXPECT_LE(static_cast<unsigned>(most), 3 * (pool_size + max_overflow)) << "connections seen";

    // recommend mode: the snippet is written, PostgreSQL is not changed.
    const auto snippet = read_text(tunerd.state_dir() + "/postgres-tunerd.conf");
    EXPECT_NE(snippet.find("shared_buffers"), std::string::npos) << snippet;
    EXPECT_NE(snippet.find("max_connections"), std::string::npos) << snippet;
    EXPECT_EQ(
        query(
            "SELECT count(*) FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf'"),
        "0");

    // Credentials never show: not in the log, /performance, or the decisions.
    auto decisions = tunerd.admin_request({"GET", "/performance/decisions?limit=1000", {}, {}});
    ASSERT_TRUE(decisions.ok());
    EXPECT_NE(decisions->body.find("db_pool.pool_size"), std::string::npos);
    EXPECT_NE(decisions->body.find("shared_buffers"), std::string::npos);
    for (const std::string& text : {tunerd.log(), decisions->body, perf->dump()}) {
        EXPECT_EQ(text.find(password_), std::string::npos) << "the password leaked";
        EXPECT_EQ(text.find("postgresql://"), std::string::npos) << "a connection string leaked";
    }
}

TEST_F(DatabaseDaemon, UnreachablePostgresNeverTakesTrafficDown) {
    // A port nobody listens on.
    const std::string nowhere = dir_.path() + "/nowhere.url";
    std::ofstream(nowhere)
        << "postgresql://postgres:secret-pw@127.0.0.1:9/postgres?connect_timeout=1\n";
    TunerdProcess tunerd(
        {.config = "[workers]\nmode = \"fixed\"\ncount = 2\n[database]\nurl_file = \"" + nowhere +
                   "\"\nadmin_url_file = \"" + nowhere + "\"\npostgres = \"apply\"\n" +
                   "connect_timeout = \"1s\"\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    auto result = run_load(
        {.address = tunerd.public_address(), .target = "/work?cpu_ms=0&io_ms=5", .connections = 8},
        400);
    EXPECT_EQ(result.ok_2xx, 400u) << result.summary();
    // The failed attempts are decisions with their error, the daemon is healthy.
    bool failed_seen = false;
    for (int i = 0; i < 100 && !failed_seen; ++i) {
        auto d = tunerd.admin_request({"GET", "/performance/decisions?limit=200", {}, {}});
        failed_seen = d.ok() && d->body.find("\"outcome\": \"failed\"") != std::string::npos;
        if (!failed_seen) std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(failed_seen) << tunerd.log();
    auto health = tunerd.admin_json("/health");
    ASSERT_TRUE(health.ok());
    EXPECT_EQ((*health)["status"], "ok") << health->dump(2);
    EXPECT_EQ(tunerd.log().find("secret-pw"), std::string::npos)
        << "the password leaked into the log";
}

}  // namespace
}  // namespace tuner::test
