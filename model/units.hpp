// Units of the config language and of the JSON we print: byte sizes ("512MB", binary, as in
// systemd and PostgreSQL) and durations ("500ms", "30s", "1h30m"), parsed and formatted so that
// format(parse(x)) == x for the canonical forms.
#pragma once

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <string_view>

#include "model/result.hpp"

namespace tuner {

using Duration = std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using WallClock = std::chrono::system_clock;

inline constexpr std::uint64_t KiB = 1024ULL;
inline constexpr std::uint64_t MiB = 1024ULL * KiB;
inline constexpr std::uint64_t GiB = 1024ULL * MiB;
inline constexpr std::uint64_t TiB = 1024ULL * GiB;

namespace units_detail {

inline std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

inline std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// Reads a non-negative decimal number ("12", "1.5") from the front of s.
inline bool take_number(std::string_view& s, double& out, bool& had_fraction) {
    std::size_t i = 0;
    std::uint64_t whole = 0;
    bool digits = false;
    had_fraction = false;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
        if (whole > (std::numeric_limits<std::uint64_t>::max() - 9) / 10) return false;
        whole = whole * 10 + static_cast<std::uint64_t>(s[i] - '0');
        digits = true;
        ++i;
    }
    double value = static_cast<double>(whole);
    if (i < s.size() && s[i] == '.') {
        ++i;
        double scale = 0.1;
        bool frac_digits = false;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
            value += scale * (s[i] - '0');
            scale /= 10;
            frac_digits = true;
            ++i;
        }
        if (!frac_digits) return false;
        had_fraction = true;
        digits = true;
    }
    if (!digits) return false;
    out = value;
    s.remove_prefix(i);
    return true;
}

}  // namespace units_detail

// "512MB", "1.5GiB", "64KB", "4096", "0": sizes are binary (KB = KiB = 1024 bytes).
inline Result<std::uint64_t> parse_size(std::string_view text) {
    using namespace units_detail;
    std::string_view s = trim(text);
    const std::string quoted = "\"" + std::string(text) + "\"";
    double number = 0;
    bool fraction = false;
    if (!take_number(s, number, fraction)) {
        return Error{"not a size: " + quoted + " (expected e.g. \"512MB\", \"1GB\", \"64KB\")", ""};
    }
    const std::string unit = lower(trim(s));
    std::uint64_t mult = 0;
    if (unit.empty() || unit == "b")
        mult = 1;
    else if (unit == "k" || unit == "kb" || unit == "kib")
        mult = KiB;
    else if (unit == "m" || unit == "mb" || unit == "mib")
        mult = MiB;
    else if (unit == "g" || unit == "gb" || unit == "gib")
        mult = GiB;
    else if (unit == "t" || unit == "tb" || unit == "tib")
        mult = TiB;
    else {
        return Error{
            "unknown size unit in " + quoted + " (use B, KB, MB, GB or TB; binary, 1KB = 1024B)",
            ""};
    }
    const double bytes = number * static_cast<double>(mult);
    if (bytes >= 18446744073709551615.0) return Error{"size too large: " + quoted, ""};
    if (fraction && mult == 1) return Error{"a byte count must be whole: " + quoted, ""};
    return static_cast<std::uint64_t>(std::llround(bytes));
}

// The shortest exact spelling: 536870912 -> "512MB", 1536 -> "1536B"... 1.5KB is printed "1536B".
inline std::string format_size(std::uint64_t bytes) {
    if (bytes == 0) return "0";
    struct Unit {
        std::uint64_t mult;
        const char* name;
    };
    constexpr Unit units[] = {{TiB, "TB"}, {GiB, "GB"}, {MiB, "MB"}, {KiB, "KB"}};
    for (const auto& u : units) {
        if (bytes % u.mult == 0) return std::to_string(bytes / u.mult) + u.name;
    }
    return std::to_string(bytes) + "B";
}

// Human rounding for logs and reasons: "181MB", "1.5GB".
inline std::string format_size_approx(std::uint64_t bytes) {
    const double b = static_cast<double>(bytes);
    char buf[32];
    if (b >= static_cast<double>(GiB))
        std::snprintf(buf, sizeof buf, "%.1fGB", b / static_cast<double>(GiB));
    else if (b >= static_cast<double>(MiB))
        std::snprintf(buf, sizeof buf, "%.0fMB", b / static_cast<double>(MiB));
    else if (b >= static_cast<double>(KiB))
        std::snprintf(buf, sizeof buf, "%.0fKB", b / static_cast<double>(KiB));
    else
        std::snprintf(buf, sizeof buf, "%lluB", static_cast<unsigned long long>(bytes));
    return buf;
}

// "500ms", "30s", "5m", "1h30m", "30d", "0". Units: ms, s, m (min), h, d.
inline Result<Duration> parse_duration(std::string_view text) {
    using namespace units_detail;
    std::string_view s = trim(text);
    const std::string quoted = "\"" + std::string(text) + "\"";
    if (s == "0") return Duration{0};
    if (s.empty()) return Error{"empty duration (expected e.g. \"500ms\", \"30s\", \"5m\")", ""};
    double total_ms = 0;
    while (!s.empty()) {
        double number = 0;
        bool fraction = false;
        if (!take_number(s, number, fraction)) {
            return Error{
                "not a duration: " + quoted + " (expected e.g. \"500ms\", \"30s\", \"5m\")", ""};
        }
        std::size_t n = 0;
        while (n < s.size() && std::isalpha(static_cast<unsigned char>(s[n]))) ++n;
        const std::string unit = lower(s.substr(0, n));
        s.remove_prefix(n);
        s = trim(s);
        double mult = 0;
        if (unit == "ms")
            mult = 1;
        else if (unit == "s" || unit == "sec")
            mult = 1000;
        else if (unit == "m" || unit == "min")
            mult = 60'000;
        else if (unit == "h")
            mult = 3'600'000;
        else if (unit == "d")
            mult = 86'400'000;
        else if (unit.empty()) {
            return Error{"duration needs a unit: " + quoted + " (ms, s, m, h or d, e.g. \"30s\")",
                         ""};
        } else {
            return Error{
                "unknown duration unit \"" + unit + "\" in " + quoted + " (use ms, s, m, h or d)",
                ""};
        }
        total_ms += number * mult;
    }
    if (total_ms > 1e15) return Error{"duration too long: " + quoted, ""};
    return Duration{static_cast<Duration::rep>(std::llround(total_ms))};
}

// The shortest exact spelling: 30000ms -> "30s", 90s -> "90s", 1500ms -> "1500ms".
inline std::string format_duration(Duration d) {
    const auto ms = d.count();
    if (ms == 0) return "0";
    struct Unit {
        std::int64_t mult;
        const char* name;
    };
    constexpr Unit units[] = {{86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}};
    for (const auto& u : units) {
        if (ms % u.mult == 0) return std::to_string(ms / u.mult) + u.name;
    }
    return std::to_string(ms) + "ms";
}

inline double to_seconds(Duration d) {
    return static_cast<double>(d.count()) / 1000.0;
}

}  // namespace tuner
