// The throwaway PostgreSQL cluster that the ctest fixture started (scripts/pg-test-cluster), as the
// suites see it: its connection file and password, an admin session, pause/resume, a fresh state
// directory per test.
#pragma once

#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "tuner/postgres/session.hpp"

namespace tuner::postgres::testing {

class PgTestCluster : public ::testing::Test {
protected:
    // Fails the test (with the reason) when the fixture found no PostgreSQL or did not run. Resets
    // every ALTER SYSTEM setting and gives the test a state dir.
    void SetUp() override;
    // Starts the server again if a failed test left it paused.
    void TearDown() override;

    // A new admin session (fails the test when it cannot connect).
    Session admin();
    // SHOW name, from a new connection (so it sees what a new backend gets).
    std::string show(const std::string& name);
    // postgresql.auto.conf's value for name, nullopt when absent.
    std::optional<std::string> auto_conf(const std::string& name);
    void alter_system(const std::string& name, const std::string& value);
    void reload();
    void pause_server();
    void resume_server();

    std::string dir_;             // the cluster's directory
    std::string admin_url_file_;  // DIR/admin.url: postgresql://postgres:<password>@127.0.0.1:port
    std::string admin_url_;
    std::string password_;
    std::string state_dir_;  // fresh per test

private:
    void run_script(const std::string& action);
    bool paused_ = false;
};

// The whole text of a file ("" when missing).
std::string read_text(const std::string& path);

}  // namespace tuner::postgres::testing
