// Every admin answer is valid JSON, whatever bytes reached it from outside: a query value that is
// not UTF-8 (quoted back in the error), a control character in the path, a worker that wrote a
// non-UTF-8 byte to stderr before it crashed (shown in /health). Over a real socket to the real
// binary: the right status, a body a strict JSON parser accepts, and the daemon lives.
#include <signal.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/integration/tuner_test_support.hpp"
#include "tests/support/tunerd_process.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// The body parsed by a strict parser (nlohmann rejects strings that are not UTF-8), or null.
nlohmann::json strict_json(const Result<HttpResponse>& r) {
    if (!r.ok()) return nullptr;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

TEST(AdminJson, QueryAndPathBytesThatAreNotUtf8GetTheirStatusWithValidJson) {
    TunerdProcess tunerd({.config = "[workers]\nmode = \"fixed\"\ncount = 1\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();

    // The report's request: it used to answer 500 (nlohmann's dump threw on the 0xFF byte).
    const auto bad_limit =
        tunerd.admin_request({"GET", "/performance/decisions?limit=%ff", {}, {}});
    ASSERT_TRUE(bad_limit.ok()) << bad_limit.error().to_string();
    EXPECT_EQ(bad_limit->status, 400) << bad_limit->body;
    const auto limit_json = strict_json(bad_limit);
    ASSERT_TRUE(limit_json.is_object()) << "not valid JSON: " << bad_limit->body;
    EXPECT_THAT(limit_json["error"].get<std::string>(), HasSubstr("\"" + kReplacement + "\""));

    const auto since = tunerd.admin_request({"GET", "/performance/decisions?since=%fe%ff", {}, {}});
    ASSERT_TRUE(since.ok());
    EXPECT_EQ(since->status, 400) << since->body;
    EXPECT_TRUE(strict_json(since).is_object()) << "not valid JSON: " << since->body;

    const auto control = tunerd.admin_request({"GET", "/%01", {}, {}});
    ASSERT_TRUE(control.ok());
    EXPECT_EQ(control->status, 404) << control->body;
    EXPECT_TRUE(strict_json(control).is_object()) << "not valid JSON: " << control->body;

    const auto bad_path = tunerd.admin_request({"GET", "/%ff%c3", {}, {}});
    ASSERT_TRUE(bad_path.ok());
    EXPECT_EQ(bad_path->status, 404) << bad_path->body;
    EXPECT_TRUE(strict_json(bad_path).is_object()) << "not valid JSON: " << bad_path->body;

    EXPECT_TRUE(tunerd.running()) << tunerd.log();
    EXPECT_EQ(tunerd.get("/")->status, 200);
}

TEST(AdminJson, AWorkersNonUtf8StderrBeforeItCrashedLeavesHealthValidJson) {
    // A worker that writes 0xFF to stderr, then serves as the demo worker until the test kills
    // it: its stderr tail is the crash report /health shows.
    const std::string config = std::string("[workers]\nmode = \"fixed\"\ncount = 1\ncommand = [") +
                               R"("/bin/sh", "-c", 'printf "\377 oops\n" >&2; )" +
                               R"(exec "$0" demo-worker --socket "$1"', ")" + TUNERD_BINARY +
                               R"(", "{socket}"])" + "\n";
    TunerdProcess tunerd({.config = config});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const auto workers = tunerd.ready_worker_pids();
    ASSERT_EQ(workers.size(), 1u) << tunerd.admin_dump("/workers");
    // Its stderr line is read before the crash is reaped: wait until the log shows it.
    ASSERT_TRUE(eventually([&] { return tunerd.log().find(" oops") != std::string::npos; }, 10s))
        << tunerd.log();
    ASSERT_EQ(::kill(workers.front(), SIGKILL), 0);

    nlohmann::json health;
    Result<HttpResponse> answer = make_error("health", "not asked yet");
    ASSERT_TRUE(eventually(
        [&] {
            answer = tunerd.admin_request({"GET", "/health", {}, {}});
            health = strict_json(answer);
            return health.is_object() && !health["workers"]["last_crash"].is_null();
        },
        10s))
        << (answer.ok() ? std::to_string(answer->status) + " " + answer->body
                        : answer.error().to_string());
    // /health's own status (ok or degraded), not the 500 of a handler that threw.
    EXPECT_TRUE(answer->status == 200 || answer->status == 503) << answer->status;
    const auto& stderr_tail = health["workers"]["last_crash"]["stderr"];
    ASSERT_TRUE(stderr_tail.is_array()) << health.dump(2);
    ASSERT_FALSE(stderr_tail.empty()) << health.dump(2);
    EXPECT_EQ(stderr_tail.front(), kReplacement + " oops") << health.dump(2);
    EXPECT_TRUE(tunerd.running()) << tunerd.log();
}

}  // namespace
}  // namespace tuner::test
