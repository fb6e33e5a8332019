// The micro-cache's capacity as a tuned knob (cache.capacity, bytes, at most cache.size): the
// cache's entries are tunerd's own memory, and under memory pressure the memory is worth more to
// the workers than to cached answers. When memory presses — the same signals the workers'
// memory_pressure rule reads (policies/memory_pressure.hpp: unreclaimable memory ≥ 90 % of
// memory.max or memory.high, memory PSI rising, a new OOM kill, host MemAvailable < 10 %) — the
// capacity halves, at once and again every kCacheShrinkCooldown while the pressure lasts, to a
// floor (cache_floor_bytes); the cache evicts its least recently used entries down to it at
// once. It grows back (doubling, towards cache.size) only after kCacheCalmCycles cycles without
// pressure, kCacheGrowCooldown after the last change, and only as far as the extra bytes keep the
// unreclaimable memory at or below kMemoryTargetFraction (80 %) of the line: the band between
// 80 % and 90 % is the hysteresis. Sources: nginx proxy_cache_path max_size (the cache manager
// removes the least recently used data when the size is exceeded,
// https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_cache_path); Varnish's LRU
// "nuking" of objects when its storage runs out
// (https://varnish-cache.org/docs/trunk/users-guide/sizing-your-cache.html).
#pragma once

#include <cstdint>
#include <optional>

#include "model/decision.hpp"
#include "model/snapshot.hpp"

namespace tuner::policies {

// The floor: cache.size / 16, at least 1 MiB (never above cache.size).
inline constexpr std::uint64_t kCacheFloorDivisor = 16;
inline constexpr std::uint64_t kCacheFloorMin = 1 * MiB;
// One halving shows in the working set within a cycle or two; the next waits this long.
inline constexpr Duration kCacheShrinkCooldown = std::chrono::seconds(5);
// Growth: after this many cycles in a row without pressure, and this long after any change.
inline constexpr unsigned kCacheCalmCycles = 10;
inline constexpr Duration kCacheGrowCooldown = std::chrono::seconds(30);

std::uint64_t cache_floor_bytes(std::uint64_t size_bytes);

class CacheCapacityPolicy {
public:
    // One control cycle over snapshot.cache and snapshot.memory: a decision on cache.capacity
    // when one is due.
    std::optional<Decision> decide(const Snapshot& snapshot);

private:
    std::optional<std::uint64_t> last_oom_kills_;
    std::optional<double> last_memory_psi_;
    std::optional<Clock::time_point> last_change_;
    unsigned calm_cycles_ = 0;
};

}  // namespace tuner::policies
