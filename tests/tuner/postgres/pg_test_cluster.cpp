// The fixture cluster as the suites see it (see pg_test_cluster.hpp).
#include "pg_test_cluster.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tuner::postgres::testing {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

namespace {

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

}  // namespace

void PgTestCluster::SetUp() {
    dir_ = TUNER_PG_CLUSTER_DIR;
    const std::string unavailable = read_text(dir_ + "/unavailable");
    // `make test` installs PostgreSQL (scripts/install-deps --test): its absence is a failure,
    // never a silent skip.
    if (!unavailable.empty()) FAIL() << "no PostgreSQL for this test: " << unavailable;
    admin_url_file_ = dir_ + "/admin.url";
    ASSERT_TRUE(fs::exists(admin_url_file_))
        << admin_url_file_ << " is missing: run through ctest (fixture postgres_cluster_start)";
    admin_url_ = trimmed(read_text(admin_url_file_));
    password_ = trimmed(read_text(dir_ + "/password"));
    ASSERT_GE(password_.size(), 16u);

    auto session = admin();
    ASSERT_TRUE(session.exec("ALTER SYSTEM RESET ALL").ok());
    ASSERT_TRUE(session.exec("SELECT pg_reload_conf()").ok());

    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    state_dir_ =
        std::string(TUNER_PG_STATE_ROOT) + "/" + info->test_suite_name() + "." + info->name();
    fs::remove_all(state_dir_);
    fs::create_directories(state_dir_);
}

Session PgTestCluster::admin() {
    auto session = Session::connect(admin_url_, std::chrono::seconds(5), "test admin");
    if (!session) {
        ADD_FAILURE() << session.error().to_string();
        std::abort();
    }
    return std::move(*session);
}

std::string PgTestCluster::show(const std::string& name) {
    auto session = admin();
    auto rows = session.query("SELECT current_setting($1)", {name});
    EXPECT_TRUE(rows.ok()) << rows.error().to_string();
    return rows.ok() && !rows->empty() ? rows->front()[0].value_or("") : "";
}

std::optional<std::string> PgTestCluster::auto_conf(const std::string& name) {
    auto session = admin();
    auto rows = session.query(
        "SELECT setting FROM pg_file_settings WHERE sourcefile LIKE '%/postgresql.auto.conf' "
        "AND name = $1 ORDER BY seqno DESC LIMIT 1",
        {name});
    EXPECT_TRUE(rows.ok()) << rows.error().to_string();
    if (!rows.ok() || rows->empty()) return std::nullopt;
    return rows->front()[0];
}

void PgTestCluster::alter_system(const std::string& name, const std::string& value) {
    auto session = admin();
    auto literal = session.quote_literal(value);
    ASSERT_TRUE(literal.ok());
    const auto status = session.exec("ALTER SYSTEM SET " + name + " = " + *literal);
    ASSERT_TRUE(status.ok()) << status.error().to_string();
}

void PgTestCluster::reload() {
    ASSERT_TRUE(admin().exec("SELECT pg_reload_conf()").ok());
}

void PgTestCluster::run_script(const std::string& action) {
    const std::string command =
        std::string(TUNER_PG_CLUSTER_SCRIPT) + " " + action + " '" + dir_ + "'";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

void PgTestCluster::pause_server() {
    paused_ = true;
    run_script("pause");
}

void PgTestCluster::resume_server() {
    run_script("resume");
    paused_ = false;
}

void PgTestCluster::TearDown() {
    if (paused_) resume_server();
}

}  // namespace tuner::postgres::testing
