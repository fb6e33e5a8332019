// One log line per period for a repeating failure: the first at once, then a period apart, and
// at once again after a reset (the failure ended).
#include "model/log_throttle.hpp"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace tuner {
namespace {

using namespace std::chrono_literals;

LogThrottle::Clock::time_point at(std::chrono::milliseconds t) {
    return LogThrottle::Clock::time_point(t);
}

TEST(LogThrottle, FirstAtOnceThenOnePerPeriod) {
    LogThrottle throttle(60s);
    EXPECT_TRUE(throttle.due(at(5000ms)));
    EXPECT_FALSE(throttle.due(at(5000ms)));
    EXPECT_FALSE(throttle.due(at(64999ms)));
    EXPECT_TRUE(throttle.due(at(65000ms)));
    EXPECT_FALSE(throttle.due(at(65001ms)));
}

TEST(LogThrottle, ResetMakesTheNextLineDueAtOnce) {
    LogThrottle throttle(60s);
    EXPECT_TRUE(throttle.due(at(1000ms)));
    EXPECT_FALSE(throttle.due(at(2000ms)));
    throttle.reset();
    EXPECT_TRUE(throttle.due(at(2000ms)));
    EXPECT_FALSE(throttle.due(at(3000ms)));
}

TEST(LogThrottle, ManyThreadsAtOnceGetOneLine) {
    LogThrottle throttle(1h);
    std::atomic<int> lines{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&] {
            for (int k = 0; k < 1000; ++k)
                if (throttle.due()) ++lines;
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(lines.load(), 1);
}

}  // namespace
}  // namespace tuner
