// Timestamps of the decision log: RFC 3339 UTC text with milliseconds ("2024-05-01T10:00:00.123Z"),
// which sorts as text in time order, so SQLite can index and compare it directly.
#pragma once

#include <string>
#include <string_view>

#include "model/result.hpp"
#include "model/units.hpp"

namespace tuner {

// The time rounded down to the millisecond, as "YYYY-MM-DDTHH:MM:SS.mmmZ".
std::string format_rfc3339_ms(WallClock::time_point time);

// "2024-05-01T10:00:00Z", "2024-05-01T10:00:00.5+02:00", "2024-05-01 10:00:00.123z": RFC 3339
// date-time with any fraction (kept to the millisecond) and a Z or ±HH:MM offset.
Result<WallClock::time_point> parse_rfc3339(std::string_view text);

// A point in time as the admin API's `since` and `tunerctl decisions --since` take it: Unix seconds
// ("1795000000", "1795000000.5") or an RFC 3339 time ("2026-11-23T15:04:05Z", fractions and
// offsets allowed). Times from 2262 on, where the system clock's 64-bit nanoseconds end, are an
// error that says so. `what` names the input in the error ("since", "--since").
Result<WallClock::time_point> parse_since_time(std::string_view text, std::string_view what);

// Rounds down to the precision the log stores, so memory and database copies compare equal.
WallClock::time_point floor_to_ms(WallClock::time_point time);

}  // namespace tuner
