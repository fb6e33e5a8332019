// Number formatting for decision reasons: "310", "5.2", "91 %", "120 ms" — short and stable, so
// reasons read the same in logs, SQLite and /performance.
#pragma once

#include <cstdio>
#include <string>

namespace tuner::policies::text {

inline std::string number(double value, int decimals = 0) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
    return buf;
}

// 0.91 -> "91 %"
inline std::string percent(double fraction) {
    return number(fraction * 100.0) + " %";
}

inline std::string ms(double milliseconds) {
    return number(milliseconds, milliseconds < 10 ? 1 : 0) + " ms";
}

inline std::string rps(double per_second) {
    return number(per_second) + " rps";
}

}  // namespace tuner::policies::text
