// The micro-cache's counters as the admin API reports them (server/micro_cache.hpp); a header of
// its own so that the admin side needs no Beast.
#pragma once

#include <cstdint>

namespace tuner::server {

struct CacheStats {
    bool enabled = false;        // [cache] size > 0
    std::uint64_t entries = 0;   // responses held
    std::uint64_t bytes = 0;     // their keys, headers and bodies
    std::uint64_t capacity = 0;  // bytes at most (cache.size, or less under memory pressure)
    std::uint64_t max_entries = 0;
    // Responses by X-Cache-Status, since start.
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    std::uint64_t expired = 0;    // an entry was there but expired: the app answered
    std::uint64_t stale = 0;      // an expired entry answered because the app failed
    std::uint64_t bypasses = 0;   // not looked up (method, credentials, no-cache, a body)
    std::uint64_t collapsed = 0;  // hits that waited for another request's fill
    std::uint64_t stores = 0;     // responses stored
    std::uint64_t evictions = 0;  // entries dropped for room (LRU), not counting expiry
    std::uint64_t fills_in_flight = 0;

    // hits / every response that carried X-Cache-Status; 0 before the first.
    [[nodiscard]] double hit_ratio() const {
        const auto total = hits + misses + expired + stale + bypasses;
        return total == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(total);
    }
};

}  // namespace tuner::server
