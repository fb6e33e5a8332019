// A Decision is one knob changing from an old to a new value, with the rule that chose it, a
// human reason and the inputs it saw. A Plan is what one control cycle decided: several
// decisions that share a plan_id (processes and threads changed together, say).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <variant>
#include <vector>

#include "model/units.hpp"

namespace tuner {

// Typed knob values: a worker count, a byte size, a duration, or PostgreSQL text ("128MB").
struct Count {
    std::int64_t value = 0;
    friend bool operator==(const Count&, const Count&) = default;
};
struct ByteSize {
    std::uint64_t bytes = 0;
    friend bool operator==(const ByteSize&, const ByteSize&) = default;
};
struct Seconds {
    double value = 0;
    friend bool operator==(const Seconds&, const Seconds&) = default;
};
struct Text {
    std::string value;
    friend bool operator==(const Text&, const Text&) = default;
};
using KnobValue = std::variant<std::monostate, Count, ByteSize, Seconds, Text>;

inline const char* value_type(const KnobValue& v) {
    switch (v.index()) {
        case 1:
            return "count";
        case 2:
            return "bytes";
        case 3:
            return "seconds";
        case 4:
            return "text";
        default:
            return "none";
    }
}

inline std::string to_string(const KnobValue& v) {
    if (const auto* c = std::get_if<Count>(&v)) return std::to_string(c->value);
    if (const auto* b = std::get_if<ByteSize>(&v)) return format_size(b->bytes);
    if (const auto* s = std::get_if<Seconds>(&v)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%gs", s->value);
        return buf;
    }
    if (const auto* t = std::get_if<Text>(&v)) return t->value;
    return "";
}

enum class Outcome { pending, applied, dry_run, overridden, failed, unchanged };

inline const char* to_string(Outcome o) {
    switch (o) {
        case Outcome::pending:
            return "pending";
        case Outcome::applied:
            return "applied";
        case Outcome::dry_run:
            return "dry_run";
        case Outcome::overridden:
            return "overridden";
        case Outcome::failed:
            return "failed";
        case Outcome::unchanged:
            return "unchanged";
    }
    return "?";
}

struct Decision {
    std::uint64_t id =
        0;  // assigned by the decision log (tuner/decision_log/log.hpp); 0 = not logged
    WallClock::time_point time{};
    std::uint64_t plan_id = 0;
    std::string subsystem;  // "workers", "db_pool", "postgres"
    std::string knob;       // "workers.count", "workers.threads", "shared_buffers", ...
    KnobValue old_value;
    KnobValue new_value;
    std::string rule;    // the policy that chose it: "seed_formula", "littles_law", "manual", ...
    std::string reason;  // "queue wait p95 120 ms > 50 ms; λ=310 rps, S=55 ms → need 22 workers"
    std::string inputs_json;  // the numbers the rule saw, as a JSON object
    Outcome outcome = Outcome::pending;
    std::string error;  // set when outcome == failed
};

struct Plan {
    std::uint64_t plan_id = 0;
    std::vector<Decision> decisions;
    std::vector<std::string> notes;  // what the policies saw but did not act on (knee, overrides)
};

}  // namespace tuner
