// Requests per client address ([rate_limit]): nginx's `limit_req rate=R burst=B nodelay` as a
// token bucket. Each address has B + 1 tokens that refill at R per second; a request takes one,
// and a request that finds none gets 429 with the time to the next token as Retry-After. The
// addresses are kept in an LRU list of at most max_clients: the least recently seen is forgotten
// (it starts again with a full bucket), so memory stays bounded whatever the clients do.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "model/config.hpp"

namespace tuner::server {

class RateLimiter {
public:
    using Clock = std::chrono::steady_clock;

    struct Verdict {
        bool allowed = true;
        unsigned retry_after_s = 0;  // when refused: seconds until a token is there (≥ 1)
    };
    struct Stats {
        std::uint64_t allowed = 0;
        std::uint64_t limited = 0;
        std::uint64_t forgotten = 0;  // addresses dropped from the LRU at max_clients
        std::size_t tracked = 0;
    };

    // A request from `client` at `now` under `config` (rate > 0); thread-safe.
    Verdict admit(const std::string& client, const RateLimitConfig& config, Clock::time_point now);
    [[nodiscard]] Stats stats() const;

private:
    struct Bucket {
        double tokens = 0;
        Clock::time_point updated;
        std::list<std::string>::iterator lru;
    };

    mutable std::mutex mutex_;
    std::list<std::string> lru_;  // most recent first
    std::unordered_map<std::string, Bucket> buckets_;
    Stats stats_;
};

}  // namespace tuner::server
