// The micro-cache: its pure rules (Cache-Control, HTTP dates, Vary, what a request may do, what a
// response may be stored as, keys, the answer's header) and its store (LRU, the byte and entry
// bounds, capacity changes, collapsed fills and their waiters).
#include "server/micro_cache.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tuner::server {
namespace {

using namespace std::chrono_literals;
using cache::Status;
using ::testing::HasSubstr;
namespace http = boost::beast::http;

http::fields fields(std::initializer_list<std::pair<std::string, std::string>> list) {
    http::fields f;
    for (const auto& [name, value] : list) f.insert(name, value);
    return f;
}

CacheConfig config(std::uint64_t size = 1 << 20) {
    CacheConfig c;
    c.size_bytes = size;
    return c;
}

// ---- Cache-Control --------------------------------------------------------------------------

TEST(CacheControl, ReadsTheDirectivesCaseInsensitively) {
    const auto cc = cache::parse_cache_control("Public, MAX-AGE=60, s-maxage=\"30\", no-store");
    EXPECT_TRUE(cc.is_public);
    EXPECT_TRUE(cc.no_store);
    EXPECT_EQ(cc.max_age, 60);
    EXPECT_EQ(cc.s_maxage, 30);
    EXPECT_FALSE(cc.is_private);
}

TEST(CacheControl, NoCacheWithAFieldListCountsAsNoCache) {
    const auto cc = cache::parse_cache_control("no-cache=\"Set-Cookie, X-Foo\", max-age=5");
    EXPECT_TRUE(cc.no_cache);
    EXPECT_EQ(cc.max_age, 5);  // the comma inside the quotes did not split the list
}

TEST(CacheControl, AnInvalidMaxAgeIsZeroAndAHugeOneIsCapped) {
    EXPECT_EQ(cache::parse_cache_control("max-age=abc").max_age, 0);
    EXPECT_EQ(cache::parse_cache_control("max-age=-5").max_age, 0);
    EXPECT_EQ(cache::parse_cache_control("max-age=99999999999999999999").max_age, 2147483648);
}

TEST(CacheControl, RevalidationAndStaleIfError) {
    EXPECT_TRUE(cache::parse_cache_control("must-revalidate").must_revalidate);
    EXPECT_TRUE(cache::parse_cache_control("proxy-revalidate").must_revalidate);
    EXPECT_EQ(cache::parse_cache_control("stale-if-error=120").stale_if_error, 120);
    EXPECT_FALSE(cache::parse_cache_control("stale-if-error=x").stale_if_error);
    EXPECT_FALSE(cache::parse_cache_control("").max_age);
}

TEST(CacheControl, JoinsRepeatedLines) {
    const auto f = fields({{"Cache-Control", "public"}, {"Cache-Control", "max-age=9"}});
    EXPECT_EQ(cache::joined(f, http::field::cache_control), "public, max-age=9");
    const auto cc = cache::parse_cache_control(cache::joined(f, http::field::cache_control));
    EXPECT_TRUE(cc.is_public);
    EXPECT_EQ(cc.max_age, 9);
}

// ---- dates and Vary -------------------------------------------------------------------------

TEST(HttpDate, ReadsTheThreeFormsOfRfc9110) {
    // RFC 9110 §5.6.7's example, in its three spellings: 784111777.
    EXPECT_EQ(cache::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
    EXPECT_EQ(cache::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
    EXPECT_EQ(cache::parse_http_date("Sun Nov  6 08:49:37 1994"), 784111777);
}

TEST(HttpDate, RefusesWhatIsNotADate) {
    EXPECT_FALSE(cache::parse_http_date("0"));
    EXPECT_FALSE(cache::parse_http_date("-1"));
    EXPECT_FALSE(cache::parse_http_date(""));
    EXPECT_FALSE(cache::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT trailing"));
}

TEST(Vary, NamesAreLowerCaseWithoutDuplicates) {
    EXPECT_THAT(*cache::vary_names("Accept-Encoding, accept-language,ACCEPT-ENCODING"),
                ::testing::ElementsAre("accept-encoding", "accept-language"));
    EXPECT_TRUE(cache::vary_names("")->empty());
    EXPECT_FALSE(cache::vary_names("Accept, *"));
}

// ---- what a request may do ------------------------------------------------------------------

TEST(RequestPolicy, AGetLooksUpFillsAndStores) {
    const auto p = cache::request_policy({}, http::verb::get, false);
    EXPECT_TRUE(p.cacheable);
    EXPECT_TRUE(p.lookup);
    EXPECT_TRUE(p.fill);
    EXPECT_TRUE(p.store);
    EXPECT_FALSE(p.credentials);
}

TEST(RequestPolicy, AHeadLooksUpButNeitherFillsNorStores) {
    const auto p = cache::request_policy({}, http::verb::head, false);
    EXPECT_TRUE(p.cacheable);
    EXPECT_TRUE(p.lookup);
    EXPECT_FALSE(p.fill);
    EXPECT_FALSE(p.store);
}

TEST(RequestPolicy, OtherMethodsAndBodiesBypass) {
    EXPECT_FALSE(cache::request_policy({}, http::verb::post, false).cacheable);
    EXPECT_FALSE(cache::request_policy({}, http::verb::delete_, false).cacheable);
    EXPECT_FALSE(cache::request_policy({}, http::verb::get, true).cacheable);
}

TEST(RequestPolicy, CredentialsNeitherFillNorLookUpPrivately) {
    for (const char* name : {"Authorization", "Cookie"}) {
        const auto p = cache::request_policy(fields({{name, "x"}}), http::verb::get, false);
        EXPECT_TRUE(p.credentials) << name;
        EXPECT_FALSE(p.fill) << name;
        EXPECT_TRUE(p.store) << name;  // a `public` answer may still be stored
    }
}

TEST(RequestPolicy, NoCacheSkipsTheLookupButMayStore) {
    const auto p =
        cache::request_policy(fields({{"Cache-Control", "no-cache"}}), http::verb::get, false);
    EXPECT_FALSE(p.lookup);
    EXPECT_FALSE(p.fill);
    EXPECT_TRUE(p.store);
    EXPECT_FALSE(
        cache::request_policy(fields({{"Pragma", "no-cache"}}), http::verb::get, false).lookup);
    // Pragma counts only without Cache-Control (RFC 9111 §5.4).
    EXPECT_TRUE(
        cache::request_policy(fields({{"Pragma", "no-cache"}, {"Cache-Control", "max-age=5"}}),
                              http::verb::get, false)
            .lookup);
}

TEST(RequestPolicy, NoStoreAndRangeDoNotStore) {
    EXPECT_FALSE(
        cache::request_policy(fields({{"Cache-Control", "no-store"}}), http::verb::get, false)
            .store);
    const auto range =
        cache::request_policy(fields({{"Range", "bytes=0-9"}}), http::verb::get, false);
    EXPECT_TRUE(range.lookup);
    EXPECT_FALSE(range.store);
    EXPECT_FALSE(range.fill);
}

// ---- what a response may be stored as -------------------------------------------------------

cache::Storability storable(int status, http::fields res, std::string_view path = "/",
                            bool credentials = false, CacheConfig cfg = config()) {
    return cache::response_storability(status, res, path, credentials, cfg, 1'000'000);
}

TEST(Storability, MaxAgeGivesTheLifetime) {
    const auto s = storable(200, fields({{"Cache-Control", "max-age=60"}}));
    EXPECT_TRUE(s.store) << s.why_not;
    EXPECT_EQ(s.ttl, 60s);
    EXPECT_EQ(s.stale_window, 60s);  // the configured stale_if_error
}

TEST(Storability, SMaxAgeWinsOverMaxAgeAndForbidsStale) {
    const auto s = storable(200, fields({{"Cache-Control", "max-age=60, s-maxage=5"}}));
    EXPECT_TRUE(s.store);
    EXPECT_EQ(s.ttl, 5s);
    EXPECT_EQ(s.stale_window, 0s);
}

TEST(Storability, ExpiresAgainstDate) {
    auto s = storable(200, fields({{"Date", "Sun, 06 Nov 1994 08:49:37 GMT"},
                                   {"Expires", "Sun, 06 Nov 1994 08:50:07 GMT"}}));
    EXPECT_TRUE(s.store) << s.why_not;
    EXPECT_EQ(s.ttl, 30s);
    // max-age wins over Expires (RFC 9111 §5.3).
    s = storable(200, fields({{"Cache-Control", "max-age=7"},
                              {"Date", "Sun, 06 Nov 1994 08:49:37 GMT"},
                              {"Expires", "Sun, 06 Nov 1994 08:50:07 GMT"}}));
    EXPECT_EQ(s.ttl, 7s);
}

TEST(Storability, AnInvalidOrPastExpiresIsNotFresh) {
    EXPECT_FALSE(storable(200, fields({{"Expires", "0"}})).store);
    EXPECT_FALSE(storable(200, fields({{"Date", "Sun, 06 Nov 1994 08:49:37 GMT"},
                                       {"Expires", "Sun, 06 Nov 1994 08:00:00 GMT"}}))
                     .store);
}

TEST(Storability, AgeShortensTheLifetimeAndCanUseItUp) {
    auto s = storable(200, fields({{"Cache-Control", "max-age=60"}, {"Age", "20"}}));
    EXPECT_TRUE(s.store);
    EXPECT_EQ(s.age, 20s);
    EXPECT_FALSE(storable(200, fields({{"Cache-Control", "max-age=60"}, {"Age", "60"}})).store);
}

TEST(Storability, OnlyTheChosenStatuses) {
    const auto cc = fields({{"Cache-Control", "max-age=60"}});
    for (int status : {200, 301, 404}) EXPECT_TRUE(storable(status, cc).store) << status;
    for (int status : {201, 204, 206, 302, 304, 400, 500, 503})
        EXPECT_FALSE(storable(status, cc).store) << status;
}

TEST(Storability, NeverPrivateNoStoreNoCacheSetCookieOrVaryStar) {
    for (const char* cc : {"private, max-age=60", "no-store, max-age=60", "no-cache, max-age=60"}) {
        const auto s = storable(200, fields({{"Cache-Control", cc}}));
        EXPECT_FALSE(s.store) << cc;
        EXPECT_THAT(s.why_not, HasSubstr("Cache-Control")) << cc;
    }
    EXPECT_EQ(
        storable(200, fields({{"Cache-Control", "public, max-age=60"}, {"Set-Cookie", "a=1"}}))
            .why_not,
        "Set-Cookie");
    EXPECT_EQ(storable(200, fields({{"Cache-Control", "max-age=60"}, {"Vary", "*"}})).why_not,
              "Vary: *");
}

TEST(Storability, NoFreshnessIsNotStoredUnlessThePathHasADefaultTtl) {
    EXPECT_FALSE(storable(200, {}).store);
    CacheConfig c = config();
    c.default_ttl = 3s;
    c.paths = {"/news/"};
    auto s = storable(200, {}, "/news/today", false, c);
    EXPECT_TRUE(s.store) << s.why_not;
    EXPECT_EQ(s.ttl, 3s);
    EXPECT_FALSE(storable(200, {}, "/other", false, c).store);
    EXPECT_FALSE(storable(404, {}, "/news/gone", false, c).store);  // 200 and 301 only
    // The app's own freshness wins over the default, even when shorter.
    s = storable(200, fields({{"Cache-Control", "max-age=1"}}), "/news/x", false, c);
    EXPECT_EQ(s.ttl, 1s);
    // max-age=0 is the app's word: not stored, whatever the default.
    EXPECT_FALSE(
        storable(200, fields({{"Cache-Control", "max-age=0"}}), "/news/x", false, c).store);
}

TEST(Storability, CredentialsNeedPublic) {
    EXPECT_FALSE(storable(200, fields({{"Cache-Control", "max-age=60"}}), "/", true).store);
    const auto s = storable(200, fields({{"Cache-Control", "public, max-age=60"}}), "/", true);
    EXPECT_TRUE(s.store);
    EXPECT_TRUE(s.is_public);
}

TEST(Storability, StaleWindowFromTheResponseOrTheConfig) {
    EXPECT_EQ(
        storable(200, fields({{"Cache-Control", "max-age=6, stale-if-error=9"}})).stale_window, 9s);
    EXPECT_EQ(storable(200, fields({{"Cache-Control", "max-age=6, must-revalidate"}})).stale_window,
              0s);
    CacheConfig c = config();
    c.stale_if_error = 0s;
    EXPECT_EQ(storable(200, fields({{"Cache-Control", "max-age=6"}}), "/", false, c).stale_window,
              0s);
}

TEST(Storability, VaryNamesComeAlong) {
    const auto s =
        storable(200, fields({{"Cache-Control", "max-age=6"}, {"Vary", "Accept-Language"}}));
    EXPECT_THAT(s.vary, ::testing::ElementsAre("accept-language"));
}

TEST(ErrorStatus, TheFiveOfRfc5861) {
    for (int s : {500, 502, 503, 504}) EXPECT_TRUE(cache::is_error_status(s));
    for (int s : {200, 404, 501, 429}) EXPECT_FALSE(cache::is_error_status(s));
}

// ---- keys and the answer --------------------------------------------------------------------

TEST(CacheKey, HostIsCaseInsensitiveTargetIsNot) {
    EXPECT_EQ(cache::primary_key("Example.COM", "/a?b=1"),
              cache::primary_key("example.com", "/a?b=1"));
    EXPECT_NE(cache::primary_key("example.com", "/A"), cache::primary_key("example.com", "/a"));
    EXPECT_NE(cache::primary_key("example.com", "/a?b=1"),
              cache::primary_key("example.com", "/a?b=2"));
    EXPECT_NE(cache::primary_key("a.example", "/"), cache::primary_key("b.example", "/"));
    // The scheme a proxy forwarded: an app's redirect to https is not for https clients.
    EXPECT_NE(cache::primary_key("h", "/", "https"), cache::primary_key("h", "/", "http"));
    EXPECT_EQ(cache::primary_key("h", "/", "HTTPS"), cache::primary_key("h", "/", "https"));
    EXPECT_EQ(cache::primary_key("h", "/", ""), cache::primary_key("h", "/", "http"));
}

TEST(CacheKey, VaryValuesArePartOfTheKey) {
    const std::string p = cache::primary_key("h", "/");
    const std::vector<std::string> vary = {"accept-language"};
    const auto en = cache::variant_key(p, vary, fields({{"Accept-Language", "en"}}));
    const auto de = cache::variant_key(p, vary, fields({{"Accept-Language", "de"}}));
    const auto none = cache::variant_key(p, vary, {});
    EXPECT_NE(en, de);
    EXPECT_NE(en, none);
    EXPECT_EQ(en, cache::variant_key(p, vary, fields({{"accept-language", "en"}})));
    EXPECT_EQ(cache::variant_key(p, {}, fields({{"Accept-Language", "en"}})), p);
}

cache::Storability fresh_for(Duration ttl) {
    cache::Storability s;
    s.store = true;
    s.ttl = ttl;
    return s;
}

MicroCache::EntryPtr entry(const std::string& target, std::string body,
                           Clock::time_point now = Clock::now(), Duration ttl = 60s,
                           http::fields res = fields({{"Content-Type", "text/plain"}})) {
    const auto primary = cache::primary_key("h", target);
    return cache::make_entry(primary, primary, 200, res, std::move(body), fresh_for(ttl), now);
}

TEST(CacheEntry, KeepsEndToEndFieldsAndSetsItsLength) {
    const auto e = entry("/", "hello", Clock::now(), 60s,
                         fields({{"Content-Type", "text/plain"},
                                 {"Content-Length", "999"},
                                 {"Age", "3"},
                                 {"X-Cache-Status", "HIT"},
                                 {"ETag", "\"v1\""}}));
    EXPECT_EQ(e->fields, "Content-Type: text/plain\r\nETag: \"v1\"\r\nContent-Length: 5\r\n");
}

TEST(CacheEntry, AnswerHeadCarriesAgeStatusAndConnection) {
    const auto t0 = Clock::now();
    const auto e = entry("/", "hello", t0);
    EXPECT_EQ(cache::response_head(*e, Status::hit, 11, true, t0 + 2500ms),
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nAge: "
              "2\r\nX-Cache-Status: HIT\r\n\r\n");
    EXPECT_THAT(cache::response_head(*e, Status::stale, 11, false, t0),
                HasSubstr("X-Cache-Status: STALE\r\nConnection: close\r\n\r\n"));
    EXPECT_THAT(cache::response_head(*e, Status::hit, 10, true, t0),
                HasSubstr("Connection: keep-alive\r\n"));
    EXPECT_THAT(cache::response_head(*e, Status::hit, 10, false, t0),
                ::testing::Not(HasSubstr("Connection")));
}

TEST(CacheEntry, FreshThenStaleWithinItsWindow) {
    const auto t0 = Clock::now();
    cache::Storability s = fresh_for(10s);
    s.stale_window = 5s;
    s.age = 2s;
    const auto e = cache::make_entry("k", "k", 200, {}, "x", s, t0);
    EXPECT_TRUE(e->fresh(t0 + 7s));
    EXPECT_FALSE(e->fresh(t0 + 8s));  // 10 s less the 2 s it was old already
    EXPECT_TRUE(e->stale_usable(t0 + 12s));
    EXPECT_FALSE(e->stale_usable(t0 + 13s));
    EXPECT_EQ(e->age_at(t0 + 3s), 5);
}

// ---- the store ------------------------------------------------------------------------------

cache::RequestPolicy get_policy() {
    return cache::request_policy({}, http::verb::get, false);
}

MicroCache::Lookup look(MicroCache& c, const std::string& target,
                        Clock::time_point now = Clock::now(),
                        cache::RequestPolicy policy = get_policy(), const http::fields& req = {}) {
    return c.lookup(cache::primary_key("h", target), req, policy, now);
}

TEST(MicroCacheStore, MissFillsThenHits) {
    MicroCache c(config());
    auto first = look(c, "/a");
    EXPECT_EQ(first.status, Status::miss);
    ASSERT_TRUE(first.fill);
    first.fill.complete(entry("/a", "body"), false);
    const auto second = look(c, "/a");
    EXPECT_EQ(second.status, Status::hit);
    ASSERT_TRUE(second.entry);
    EXPECT_EQ(second.entry->body, "body");
    EXPECT_EQ(c.stats().entries, 1u);
    EXPECT_EQ(c.stats().stores, 1u);
}

TEST(MicroCacheStore, AnAbandonedFillStoresNothingAndTheNextMissFills) {
    MicroCache c(config());
    { auto first = look(c, "/a"); }  // the guard completes it with nothing
    EXPECT_EQ(c.stats().fills_in_flight, 0u);
    auto again = look(c, "/a");
    EXPECT_EQ(again.status, Status::miss);
    EXPECT_TRUE(again.fill);
}

TEST(MicroCacheStore, ConcurrentMissesWaitOnTheFirstAndGetItsEntry) {
    MicroCache c(config());
    auto filler = look(c, "/a");
    ASSERT_TRUE(filler.fill);
    std::vector<std::shared_ptr<MicroCache::Waiter>> waiters;
    int woken = 0;
    for (int i = 0; i < 5; ++i) {
        auto l = look(c, "/a");
        EXPECT_EQ(l.status, Status::miss);
        EXPECT_FALSE(l.fill);
        ASSERT_TRUE(l.wait);
        EXPECT_TRUE(c.arm(l.wait, [&woken] { ++woken; }));
        waiters.push_back(l.wait);
    }
    EXPECT_EQ(c.stats().fills_in_flight, 1u);
    filler.fill.complete(entry("/a", "one"), false);
    EXPECT_EQ(woken, 5);
    for (const auto& w : waiters) {
        const auto e = c.finish_wait(w);
        ASSERT_TRUE(e);
        EXPECT_EQ(e->body, "one");
    }
}

TEST(MicroCacheStore, WaitersOfAFailedFillGetNothing) {
    MicroCache c(config());
    auto filler = look(c, "/a");
    auto waiter = look(c, "/a");
    int woken = 0;
    ASSERT_TRUE(c.arm(waiter.wait, [&woken] { ++woken; }));
    filler.fill.complete(nullptr, false);
    EXPECT_EQ(woken, 1);
    EXPECT_FALSE(c.finish_wait(waiter.wait));
}

TEST(MicroCacheStore, AWaiterArmedAfterTheFillLandedNeedsNoWait) {
    MicroCache c(config());
    auto filler = look(c, "/a");
    auto waiter = look(c, "/a");
    filler.fill.complete(entry("/a", "x"), false);
    EXPECT_FALSE(c.arm(waiter.wait, [] { FAIL() << "woken after the fill"; }));
    EXPECT_TRUE(c.finish_wait(waiter.wait));
}

TEST(MicroCacheStore, AWaiterThatGaveUpIsNotWoken) {
    MicroCache c(config());
    auto filler = look(c, "/a");
    auto waiter = look(c, "/a");
    ASSERT_TRUE(c.arm(waiter.wait, [] { FAIL() << "woken after it gave up"; }));
    EXPECT_FALSE(c.finish_wait(waiter.wait));  // its timeout
    filler.fill.complete(entry("/a", "x"), false);
}

TEST(MicroCacheStore, WaitersAreBounded) {
    MicroCache c(config());
    auto filler = look(c, "/a");
    std::vector<MicroCache::Lookup> held;
    for (std::size_t i = 0; i < cache::kMaxFillWaiters; ++i) held.push_back(look(c, "/a"));
    const auto beyond = look(c, "/a");
    EXPECT_FALSE(beyond.wait);
    EXPECT_FALSE(beyond.fill);
    EXPECT_EQ(beyond.status, Status::miss);
}

TEST(MicroCacheStore, HeadAndRangeNeitherFillNorWait) {
    MicroCache c(config());
    auto filler = look(c, "/a");
    const auto head =
        look(c, "/a", Clock::now(), cache::request_policy({}, http::verb::head, false));
    EXPECT_FALSE(head.wait);
    EXPECT_FALSE(head.fill);
    EXPECT_EQ(head.status, Status::miss);
    filler.fill.complete(entry("/a", "x"), false);
    // A HEAD is answered from the GET's entry.
    EXPECT_EQ(
        look(c, "/a", Clock::now(), cache::request_policy({}, http::verb::head, false)).status,
        Status::hit);
}

TEST(MicroCacheStore, CredentialsOnlyHitPublicEntries) {
    MicroCache c(config());
    const auto creds = cache::request_policy(fields({{"Cookie", "s=1"}}), http::verb::get, false);
    c.store(entry("/private", "p"));
    auto l = look(c, "/private", Clock::now(), creds);
    EXPECT_EQ(l.status, Status::bypass);
    EXPECT_FALSE(l.entry);
    EXPECT_FALSE(l.fill);
    auto pub = fresh_for(60s);
    pub.is_public = true;
    const auto primary = cache::primary_key("h", "/public");
    c.store(cache::make_entry(primary, primary, 200, {}, "p", pub, Clock::now()));
    EXPECT_EQ(look(c, "/public", Clock::now(), creds).status, Status::hit);
}

TEST(MicroCacheStore, NoCacheBypassesTheLookup) {
    MicroCache c(config());
    c.store(entry("/a", "x"));
    const auto l = look(
        c, "/a", Clock::now(),
        cache::request_policy(fields({{"Cache-Control", "no-cache"}}), http::verb::get, false));
    EXPECT_EQ(l.status, Status::bypass);
    EXPECT_FALSE(l.entry);
}

TEST(MicroCacheStore, ExpiredWithinTheStaleWindowOffersTheStaleEntryAndFills) {
    MicroCache c(config());
    const auto t0 = Clock::now();
    cache::Storability s = fresh_for(1s);
    s.stale_window = 10s;
    const auto primary = cache::primary_key("h", "/a");
    c.store(cache::make_entry(primary, primary, 200, {}, "old", s, t0));
    auto l = look(c, "/a", t0 + 2s);
    EXPECT_EQ(l.status, Status::expired);
    ASSERT_TRUE(l.stale);
    EXPECT_EQ(l.stale->body, "old");
    EXPECT_TRUE(l.fill);
    EXPECT_EQ(c.stats().entries, 1u);  // kept until the fill replaces it
}

TEST(MicroCacheStore, ExpiredBeyondTheStaleWindowIsDropped) {
    MicroCache c(config());
    const auto t0 = Clock::now();
    c.store(entry("/a", "old", t0, 1s));  // stale window 0
    auto l = look(c, "/a", t0 + 2s);
    EXPECT_EQ(l.status, Status::expired);
    EXPECT_FALSE(l.stale);
    EXPECT_EQ(c.stats().entries, 0u);
}

TEST(MicroCacheStore, ANonStorableAnswerInvalidatesTheOldEntry) {
    MicroCache c(config());
    const auto t0 = Clock::now();
    cache::Storability s = fresh_for(1s);
    s.stale_window = 10s;
    const auto primary = cache::primary_key("h", "/a");
    c.store(cache::make_entry(primary, primary, 200, {}, "old", s, t0));
    auto l = look(c, "/a", t0 + 2s);
    l.fill.complete(nullptr, true);
    EXPECT_EQ(c.stats().entries, 0u);
}

TEST(MicroCacheStore, LeastRecentlyUsedGoesFirstAtTheByteBound) {
    const auto one = entry("/1", std::string(1000, 'a'))->bytes();
    MicroCache c(config(64 * 1024));
    c.set_capacity(3 * one + 10);
    c.store(entry("/1", std::string(1000, 'a')));
    c.store(entry("/2", std::string(1000, 'b')));
    c.store(entry("/3", std::string(1000, 'c')));
    EXPECT_EQ(look(c, "/1").status, Status::hit);  // /1 is now the most recent
    c.store(entry("/4", std::string(1000, 'd')));
    EXPECT_EQ(look(c, "/2").status, Status::miss);
    EXPECT_EQ(look(c, "/1").status, Status::hit);
    EXPECT_EQ(look(c, "/3").status, Status::hit);
    EXPECT_EQ(look(c, "/4").status, Status::hit);
    const auto st = c.stats();
    EXPECT_EQ(st.evictions, 1u);
    EXPECT_EQ(st.entries, 3u);
    EXPECT_LE(st.bytes, st.capacity);
}

TEST(MicroCacheStore, AnEntryLargerThanTheCapacityIsNotStored) {
    MicroCache c(config(64 * 1024));
    c.store(entry("/big", std::string(70 * 1024, 'x')));
    EXPECT_EQ(c.stats().entries, 0u);
    EXPECT_EQ(c.stats().stores, 0u);
}

TEST(MicroCacheStore, TheEntryCountIsBounded) {
    CacheConfig cfg = config();
    cfg.max_entries = 2;
    MicroCache c(cfg);
    for (const char* t : {"/1", "/2", "/3"}) c.store(entry(t, "x"));
    EXPECT_EQ(c.stats().entries, 2u);
    EXPECT_EQ(look(c, "/1").status, Status::miss);
}

TEST(MicroCacheStore, ShrinkingTheCapacityEvictsAtOnceAndNeverExceedsTheSize) {
    MicroCache c(config(64 * 1024));
    for (int i = 0; i < 10; ++i) c.store(entry("/" + std::to_string(i), std::string(1000, 'x')));
    EXPECT_EQ(c.stats().entries, 10u);
    c.set_capacity(3000);
    EXPECT_LE(c.stats().bytes, 3000u);
    EXPECT_LT(c.stats().entries, 10u);
    c.set_capacity(1 << 30);
    EXPECT_EQ(c.stats().capacity, 64u * 1024);
}

TEST(MicroCacheStore, ReplacingAnEntryKeepsTheBytesRight) {
    MicroCache c(config());
    c.store(entry("/a", std::string(100, 'x')));
    c.store(entry("/a", std::string(10, 'y')));
    EXPECT_EQ(c.stats().entries, 1u);
    EXPECT_EQ(c.stats().bytes, entry("/a", std::string(10, 'y'))->bytes());
}

TEST(MicroCacheStore, ClearEmptiesItButKeepsTheCounters) {
    MicroCache c(config());
    c.store(entry("/a", "x"));
    c.count(Status::hit);
    c.clear();
    EXPECT_EQ(c.stats().entries, 0u);
    EXPECT_EQ(c.stats().bytes, 0u);
    EXPECT_EQ(c.stats().hits, 1u);
    EXPECT_EQ(look(c, "/a").status, Status::miss);
}

TEST(MicroCacheStore, SizeZeroIsOffAndStoresNothing) {
    MicroCache c(config(0));
    EXPECT_FALSE(c.enabled());
    c.store(entry("/a", "x"));
    EXPECT_EQ(c.stats().entries, 0u);
    CacheConfig on = config();
    c.configure(on);
    EXPECT_TRUE(c.enabled());
}

TEST(MicroCacheStore, VaryKeysTheVariantsOfOnePath) {
    MicroCache c(config());
    auto how = fresh_for(60s);
    how.vary = {"x-variant"};
    const auto primary = cache::primary_key("h", "/v");
    const auto a = fields({{"X-Variant", "a"}});
    const auto b = fields({{"X-Variant", "b"}});
    c.store(cache::make_entry(cache::variant_key(primary, how.vary, a), primary, 200, {}, "A", how,
                              Clock::now()));
    auto hit = c.lookup(primary, a, get_policy(), Clock::now());
    ASSERT_EQ(hit.status, Status::hit);
    EXPECT_EQ(hit.entry->body, "A");
    EXPECT_TRUE(MicroCache::matches(*hit.entry, a));
    EXPECT_FALSE(MicroCache::matches(*hit.entry, b));
    EXPECT_EQ(c.lookup(primary, b, get_policy(), Clock::now()).status, Status::miss);
}

TEST(MicroCacheStore, CountsByStatusAndTheHitRatio) {
    MicroCache c(config());
    c.count(Status::hit);
    c.count(Status::hit, true);
    c.count(Status::miss);
    c.count(Status::bypass);
    const auto s = c.stats();
    EXPECT_EQ(s.hits, 2u);
    EXPECT_EQ(s.collapsed, 1u);
    EXPECT_EQ(s.misses, 1u);
    EXPECT_EQ(s.bypasses, 1u);
    EXPECT_DOUBLE_EQ(s.hit_ratio(), 0.5);
}

}  // namespace
}  // namespace tuner::server
