// At most one log line per period for a failure that can repeat many times a second (a full
// spool, a log file that cannot be written, a dead disk under the decision log): the first one
// at once, then one per period, each saying how many it stands for. Safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>

namespace tuner {

class LogThrottle {
public:
    using Clock = std::chrono::steady_clock;

    explicit LogThrottle(Clock::duration period = std::chrono::minutes(1)) : period_(period) {}

    // True when a line is due at `now` (the first call, or a period after the last true); the
    // next one is then due a period later.
    bool due(Clock::time_point now = Clock::now()) {
        const auto at = now.time_since_epoch().count();
        auto next = next_.load(std::memory_order_relaxed);
        return at >= next &&
               next_.compare_exchange_strong(next, at + period_.count(), std::memory_order_relaxed);
    }
    // The next due() is true at once (the failure ended; a new one is news).
    void reset() { next_.store(kAtOnce, std::memory_order_relaxed); }

private:
    static constexpr Clock::rep kAtOnce = std::numeric_limits<Clock::rep>::min();
    Clock::duration period_;
    std::atomic<Clock::rep> next_{kAtOnce};
};

}  // namespace tuner
