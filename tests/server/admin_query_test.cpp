// Query-string decoding of the admin listener.
#include <gtest/gtest.h>

#include "server/admin.hpp"

namespace tuner::server {
namespace {

TEST(AdminQuery, UrlDecodeTurnsEscapesAndPlusIntoCharacters) {
    EXPECT_EQ(url_decode("a%20b+c"), "a b c");
    EXPECT_EQ(url_decode("%41%42%43"), "ABC");
    EXPECT_EQ(url_decode("%2b%2B"), "++");  // an encoded plus stays a plus
    EXPECT_EQ(url_decode("%e2%9c%93"), "\xe2\x9c\x93");
    EXPECT_EQ(url_decode(""), "");
}

TEST(AdminQuery, UrlDecodeKeepsMalformedEscapesAsTheyAre) {
    EXPECT_EQ(url_decode("100%"), "100%");
    EXPECT_EQ(url_decode("%4"), "%4");
    EXPECT_EQ(url_decode("%zz1"), "%zz1");
    EXPECT_EQ(url_decode("a%4g"), "a%4g");
}

TEST(AdminQuery, ParseQuerySplitsPairsAndDecodesBothSides) {
    const auto q = parse_query("limit=10&since=2024-01-01T00%3A00&policy%20name=seed+formula");
    const std::map<std::string, std::string> expected = {
        {"limit", "10"}, {"since", "2024-01-01T00:00"}, {"policy name", "seed formula"}};
    EXPECT_EQ(q, expected);
}

TEST(AdminQuery, ParseQueryAcceptsFlagsEmptyPairsAndRepeats) {
    const auto q = parse_query("verbose&&a=1&a=2&empty=&=x");
    EXPECT_EQ(q.at("verbose"), "");
    EXPECT_EQ(q.at("a"), "2");  // the last one wins
    EXPECT_EQ(q.at("empty"), "");
    EXPECT_EQ(q.at(""), "x");
    EXPECT_EQ(q.size(), 4u);
    EXPECT_TRUE(parse_query("").empty());
}

}  // namespace
}  // namespace tuner::server

namespace tuner::server {
namespace {

AdminHeaders post(std::string content_type = "application/json") {
    return AdminHeaders{"POST", "127.0.0.1:9464", "", "", std::move(content_type)};
}

TEST(AdminBrowserGuard, PlainClientsPass) {
    EXPECT_FALSE(browser_refusal(post(), false));
    EXPECT_FALSE(browser_refusal(post("application/json; charset=utf-8"), false));
    EXPECT_FALSE(browser_refusal({"GET", "localhost:9464", "", "", ""}, false));
    EXPECT_FALSE(browser_refusal({"DELETE", "[::1]:9464", "", "", ""}, false));
    EXPECT_FALSE(browser_refusal({"GET", "127.0.0.1", "", "", ""}, false));
}

TEST(AdminBrowserGuard, FormAndTextPostsGet415) {
    for (const char* type : {"text/plain", "application/x-www-form-urlencoded",
                             "multipart/form-data; boundary=x", ""}) {
        const auto refused = browser_refusal(post(type), false);
        ASSERT_TRUE(refused) << type;
        EXPECT_EQ(refused->status, 415) << type;
    }
}

TEST(AdminBrowserGuard, CrossSiteOriginOrFetchSiteGets403) {
    auto h = post();
    h.origin = "http://evil.example";
    ASSERT_TRUE(browser_refusal(h, false));
    EXPECT_EQ(browser_refusal(h, false)->status, 403);
    EXPECT_EQ(browser_refusal(h, true)->status, 403) << "with a token too";
    h.origin = "null";
    EXPECT_EQ(browser_refusal(h, false)->status, 403);
    h.origin = "http://127.0.0.1:9464";
    EXPECT_FALSE(browser_refusal(h, false));
    h.origin = "";
    h.sec_fetch_site = "cross-site";
    EXPECT_EQ(browser_refusal(h, false)->status, 403);
    h.sec_fetch_site = "same-site";
    EXPECT_EQ(browser_refusal(h, false)->status, 403);
    h.sec_fetch_site = "same-origin";
    EXPECT_FALSE(browser_refusal(h, false));
    // Reading is not changing: a GET with a foreign Origin passes the CSRF check.
    EXPECT_FALSE(
        browser_refusal({"GET", "127.0.0.1:9464", "http://evil.example", "cross-site", ""}, false));
}

TEST(AdminBrowserGuard, ARebindingHostIsRefusedUnlessATokenIsRequired) {
    const AdminHeaders rebound{"GET", "evil.example:9464", "", "", ""};
    ASSERT_TRUE(browser_refusal(rebound, false));
    EXPECT_EQ(browser_refusal(rebound, false)->status, 403);
    EXPECT_FALSE(browser_refusal(rebound, true)) << "a token stops the page anyway";
    EXPECT_EQ(browser_refusal({"GET", "", "", "", ""}, false)->status, 403) << "no Host";
}

TEST(AdminBrowserGuard, HostsThatAreLiteralsOrLocalhost) {
    EXPECT_TRUE(is_literal_or_localhost("127.0.0.1"));
    EXPECT_TRUE(is_literal_or_localhost("10.1.2.3:9464"));
    EXPECT_TRUE(is_literal_or_localhost("[::1]:9464"));
    EXPECT_TRUE(is_literal_or_localhost("LOCALHOST:80"));
    EXPECT_FALSE(is_literal_or_localhost("localhost.evil.example"));
    EXPECT_FALSE(is_literal_or_localhost("127.0.0.1.nip.io"));
    EXPECT_FALSE(is_literal_or_localhost("[::1"));
    EXPECT_FALSE(is_literal_or_localhost(""));
}

}  // namespace
}  // namespace tuner::server
