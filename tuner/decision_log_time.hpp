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

// Rounds down to the precision the log stores, so memory and database copies compare equal.
WallClock::time_point floor_to_ms(WallClock::time_point time);

}  // namespace tuner
