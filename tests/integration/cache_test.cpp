// The front's micro-cache ([cache]) against the real binary and the demo app's /cache routes
// (their query sets Cache-Control, Set-Cookie, Vary, a delay; /cache/count says how many
// requests reached the app): HIT after the first MISS, 50 concurrent misses reaching the app
// once, a hit compressed for a client that accepts gzip, what is never stored, credentials, Vary,
// the default TTL, clear, stale-if-error, and the admin counters against the client's own count of
// X-Cache-Status.
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/tuner_test_support.hpp"
#include "tests/support/decode.hpp"
#include "tests/support/tunerd_process.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;

class Cache : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        tunerd_ = new TunerdProcess({.config = "[cache]\nsize = \"16MB\"\ndefault_ttl = \"30s\"\n"
                                               "paths = [\"/cache/default/\"]\n"
                                               "stale_if_error = \"30s\"\n"
                                               "[workers]\nmode = \"fixed\"\ncount = 1\n"
                                               "threads = 8\n"});
        started_ = tunerd_->start().ok();
    }
    static void TearDownTestSuite() {
        delete tunerd_;
        tunerd_ = nullptr;
    }
    void SetUp() override { ASSERT_TRUE(started_) << tunerd_->log(); }

    // One request on a fresh connection; its X-Cache-Status is tallied for the last test.
    static HttpResponse request(const std::string& target,
                                std::map<std::string, std::string> headers = {},
                                const std::string& method = "GET") {
        auto res =
            http_request(tunerd_->public_address(), {method, target, {}, std::move(headers)}, 10s);
        if (!res.ok()) {
            ADD_FAILURE() << target << ": " << res.error().to_string();
            return {};
        }
        std::lock_guard lock(tally_mutex_);
        ++tally_[res->header("X-Cache-Status")];
        return *res;
    }
    static std::string status_of(const std::string& target,
                                 std::map<std::string, std::string> headers = {}) {
        return request(target, std::move(headers)).header("X-Cache-Status");
    }
    // Requests to /cache routes that reached the app.
    static long upstream() {
        const auto res = request("/cache/count");
        const auto json = nlohmann::json::parse(res.body, nullptr, false);
        return json.is_object() ? json.value("requests", -1L) : -1L;
    }
    static nlohmann::json stats() {
        auto s = tunerd_->admin_json("/performance/cache/stats");
        return s.ok() ? *s : nlohmann::json();
    }

    static TunerdProcess* tunerd_;
    static bool started_;
    static std::mutex tally_mutex_;
    static std::map<std::string, long> tally_;
};

TunerdProcess* Cache::tunerd_ = nullptr;
bool Cache::started_ = false;
std::mutex Cache::tally_mutex_;
std::map<std::string, long> Cache::tally_;

TEST_F(Cache, RepeatedGetsHitAfterTheFirstMiss) {
    const long before = upstream();
    const auto first = request("/cache?max_age=60&id=repeat");
    EXPECT_EQ(first.status, 200);
    EXPECT_EQ(first.header("X-Cache-Status"), "MISS");
    for (int i = 0; i < 3; ++i) {
        const auto again = request("/cache?max_age=60&id=repeat");
        EXPECT_EQ(again.status, 200);
        EXPECT_EQ(again.header("X-Cache-Status"), "HIT");
        EXPECT_EQ(again.body, first.body);  // the app's counter in it did not move
        EXPECT_FALSE(again.header("Age").empty());
        EXPECT_EQ(again.header("Cache-Control"), "max-age=60");
    }
    EXPECT_EQ(upstream() - before, 1);
    // A HEAD is answered from the GET's entry: its header, no body.
    const auto head = request("/cache?max_age=60&id=repeat", {}, "HEAD");
    EXPECT_EQ(head.header("X-Cache-Status"), "HIT");
    EXPECT_EQ(head.header("Content-Length"), std::to_string(first.body.size()));
    EXPECT_TRUE(head.body.empty());
    // Another query is another key.
    EXPECT_EQ(status_of("/cache?max_age=60&id=repeat&x=1"), "MISS");
}

TEST_F(Cache, AHitIsCompressedForAClientThatAcceptsIt) {
    // Stored from a client without Accept-Encoding: the entry is the identity body; a client
    // that accepts gzip gets the hit compressed, and it decodes to the same bytes.
    const std::string target = "/cache?max_age=60&size=4000&id=coded";
    const auto first = request(target);
    EXPECT_EQ(first.header("X-Cache-Status"), "MISS");
    EXPECT_TRUE(first.header("Content-Encoding").empty());
    const auto hit = request(target, {{"Accept-Encoding", "gzip"}});
    EXPECT_EQ(hit.header("X-Cache-Status"), "HIT");
    EXPECT_EQ(hit.header("Content-Encoding"), "gzip");
    EXPECT_EQ(hit.header("Vary"), "Accept-Encoding");
    EXPECT_LT(hit.body.size(), first.body.size() / 4);
    const auto decoded = decode_body("gzip", hit.body);
    ASSERT_TRUE(decoded.ok()) << decoded.error().to_string();
    EXPECT_EQ(*decoded, first.body);
    EXPECT_EQ(request(target).body, first.body) << "and a plain client still gets it plain";
}

TEST_F(Cache, TheCapacityIsInTheStatsAndWhatIsNotHeldIsInTheBudget) {
    // No memory pressure here: the capacity is cache.size, and the memory budget keeps room for
    // what the cache does not hold yet (what it holds is in tunerd's RSS).
    const auto s = stats();
    EXPECT_EQ(s.value("capacity", 0ULL), 16ULL << 20);
    EXPECT_EQ(s.value("size", 0ULL), 16ULL << 20);
    // (the budget is a control cycle's: the first one may still be ahead, 1 s at most)
    auto perf = tunerd_->admin_json("/performance");
    for (int i = 0; i < 30 && perf.ok() && (*perf)["budget"].value("cache_room_bytes", 0ULL) == 0;
         ++i) {
        std::this_thread::sleep_for(100ms);
        perf = tunerd_->admin_json("/performance");
    }
    ASSERT_TRUE(perf.ok());
    const auto room = (*perf)["budget"].value("cache_room_bytes", 0ULL);
    EXPECT_GT(room, 0ULL);
    EXPECT_LE(room, 16ULL << 20);
    EXPECT_NE((*perf)["budget"].value("reason", "").find("cache room"), std::string::npos)
        << (*perf)["budget"];
}

TEST_F(Cache, FiftyConcurrentMissesReachTheAppOnce) {
    // The route takes 200 ms, so the 50 requests overlap: the first fills, 49 wait for it.
    const long before = upstream();
    std::vector<std::future<HttpResponse>> answers;
    for (int i = 0; i < 50; ++i) {
        answers.push_back(std::async(std::launch::async,
                                     [] { return request("/cache?max_age=60&ms=200&id=burst"); }));
    }
    std::map<std::string, int> statuses;
    std::set<std::string> bodies;
    for (auto& a : answers) {
        const auto res = a.get();
        EXPECT_EQ(res.status, 200);
        ++statuses[res.header("X-Cache-Status")];
        bodies.insert(res.body);
    }
    EXPECT_EQ(upstream() - before, 1);
    EXPECT_EQ(statuses["MISS"], 1);
    EXPECT_EQ(statuses["HIT"], 49);
    EXPECT_EQ(bodies.size(), 1u);
    EXPECT_GE(stats().value("collapsed", 0), 1);
}

TEST_F(Cache, WhatIsNeverStoredAndWhatBypasses) {
    for (const char* target : {"/cache?max_age=60&no_store=1", "/cache?max_age=60&private=1",
                               "/cache?max_age=60&public=1&cookie=1", "/cache?id=no-freshness"}) {
        const long before = upstream();
        EXPECT_EQ(status_of(target), "MISS") << target;
        EXPECT_EQ(status_of(target), "MISS") << target;
        EXPECT_EQ(upstream() - before, 2) << target;
    }
    // A request with credentials is not answered from a private entry.
    EXPECT_EQ(status_of("/cache?max_age=60&id=creds"), "MISS");
    EXPECT_EQ(status_of("/cache?max_age=60&id=creds"), "HIT");
    const long before = upstream();
    EXPECT_EQ(status_of("/cache?max_age=60&id=creds", {{"Cookie", "session=1"}}), "BYPASS");
    EXPECT_EQ(status_of("/cache?max_age=60&id=creds", {{"Authorization", "Bearer x"}}), "BYPASS");
    EXPECT_EQ(upstream() - before, 2);
    // A public answer is stored even for a request with a Cookie, and answers the next ones.
    EXPECT_EQ(status_of("/cache?max_age=60&public=1&id=pub", {{"Cookie", "session=1"}}), "BYPASS");
    EXPECT_EQ(status_of("/cache?max_age=60&public=1&id=pub", {{"Cookie", "session=2"}}), "HIT");
    EXPECT_EQ(status_of("/cache?max_age=60&public=1&id=pub"), "HIT");
    // The client's no-cache skips the lookup, but its answer refreshes the entry.
    EXPECT_EQ(status_of("/cache?max_age=60&id=refresh"), "MISS");
    const auto fresh = request("/cache?max_age=60&id=refresh", {{"Cache-Control", "no-cache"}});
    EXPECT_EQ(fresh.header("X-Cache-Status"), "BYPASS");
    const auto hit = request("/cache?max_age=60&id=refresh");
    EXPECT_EQ(hit.header("X-Cache-Status"), "HIT");
    EXPECT_EQ(hit.body, fresh.body);
    const auto post = request("/echo", {{"Content-Type", "text/plain"}}, "POST");
    EXPECT_EQ(post.header("X-Cache-Status"), "BYPASS");
}

TEST_F(Cache, VarySchemeAndTheDefaultTtl) {
    EXPECT_EQ(status_of("/cache?max_age=60&vary=1", {{"X-Variant", "a"}}), "MISS");
    EXPECT_EQ(status_of("/cache?max_age=60&vary=1", {{"X-Variant", "a"}}), "HIT");
    EXPECT_EQ(status_of("/cache?max_age=60&vary=1", {{"X-Variant", "b"}}), "MISS");
    EXPECT_EQ(status_of("/cache?max_age=60&vary=1", {{"X-Variant", "b"}}), "HIT");
    EXPECT_EQ(status_of("/cache?max_age=60&vary=1", {{"X-Variant", "a"}}), "HIT");
    // The scheme a trusted proxy (here: 127.0.0.1, trusted by default) forwarded is in the key.
    EXPECT_EQ(status_of("/cache?max_age=60&id=scheme"), "MISS");
    EXPECT_EQ(status_of("/cache?max_age=60&id=scheme", {{"X-Forwarded-Proto", "https"}}), "MISS");
    EXPECT_EQ(status_of("/cache?max_age=60&id=scheme", {{"X-Forwarded-Proto", "https"}}), "HIT");
    EXPECT_EQ(status_of("/cache?max_age=60&id=scheme"), "HIT");
    // default_ttl only under the configured paths, for answers that say nothing of freshness.
    EXPECT_EQ(status_of("/cache/default/page"), "MISS");
    EXPECT_EQ(status_of("/cache/default/page"), "HIT");
    EXPECT_EQ(status_of("/cache/other/page"), "MISS");
    EXPECT_EQ(status_of("/cache/other/page"), "MISS");
}

TEST_F(Cache, ClearEmptiesIt) {
    EXPECT_EQ(status_of("/cache?max_age=60&id=clear"), "MISS");
    EXPECT_EQ(status_of("/cache?max_age=60&id=clear"), "HIT");
    EXPECT_GT(stats().value("entries", 0), 0);
    // A POST without a JSON content type is refused (the admin API's browser guard).
    auto refused = tunerd_->admin_request({"POST", "/performance/cache/clear", {}, {}});
    ASSERT_TRUE(refused.ok());
    EXPECT_EQ(refused->status, 415) << refused->body;
    auto cleared = tunerd_->admin_request(
        {"POST", "/performance/cache/clear", "{}", {{"Content-Type", "application/json"}}});
    ASSERT_TRUE(cleared.ok());
    EXPECT_EQ(cleared->status, 200) << cleared->body;
    EXPECT_EQ(stats().value("entries", -1), 0);
    EXPECT_EQ(stats().value("bytes", -1), 0);
    EXPECT_EQ(status_of("/cache?max_age=60&id=clear"), "MISS");
    // tunerctl does the same, and shows the counters.
    EXPECT_EQ(status_of("/cache?max_age=60&id=clear"), "HIT");
    const auto ctl_stats =
        run_command({TUNERCTL_BINARY, "cache", "--config", tunerd_->config_path()});
    EXPECT_EQ(ctl_stats.exit_status, 0) << ctl_stats.output;
    EXPECT_NE(ctl_stats.output.find("1 entries; hit ratio"), std::string::npos) << ctl_stats.output;
    const auto ctl_clear =
        run_command({TUNERCTL_BINARY, "cache", "clear", "--config", tunerd_->config_path()});
    EXPECT_EQ(ctl_clear.exit_status, 0) << ctl_clear.output;
    EXPECT_EQ(ctl_clear.output.rfind("cache cleared: 1 entries, ", 0), 0u) << ctl_clear.output;
    EXPECT_EQ(status_of("/cache?max_age=60&id=clear"), "MISS");
}

TEST_F(Cache, AnExpiredEntryAnswersWhileTheAppFails) {
    const auto first = request("/cache?max_age=1&id=stale");
    EXPECT_EQ(first.header("X-Cache-Status"), "MISS");
    EXPECT_EQ(request("/cache/fail?on=1").status, 200);
    std::this_thread::sleep_for(1100ms);  // the entry's second of freshness
    const auto stale = request("/cache?max_age=1&id=stale");
    EXPECT_EQ(stale.status, 200);
    EXPECT_EQ(stale.header("X-Cache-Status"), "STALE");
    EXPECT_EQ(stale.body, first.body);
    // Without an entry the app's 500 goes through.
    const auto failing = request("/cache?max_age=1&id=never-stored");
    EXPECT_EQ(failing.status, 500);
    EXPECT_EQ(failing.header("X-Cache-Status"), "MISS");
    EXPECT_EQ(request("/cache/fail?on=0").status, 200);
    // The app is back: the expired entry is replaced.
    const auto renewed = request("/cache?max_age=1&id=stale");
    EXPECT_EQ(renewed.header("X-Cache-Status"), "EXPIRED");
    EXPECT_NE(renewed.body, first.body);
}

// The counters against the client's own tally of every request this daemon saw (ctest runs each
// test in a process of its own: then only this test's).
TEST_F(Cache, TheCountersAgreeWithWhatTheClientsSaw) {
    for (int i = 0; i < 3; ++i) request("/cache?max_age=60&id=tally");
    request("/cache?max_age=60&id=tally", {{"Cookie", "a=1"}});
    request("/cache?no_store=1&id=tally");
    request("/echo", {{"Content-Type", "text/plain"}}, "POST");
    const auto s = stats();
    std::lock_guard lock(tally_mutex_);
    EXPECT_EQ(tally_[""], 0) << "responses without X-Cache-Status";
    EXPECT_EQ(s.value("hits", -1), tally_["HIT"]) << s.dump();
    EXPECT_EQ(s.value("misses", -1), tally_["MISS"]) << s.dump();
    EXPECT_EQ(s.value("expired", -1), tally_["EXPIRED"]) << s.dump();
    EXPECT_EQ(s.value("stale", -1), tally_["STALE"]) << s.dump();
    EXPECT_EQ(s.value("bypasses", -1), tally_["BYPASS"]) << s.dump();
    EXPECT_GT(s.value("stores", 0), 0);
    EXPECT_TRUE(s.value("enabled", false));
    EXPECT_EQ(s.value("capacity", 0L), 16L << 20);
    // The same in /performance and /metrics.
    const auto perf = tunerd_->admin_json("/performance");
    ASSERT_TRUE(perf.ok());
    EXPECT_EQ((*perf)["front"]["cache"]["hits"], s["hits"]);
    EXPECT_EQ((*perf)["limits"]["self"]["cache_bytes"], s["bytes"]);
    EXPECT_EQ(tunerd_->metric("tunerd_cache_entries").value_or(-1), s.value("entries", -2.0));
    EXPECT_EQ(tunerd_->metric("tunerd_cache_requests_total").value_or(-1), s.value("hits", -2.0));
    // Hits are the front's own answers: not arrivals the pool is sized for.
    const long to_workers = tally_["MISS"] + tally_["EXPIRED"] + tally_["STALE"] + tally_["BYPASS"];
    EXPECT_LE(tunerd_->metric("tunerd_request_duration_seconds_count").value_or(1e9),
              static_cast<double>(to_workers));
}

}  // namespace
}  // namespace tuner::test
