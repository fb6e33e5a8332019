// The admin listener against what a web page in a browser on the same host can send: a form or
// text/plain POST, a cross-site Origin, a DNS-rebinding Host. Over a real socket to the real
// binary: the attempts are refused (403/415) and change nothing; tunerctl and a JSON POST work.
#include <gtest/gtest.h>

#include "tests/integration/tuner_test_support.hpp"
#include "tests/support/tunerd_process.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;

const std::string kTwoWorkers = "[workers]\nmode = \"adaptive\"\nmin = 1\nmax = 4\n";

TEST(AdminBrowser, CrossSiteAndRebindingAttemptsAreRefusedAndChangeNothing) {
    TunerdProcess tunerd({.config = kTwoWorkers});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const std::string body = "{\"workers\": 3}";
    // The report's request: a page posts text/plain with its own Origin.
    auto text =
        tunerd.admin_request({"POST",
                              "/workers/target",
                              body,
                              {{"Content-Type", "text/plain"}, {"Origin", "http://evil.example"}}});
    ASSERT_TRUE(text.ok()) << text.error().to_string();
    EXPECT_EQ(text->status, 403) << text->body;
    auto form = tunerd.admin_request(
        {"POST", "/workers/target", body, {{"Content-Type", "application/x-www-form-urlencoded"}}});
    ASSERT_TRUE(form.ok());
    EXPECT_EQ(form->status, 415) << form->body;
    auto fetch_site = tunerd.admin_request(
        {"POST",
         "/performance/optimize",
         {},
         {{"Content-Type", "application/json"}, {"Sec-Fetch-Site", "cross-site"}}});
    ASSERT_TRUE(fetch_site.ok());
    EXPECT_EQ(fetch_site->status, 403) << fetch_site->body;
    // DNS rebinding: same origin for the browser, but the Host names the attacker's domain.
    auto rebound = tunerd.admin_request(
        {"POST",
         "/workers/target",
         body,
         {{"Content-Type", "application/json"}, {"Host", "evil.example:9464"}}});
    ASSERT_TRUE(rebound.ok());
    EXPECT_EQ(rebound->status, 403) << rebound->body;
    auto read = tunerd.admin_request({"GET", "/performance", {}, {{"Host", "evil.example"}}});
    ASSERT_TRUE(read.ok());
    EXPECT_EQ(read->status, 403) << "a rebinding page cannot read the report either";

    auto workers = tunerd.admin_json("/workers");
    ASSERT_TRUE(workers);
    EXPECT_TRUE((*workers)["manual_target"].is_null()) << workers->dump();
    EXPECT_NE(tunerd.log().find("event=admin_refused"), std::string::npos);

    // What a user does still works: a JSON POST, a body-less one with the type, localhost.
    auto pinned = pin_workers(tunerd, 3);
    ASSERT_TRUE(pinned.ok());
    EXPECT_EQ(pinned->status, 200) << pinned->body;
    auto localhost = tunerd.admin_request({"GET", "/health", {}, {{"Host", "localhost:9464"}}});
    ASSERT_TRUE(localhost.ok());
    EXPECT_EQ(localhost->status, 200);
    auto released = release_workers(tunerd);
    ASSERT_TRUE(released.ok());
    EXPECT_EQ(released->status, 200) << released->body;
}

}  // namespace
}  // namespace tuner::test
