// The status page as GET / answers it: HTML with a fresh nonce on its only <style> and <script>
// that the Content-Security-Policy names, the headers that keep it to itself, nothing loaded
// from elsewhere, no API data inserted as HTML, and a size of a few KB.
#include "tuner/admin/status_page.hpp"

#include <regex>
#include <set>

#include <gtest/gtest.h>

namespace tuner {
namespace {

std::string header(const server::AdminResponse& r, const std::string& name) {
    for (const auto& [k, v] : r.headers)
        if (k == name) return v;
    return {};
}

TEST(StatusPage, NonceInThePolicyAndOnTheInlineStyleAndScript) {
    const auto r = status_page_response("0123456789abcdef0123456789abcdef");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
    EXPECT_EQ(r.body.find("{{NONCE}}"), std::string::npos);
    EXPECT_NE(r.body.find("<script nonce=\"0123456789abcdef0123456789abcdef\">"),
              std::string::npos);
    EXPECT_NE(r.body.find("<style nonce=\"0123456789abcdef0123456789abcdef\">"), std::string::npos);
    EXPECT_EQ(header(r, "Content-Security-Policy"),
              "default-src 'none'; script-src 'nonce-0123456789abcdef0123456789abcdef'; "
              "style-src 'nonce-0123456789abcdef0123456789abcdef'; connect-src 'self'; "
              "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    EXPECT_EQ(header(r, "X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(header(r, "X-Frame-Options"), "DENY");
    EXPECT_EQ(header(r, "Referrer-Policy"), "no-referrer");
}

TEST(StatusPage, SmallSelfContainedAndNeverParsesDataAsHtml) {
    const std::string_view page = status_page_template();
    EXPECT_LT(page.size(), 16u * 1024);
    EXPECT_EQ(page.find("<script src"), std::string::npos);
    EXPECT_EQ(page.find("<link"), std::string::npos);
    EXPECT_EQ(page.find("url("), std::string::npos);
    EXPECT_EQ(page.find("innerHTML"), std::string::npos);
    EXPECT_EQ(page.find("outerHTML"), std::string::npos);
    EXPECT_EQ(page.find("insertAdjacentHTML"), std::string::npos);
    EXPECT_EQ(page.find("document.write"), std::string::npos);
    EXPECT_EQ(page.find("eval("), std::string::npos);
    // The token lives in sessionStorage and goes out as a header, never in a URL.
    EXPECT_NE(page.find("sessionStorage"), std::string::npos);
    EXPECT_NE(page.find("'Bearer '"), std::string::npos);
    EXPECT_EQ(page.find("localStorage"), std::string::npos);
    EXPECT_EQ(page.find("?token"), std::string::npos);
    // Exactly one inline script and one style: the two the nonce covers.
    const std::string text(page);
    const std::regex script("<script");
    EXPECT_EQ(std::distance(std::sregex_iterator(text.begin(), text.end(), script),
                            std::sregex_iterator()),
              1);
}

// A token in the address's fragment (#token=...) goes to sessionStorage before the first
// request and leaves the address bar at once; nothing else of the address is read for it.
TEST(StatusPage, TakesATokenFromTheFragmentAndRemovesItFromTheAddress) {
    const std::string page(status_page_template());
    EXPECT_NE(page.find("/^#token=([^&#]+)$/.exec(location.hash)"), std::string::npos);
    EXPECT_NE(page.find("history.replaceState(null, '', location.pathname + location.search)"),
              std::string::npos);
    const auto taken = page.find("\ntokenFromFragment();");
    ASSERT_NE(taken, std::string::npos);
    EXPECT_LT(taken, page.find("\nrefresh();"));
    // No binding of the script hides window.history (replaceState would throw).
    EXPECT_FALSE(std::regex_search(page, std::regex("(const|let|var) history\\b")));
    EXPECT_EQ(page.find("URLSearchParams"), std::string::npos);
}

// What a test reads from the rendered page (tests/integration/status_page_browser_test.cpp):
// each value shown keeps its number in a data- attribute, each graph its sample count and last
// point, and the page counts the refreshes it drew.
TEST(StatusPage, EveryShownValueKeepsItsNumberInADataAttribute) {
    const std::string page(status_page_template());
    for (const char* id : {"workers-ready", "workers-target", "rps"}) {
        EXPECT_NE(page.find("$('" + std::string(id) + "').dataset.value = raw("), std::string::npos)
            << id;
    }
    for (const char* id : {"latency", "queue", "memory", "cpu"}) {
        EXPECT_NE(page.find("Object.assign($('" + std::string(id) + "').dataset, {"),
                  std::string::npos)
            << id;
    }
    EXPECT_NE(page.find("svg.dataset.samples = rows.length"), std::string::npos);
    EXPECT_NE(page.find("svg.dataset.last = "), std::string::npos);
    EXPECT_NE(page.find("$('updated').dataset.refreshes = ++refreshes"), std::string::npos);
}

TEST(StatusPage, AFreshNonceEachTime) {
    std::set<std::string> seen;
    for (int i = 0; i < 20; ++i) {
        const std::string nonce = make_csp_nonce();
        EXPECT_TRUE(std::regex_match(nonce, std::regex("[0-9a-f]{32}"))) << nonce;
        seen.insert(nonce);
    }
    EXPECT_EQ(seen.size(), 20u);
}

}  // namespace
}  // namespace tuner
