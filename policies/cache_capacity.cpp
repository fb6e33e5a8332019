// The micro-cache capacity policy (see cache_capacity.hpp).
#include "policies/cache_capacity.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "model/knobs.hpp"
#include "policies/memory_pressure.hpp"
#include "policies/reason_text.hpp"
#include "policies/registry.hpp"

namespace tuner::policies {

namespace {

double memory_psi_avg10(const Snapshot& s) {
    if (!s.pressure.memory || !s.pressure.memory->some) return 0;
    return s.pressure.memory->some->avg10;
}

}  // namespace

std::uint64_t cache_floor_bytes(std::uint64_t size_bytes) {
    return std::min(size_bytes, std::max(size_bytes / kCacheFloorDivisor, kCacheFloorMin));
}

std::optional<Decision> CacheCapacityPolicy::decide(const Snapshot& snapshot) {
    const CacheMemory& cache = snapshot.cache;
    const MemoryInfo& m = snapshot.memory;
    // The signals memory_pressure reads that need the previous cycle: new OOM kills, PSI's rise.
    WorkerSignals signals;
    signals.memory_psi_some_avg10 = memory_psi_avg10(snapshot);
    if (last_oom_kills_ && m.oom_kills > *last_oom_kills_)
        signals.new_oom_kills = m.oom_kills - *last_oom_kills_;
    if (last_memory_psi_)
        signals.memory_psi_rise = signals.memory_psi_some_avg10 - *last_memory_psi_;
    last_oom_kills_ = m.oom_kills;
    last_memory_psi_ = signals.memory_psi_some_avg10;

    if (!cache.enabled || cache.size_bytes == 0) {
        calm_cycles_ = 0;
        return std::nullopt;
    }
    const std::uint64_t size = cache.size_bytes;
    const std::uint64_t capacity = std::min(cache.capacity_bytes, size);
    const std::uint64_t floor = cache_floor_bytes(size);
    const MemoryPressure pressure = memory_pressure(snapshot, signals, 0);
    const auto since_change = [&] {
        return last_change_
                   ? std::chrono::duration_cast<Duration>(snapshot.taken_at - *last_change_)
                   : Duration::max();
    };

    std::uint64_t to = capacity;
    std::string_view rule_name;
    std::string why;
    if (pressure.pressing) {
        calm_cycles_ = 0;
        if (capacity <= floor || since_change() < kCacheShrinkCooldown) return std::nullopt;
        to = std::max(floor, capacity / 2);
        rule_name = rule::cache_memory_pressure;
        const std::uint64_t evicted = cache.bytes > to ? cache.bytes - to : 0;
        why = pressure.cause + " → cache capacity " + format_size_approx(capacity) + " → " +
              format_size_approx(to) + " (halved, floor " + format_size_approx(floor) +
              "; it holds " + format_size_approx(cache.bytes) +
              (evicted ? ": " + format_size_approx(evicted) +
                             " evicted at once, least recently used first)"
                       : ": nothing to evict, its growth is bounded)");
    } else {
        ++calm_cycles_;
        if (capacity >= size || calm_cycles_ < kCacheCalmCycles ||
            since_change() < kCacheGrowCooldown ||
            signals.memory_psi_some_avg10 >= kMemoryPsiThreshold)
            return std::nullopt;
        // How far the cache may grow and the memory stay at or below the target fraction.
        std::optional<std::uint64_t> room;
        std::string room_text;
        const std::uint64_t line = pressure.line_bytes;
        if (line) {
            const auto target =
                static_cast<std::uint64_t>(kMemoryTargetFraction * static_cast<double>(line));
            room = target > pressure.held_bytes ? target - pressure.held_bytes : 0;
            room_text = "memory held " + format_size_approx(pressure.held_bytes) + ", " +
                        text::percent(kMemoryTargetFraction) + " of " +
                        (m.high_is_the_line() ? "memory.high " : "memory.max ") +
                        format_size_approx(line) + " = " + format_size_approx(target);
        } else if (m.host_total_bytes > 0 && m.host_available_bytes > 0) {
            const auto keep = static_cast<std::uint64_t>((1 - kMemoryTargetFraction) *
                                                         static_cast<double>(m.host_total_bytes));
            room = m.host_available_bytes > keep ? m.host_available_bytes - keep : 0;
            room_text = "host MemAvailable " + format_size_approx(m.host_available_bytes) +
                        ", keeping " + text::percent(1 - kMemoryTargetFraction) + " of " +
                        format_size_approx(m.host_total_bytes) + " free";
        }
        to = std::min({size, capacity * 2, capacity + room.value_or(size)});
        // Worth a decision: a quarter more at least, or the whole way to cache.size.
        if (to <= capacity || (to < size && to - capacity < capacity / 4)) return std::nullopt;
        rule_name = rule::cache_headroom;
        why = "no memory pressure for " + std::to_string(calm_cycles_) + " cycles";
        if (room) why += "; " + room_text + ": room for " + format_size_approx(*room) + " more";
        why += " → cache capacity " + format_size_approx(capacity) + " → " +
               format_size_approx(to) + " (towards cache.size " + format_size_approx(size) + ")";
    }
    last_change_ = snapshot.taken_at;
    calm_cycles_ = 0;
    const nlohmann::json inputs = {{"pressing", pressure.pressing},
                                   {"cause", pressure.cause},
                                   {"held_bytes", pressure.held_bytes},
                                   {"line_bytes", pressure.line_bytes},
                                   {"memory_psi_some_avg10", signals.memory_psi_some_avg10},
                                   {"new_oom_kills", signals.new_oom_kills},
                                   {"cache_bytes", cache.bytes},
                                   {"capacity_bytes", capacity},
                                   {"size_bytes", size},
                                   {"floor_bytes", floor}};
    return make_decision(knob::cache_capacity, snapshot.taken_at_wall, ByteSize{capacity},
                         ByteSize{to}, {rule_name, why, inputs.dump()});
}

}  // namespace tuner::policies
