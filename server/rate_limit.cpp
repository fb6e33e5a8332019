// Requests per client address (see rate_limit.hpp).
#include "server/rate_limit.hpp"

#include <algorithm>
#include <cmath>

namespace tuner::server {

RateLimiter::Verdict RateLimiter::admit(const std::string& client, const RateLimitConfig& config,
                                        Clock::time_point now) {
    const double capacity = static_cast<double>(config.burst) + 1.0;
    std::lock_guard lock(mutex_);
    auto it = buckets_.find(client);
    if (it == buckets_.end()) {
        while (!lru_.empty() && buckets_.size() >= std::max<std::uint64_t>(config.max_clients, 1)) {
            buckets_.erase(lru_.back());
            lru_.pop_back();
            ++stats_.forgotten;
        }
        lru_.push_front(client);
        it = buckets_.emplace(client, Bucket{capacity, now, lru_.begin()}).first;
    } else {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
        const double elapsed = std::chrono::duration<double>(now - it->second.updated).count();
        if (elapsed > 0) {
            it->second.tokens = std::min(capacity, it->second.tokens + elapsed * config.rate);
            it->second.updated = now;
        }
        // A reload that lowered burst: no more than the new capacity.
        it->second.tokens = std::min(it->second.tokens, capacity);
    }
    Bucket& bucket = it->second;
    stats_.tracked = buckets_.size();
    if (bucket.tokens >= 1.0) {
        bucket.tokens -= 1.0;
        ++stats_.allowed;
        return {};
    }
    ++stats_.limited;
    const double wait_s = (1.0 - bucket.tokens) / config.rate;
    return {false, static_cast<unsigned>(std::max(1.0, std::ceil(wait_s)))};
}

RateLimiter::Stats RateLimiter::stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
}

}  // namespace tuner::server
