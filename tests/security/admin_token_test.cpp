// admin.token_file is reread on SIGHUP: a leaked token is replaced without a restart. Over a real
// socket to the real binary: after the file changes and SIGHUP, the old token gets 401 and the
// new one 200; when the file then cannot be read, the token in use stays (event= in the log).
#include <signal.h>

#include <fstream>

#include <gtest/gtest.h>

#include "tests/integration/tuner_test_support.hpp"
#include "tests/support/tunerd_process.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;

// GET /health with this bearer token: its status, 0 when there was no answer.
int health_status_with(const TunerdProcess& tunerd, const std::string& token) {
    const auto r =
        http_request(tunerd.admin_address(),
                     {"GET", "/health", {}, {{"Authorization", "Bearer " + token}}}, 10s);
    return r.ok() ? r->status : 0;
}

// How often `text` appears in the daemon's log.
std::size_t log_count(const TunerdProcess& tunerd, const std::string& text) {
    const std::string log = tunerd.log();
    std::size_t n = 0;
    for (auto at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++n;
    return n;
}

TEST(AdminToken, SighupRereadsTheTokenFileAndKeepsTheTokenWhenTheFileIsUnreadable) {
    TempDir dir;
    const std::string token_file = dir.path() + "/admin.token";
    std::ofstream(token_file) << "old-token\n";
    TunerdOptions options{.config =
                              "[workers]\nmode = \"fixed\"\ncount = 1\n[admin]\ntoken_file = \"" +
                              token_file + "\"\n"};
    options.admin_token = "old-token";  // the harness's readiness check sends it
    TunerdProcess tunerd(options);
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    ASSERT_EQ(health_status_with(tunerd, "old-token"), 200);
    ASSERT_EQ(health_status_with(tunerd, "new-token"), 401);

    std::ofstream(token_file, std::ios::trunc) << "new-token\n";
    tunerd.signal(SIGHUP);
    ASSERT_TRUE(
        eventually([&] { return log_count(tunerd, "event=admin_token_reloaded") == 1; }, 10s))
        << tunerd.log();
    EXPECT_EQ(health_status_with(tunerd, "old-token"), 401) << "the replaced token still works";
    EXPECT_EQ(health_status_with(tunerd, "new-token"), 200);

    // The file gone: the daemon keeps the token it has rather than opening the API or failing.
    ASSERT_EQ(std::remove(token_file.c_str()), 0);
    tunerd.signal(SIGHUP);
    ASSERT_TRUE(
        eventually([&] { return log_count(tunerd, "event=admin_token_reload_failed") == 1; }, 10s))
        << tunerd.log();
    EXPECT_NE(tunerd.log().find("keeping the previous token"), std::string::npos) << tunerd.log();
    EXPECT_EQ(health_status_with(tunerd, "new-token"), 200);
    EXPECT_EQ(health_status_with(tunerd, "old-token"), 401);
    EXPECT_TRUE(tunerd.running()) << tunerd.log();
}

}  // namespace
}  // namespace tuner::test
