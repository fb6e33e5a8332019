// The cache.capacity actuator over a real micro-cache: a decision lowers the capacity and the
// least recently used entries go at once; a raise is capped by cache.size; a decision without a
// byte size fails and changes nothing.
#include "tuner/control/actuators.hpp"

#include <gtest/gtest.h>

#include "policies/registry.hpp"
#include "server/micro_cache.hpp"

namespace tuner {
namespace {

namespace http = boost::beast::http;

DecisionLog::Options memory_only() {
    DecisionLog::Options o;
    o.path = "";
    return o;
}

// Stores an entry of `body_bytes` under `path`.
void put(server::MicroCache& cache, const std::string& path, std::size_t body_bytes) {
    http::fields response;
    response.set(http::field::cache_control, "max-age=60");
    server::cache::Storability how;
    how.store = true;
    how.ttl = std::chrono::seconds(60);
    const auto primary = server::cache::primary_key("example.test", path);
    cache.store(server::cache::make_entry(primary, primary, 200, response,
                                          std::string(body_bytes, 'x'), how, Clock::now()));
}

Decision capacity(std::uint64_t from, KnobValue to) {
    return make_decision(knob::cache_capacity, {}, ByteSize{from}, std::move(to),
                         {policies::rule::cache_memory_pressure, "test"});
}

TEST(CacheActuator, ADecisionSetsTheCapacityAndEvictsLeastRecentlyUsedAtOnce) {
    CacheConfig config;
    config.size_bytes = 1 * MiB;
    server::MicroCache cache(config);
    for (int i = 0; i < 8; ++i) put(cache, "/page/" + std::to_string(i), 100 * KiB);
    ASSERT_EQ(cache.stats().entries, 8u);

    DecisionLog log(memory_only());
    Applier applier(log, false);
    register_cache_actuator(applier, [&cache](std::uint64_t bytes) { cache.set_capacity(bytes); });
    const Decision d = applier.apply(capacity(1 * MiB, ByteSize{256 * KiB}));
    EXPECT_EQ(d.outcome, Outcome::applied) << d.error;
    const auto s = cache.stats();
    EXPECT_EQ(s.capacity, 256 * KiB);
    EXPECT_LE(s.bytes, 256 * KiB);
    EXPECT_EQ(s.entries, 2u);
    EXPECT_EQ(s.evictions, 6u);
    // The two most recently stored stay.
    const auto newest = server::cache::primary_key("example.test", "/page/7");
    const auto oldest = server::cache::primary_key("example.test", "/page/0");
    server::cache::RequestPolicy get{true, true, true, true, false};
    EXPECT_EQ(cache.lookup(newest, {}, get, Clock::now()).status, server::cache::Status::hit);
    EXPECT_EQ(cache.lookup(oldest, {}, get, Clock::now()).status, server::cache::Status::miss);

    // Back up: never above cache.size.
    EXPECT_EQ(applier.apply(capacity(256 * KiB, ByteSize{4 * MiB})).outcome, Outcome::applied);
    EXPECT_EQ(cache.stats().capacity, 1 * MiB);
}

TEST(CacheActuator, ADecisionWithoutAByteSizeFails) {
    CacheConfig config;
    config.size_bytes = 1 * MiB;
    server::MicroCache cache(config);
    DecisionLog log(memory_only());
    Applier applier(log, false);
    register_cache_actuator(applier, [&cache](std::uint64_t bytes) { cache.set_capacity(bytes); });
    const Decision d = applier.apply(capacity(1 * MiB, Count{3}));
    EXPECT_EQ(d.outcome, Outcome::failed);
    EXPECT_NE(d.error.find("needs a byte size"), std::string::npos) << d.error;
    EXPECT_EQ(cache.stats().capacity, 1 * MiB);
}

}  // namespace
}  // namespace tuner
