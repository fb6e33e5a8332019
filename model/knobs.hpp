// The table of knobs (as bpftune keeps each tuner's tunables in one descs[] table): every knob a
// Decision can move, with its subsystem, its value type and what it affects. Knob names are
// spelled here and nowhere else; the daemon maps each knob to its actuator, and make_decision()
// is the one way a Decision is filled in.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "model/decision.hpp"

namespace tuner {

enum class KnobType { count, bytes, seconds, text };

inline const char* to_string(KnobType t) {
    switch (t) {
        case KnobType::count:
            return "count";
        case KnobType::bytes:
            return "bytes";
        case KnobType::seconds:
            return "seconds";
        case KnobType::text:
            return "text";
    }
    return "?";
}

struct Knob {
    std::string_view name;       // "workers.count"; for a family, the prefix: "postgres."
    std::string_view subsystem;  // "workers", "db_pool", "postgres"
    KnobType type;
    std::string_view affects;  // one line: what moving it changes
    bool family = false;       // true: the decision's knob is a member (a PostgreSQL setting)
};

namespace knob {
// The worker pool.
inline constexpr Knob workers_count{"workers.count", "workers", KnobType::count,
                                    "worker processes the pool keeps ready"};
inline constexpr Knob workers_threads{"workers.threads", "workers", KnobType::count,
                                      "concurrent requests each worker process serves"};
inline constexpr Knob workers_manual_target{
    "workers.manual_target", "workers", KnobType::count,
    "an administrator's pin of workers.count (POST /workers/target)"};
// Bounds a config reload changed: recorded so the log says why the pool moves next.
inline constexpr Knob workers_min{"workers.min", "workers", KnobType::count,
                                  "the smallest pool the policies may choose"};
inline constexpr Knob workers_max{"workers.max", "workers", KnobType::count,
                                  "the largest pool the policies may choose"};
inline constexpr Knob workers_threads_max{"workers.threads_max", "workers", KnobType::count,
                                          "the most threads per process the policies may choose"};
inline constexpr Knob workers_fixed_count{"workers.fixed_count", "workers", KnobType::count,
                                          "the pool size of mode = \"fixed\""};
inline constexpr Knob workers_mode{"workers.mode", "workers", KnobType::text,
                                   "which policy sizes the pool: fixed, formula or adaptive"};
// The app's database connection pools (handed to workers through their environment).
inline constexpr Knob db_pool_size{"db_pool.pool_size", "db_pool", KnobType::count,
                                   "connections each worker's pool keeps open (DB_POOL_SIZE)"};
inline constexpr Knob db_pool_max_overflow{
    "db_pool.max_overflow", "db_pool", KnobType::count,
    "connections a worker's pool may open beyond pool_size (DB_MAX_OVERFLOW)"};
inline constexpr Knob db_pool_recycle{
    "db_pool.pool_recycle", "db_pool", KnobType::seconds,
    "age at which a pooled connection is replaced (DB_POOL_RECYCLE)"};
inline constexpr Knob db_pool_timeout{
    "db_pool.pool_timeout", "db_pool", KnobType::seconds,
    "how long a request waits for a pooled connection (DB_POOL_TIMEOUT)"};
// The front's response compression: the gzip level (brotli's quality follows it).
inline constexpr Knob compression_level{"compression.level", "compression", KnobType::count,
                                        "gzip level of compressed responses (brotli in step)"};
// The front's micro-cache: the bytes it may hold, at most cache.size (lowered under memory
// pressure, policies/cache_capacity.hpp).
inline constexpr Knob cache_capacity{"cache.capacity", "cache", KnobType::bytes,
                                     "bytes the micro-cache may hold (at most cache.size)"};
// PostgreSQL's own settings: one knob per setting, named by the setting ("shared_buffers").
inline constexpr Knob postgres_setting{"postgres.", "postgres", KnobType::text,
                                       "a PostgreSQL setting (ALTER SYSTEM)", true};

inline constexpr std::array all{&workers_count,        &workers_threads, &workers_manual_target,
                                &workers_min,          &workers_max,     &workers_threads_max,
                                &workers_fixed_count,  &workers_mode,    &db_pool_size,
                                &db_pool_max_overflow, &db_pool_recycle, &db_pool_timeout,
                                &compression_level,    &cache_capacity,  &postgres_setting};

// The row of a knob name, or null (a family member such as "shared_buffers" is found by its
// subsystem, since its name is the setting's own).
inline const Knob* find(std::string_view name, std::string_view subsystem = {}) {
    for (const Knob* k : all) {
        if (!k->family && k->name == name) return k;
        if (k->family && !subsystem.empty() && k->subsystem == subsystem) return k;
    }
    return nullptr;
}
}  // namespace knob

// True when `value` has the type the knob declares (an absent value, monostate, always fits:
// a knob that had no value before, or a pin released).
inline bool fits(const Knob& k, const KnobValue& value) {
    switch (value.index()) {
        case 0:
            return true;
        case 1:
            return k.type == KnobType::count;
        case 2:
            return k.type == KnobType::bytes;
        case 3:
            return k.type == KnobType::seconds;
        default:
            return k.type == KnobType::text;
    }
}

// What a Decision says about itself; the plan id, outcome and id are filled in by apply().
struct DecisionText {
    std::string_view rule;
    std::string reason;
    std::string inputs_json = "{}";
};

// The one way to fill in a Decision. `time` is given, not read: policies take it from their
// Snapshot, so tests drive them with a simulated clock. `member` names the setting of a family
// knob (knob::postgres_setting); it is ignored otherwise.
inline Decision make_decision(const Knob& k, WallClock::time_point time, KnobValue old_value,
                              KnobValue new_value, DecisionText text,
                              std::string_view member = {}) {
    Decision d;
    d.time = time;
    d.subsystem = std::string(k.subsystem);
    d.knob = k.family ? std::string(member) : std::string(k.name);
    d.old_value = std::move(old_value);
    d.new_value = std::move(new_value);
    d.rule = std::string(text.rule);
    d.reason = std::move(text.reason);
    d.inputs_json = std::move(text.inputs_json);
    return d;
}

// Does this decision move that knob? (The daemon's code asks this instead of comparing names.)
inline bool moves(const Decision& d, const Knob& k) {
    return k.family ? d.subsystem == k.subsystem : d.knob == k.name;
}

// The new value of a bytes knob, or nullopt when it holds another type.
inline std::optional<std::uint64_t> new_bytes(const Decision& d) {
    const auto* b = std::get_if<ByteSize>(&d.new_value);
    if (!b) return std::nullopt;
    return b->bytes;
}

// The new value of a count knob, or nullopt when it holds another type.
inline std::optional<unsigned> new_count(const Decision& d) {
    const auto* c = std::get_if<Count>(&d.new_value);
    if (!c || c->value < 0) return std::nullopt;
    return static_cast<unsigned>(c->value);
}

}  // namespace tuner
