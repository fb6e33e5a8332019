// The rate limit's token bucket (nginx's limit_req with nodelay): burst + 1 at once, then `rate`
// per second, Retry-After to the next token, addresses apart, memory bounded by max_clients.
#include "server/rate_limit.hpp"

#include <gtest/gtest.h>

namespace tuner::server {
namespace {

using namespace std::chrono_literals;
using Clock = RateLimiter::Clock;

RateLimitConfig limit(double rate, unsigned burst, std::uint64_t max_clients = 100) {
    RateLimitConfig c;
    c.rate = rate;
    c.burst = burst;
    c.max_clients = max_clients;
    return c;
}

TEST(RateLimiter, ServesBurstPlusOneAtOnceThenRefusesWithRetryAfter) {
    RateLimiter limiter;
    const auto c = limit(10, 20);
    const auto t = Clock::now();
    for (int i = 0; i < 21; ++i) EXPECT_TRUE(limiter.admit("a", c, t).allowed) << i;
    const auto refused = limiter.admit("a", c, t);
    EXPECT_FALSE(refused.allowed);
    EXPECT_EQ(refused.retry_after_s, 1u);  // a token every 100 ms: retry after the next second
    EXPECT_EQ(limiter.stats().allowed, 21u);
    EXPECT_EQ(limiter.stats().limited, 1u);
}

TEST(RateLimiter, RefillsAtTheRate) {
    RateLimiter limiter;
    const auto c = limit(10, 0);  // one at once, then one per 100 ms
    const auto t = Clock::now();
    EXPECT_TRUE(limiter.admit("a", c, t).allowed);
    EXPECT_FALSE(limiter.admit("a", c, t + 50ms).allowed);
    EXPECT_TRUE(limiter.admit("a", c, t + 110ms).allowed);
    EXPECT_FALSE(limiter.admit("a", c, t + 120ms).allowed);
    // Idle for long: the bucket holds burst + 1, no more.
    const auto later = t + 1h;
    EXPECT_TRUE(limiter.admit("a", c, later).allowed);
    EXPECT_FALSE(limiter.admit("a", c, later).allowed);
}

TEST(RateLimiter, RetryAfterIsTheWaitForTheNextToken) {
    RateLimiter limiter;
    const auto c = limit(0.2, 0);  // one every 5 s
    const auto t = Clock::now();
    EXPECT_TRUE(limiter.admit("a", c, t).allowed);
    EXPECT_EQ(limiter.admit("a", c, t + 1s).retry_after_s, 4u);
}

TEST(RateLimiter, AddressesHaveTheirOwnBuckets) {
    RateLimiter limiter;
    const auto c = limit(1, 1);
    const auto t = Clock::now();
    EXPECT_TRUE(limiter.admit("a", c, t).allowed);
    EXPECT_TRUE(limiter.admit("a", c, t).allowed);
    EXPECT_FALSE(limiter.admit("a", c, t).allowed);
    EXPECT_TRUE(limiter.admit("b", c, t).allowed);
}

TEST(RateLimiter, RemembersAtMostMaxClientsAndForgetsTheLeastRecent) {
    RateLimiter limiter;
    const auto c = limit(1, 0, 3);
    const auto t = Clock::now();
    for (const char* a : {"a", "b", "c"}) EXPECT_TRUE(limiter.admit(a, c, t).allowed);
    EXPECT_FALSE(limiter.admit("a", c, t).allowed);  // "a" is now the most recent
    EXPECT_TRUE(limiter.admit("d", c, t).allowed);   // forgets "b"
    EXPECT_EQ(limiter.stats().tracked, 3u);
    EXPECT_EQ(limiter.stats().forgotten, 1u);
    EXPECT_FALSE(limiter.admit("a", c, t).allowed) << "the recently seen one is remembered";
    EXPECT_TRUE(limiter.admit("b", c, t).allowed) << "the forgotten one starts again";
    for (int i = 0; i < 10000; ++i) (void)limiter.admit("x" + std::to_string(i), c, t);
    EXPECT_EQ(limiter.stats().tracked, 3u);
}

TEST(RateLimiter, ALowerBurstAfterAReloadCapsWhatIsLeft) {
    RateLimiter limiter;
    const auto t = Clock::now();
    EXPECT_TRUE(limiter.admit("a", limit(1, 100), t).allowed);
    const auto tight = limit(1, 1);
    EXPECT_TRUE(limiter.admit("a", tight, t).allowed);
    EXPECT_TRUE(limiter.admit("a", tight, t).allowed);
    EXPECT_FALSE(limiter.admit("a", tight, t).allowed);
}

}  // namespace
}  // namespace tuner::server
