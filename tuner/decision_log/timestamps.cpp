// RFC 3339 timestamps for the decision log (see timestamps.hpp).
#include "tuner/decision_log/timestamps.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>

namespace tuner {
namespace {

// system_clock counts nanoseconds in 64 bits and so ends on 2262-04-11: a later time would wrap
// around to 1677 and match every decision.
constexpr double kClockEndUnixSeconds = 9'214'646'400;  // 2262-01-01T00:00:00Z
constexpr int kClockEndYear = 2262;

// Reads exactly `digits` decimal digits at `pos`.
bool take_digits(std::string_view s, std::size_t& pos, int digits, int& out) {
    if (pos + static_cast<std::size_t>(digits) > s.size()) return false;
    int value = 0;
    for (int i = 0; i < digits; ++i) {
        const char c = s[pos + static_cast<std::size_t>(i)];
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
        value = value * 10 + (c - '0');
    }
    pos += static_cast<std::size_t>(digits);
    out = value;
    return true;
}

bool take_char(std::string_view s, std::size_t& pos, std::string_view allowed) {
    if (pos >= s.size() || allowed.find(s[pos]) == std::string_view::npos) return false;
    ++pos;
    return true;
}

}  // namespace

WallClock::time_point floor_to_ms(WallClock::time_point time) {
    return std::chrono::floor<std::chrono::milliseconds>(time);
}

std::string format_rfc3339_ms(WallClock::time_point time) {
    using namespace std::chrono;
    const auto ms = floor<milliseconds>(time);
    const auto day = floor<days>(ms);
    const year_month_day date{day};
    const hh_mm_ss clock{ms - day};
    char buf[40];
    std::snprintf(
        buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(date.year()),
        static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
        static_cast<int>(clock.hours().count()), static_cast<int>(clock.minutes().count()),
        static_cast<int>(clock.seconds().count()), static_cast<int>(clock.subseconds().count()));
    return buf;
}

Result<WallClock::time_point> parse_rfc3339(std::string_view text) {
    using namespace std::chrono;
    const auto fail = [&] {
        return Error{"not an RFC 3339 time: \"" + std::string(text) +
                         "\" (expected e.g. \"2024-05-01T10:00:00Z\" or "
                         "\"2024-05-01T12:00:00.250+02:00\")",
                     ""};
    };
    std::size_t pos = 0;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (!take_digits(text, pos, 4, y) || !take_char(text, pos, "-") ||
        !take_digits(text, pos, 2, mo) || !take_char(text, pos, "-") ||
        !take_digits(text, pos, 2, d) || !take_char(text, pos, "Tt ") ||
        !take_digits(text, pos, 2, h) || !take_char(text, pos, ":") ||
        !take_digits(text, pos, 2, mi) || !take_char(text, pos, ":") ||
        !take_digits(text, pos, 2, sec)) {
        return fail();
    }
    int fraction_ms = 0;
    if (take_char(text, pos, ".")) {
        int scale = 100;
        std::size_t digits = 0;
        while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
            fraction_ms += (text[pos] - '0') * scale;
            scale /= 10;
            ++pos;
            ++digits;
        }
        if (digits == 0) return fail();
    }
    int offset_minutes = 0;
    if (take_char(text, pos, "Zz")) {
    } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
        const int sign = text[pos] == '-' ? -1 : 1;
        ++pos;
        int oh = 0, om = 0;
        if (!take_digits(text, pos, 2, oh) || !take_char(text, pos, ":") ||
            !take_digits(text, pos, 2, om) || oh > 23 || om > 59) {
            return fail();
        }
        offset_minutes = sign * (oh * 60 + om);
    } else {
        return fail();
    }
    const year_month_day date{year{y}, month{static_cast<unsigned>(mo)},
                              day{static_cast<unsigned>(d)}};
    // RFC 3339 allows second 60 (a leap second); system_clock has none, so it folds into :59.
    if (pos != text.size() || !date.ok() || h > 23 || mi > 59 || sec > 60) return fail();
    if (y < 1970 || y >= kClockEndYear) {
        return Error{"time out of range: \"" + std::string(text) + "\" (years 1970 to 2261)", ""};
    }
    const auto local = sys_days{date} + hours{h} + minutes{mi} + seconds{std::min(sec, 59)} +
                       milliseconds{fraction_ms};
    return time_point_cast<WallClock::duration>(local - minutes{offset_minutes});
}

Result<WallClock::time_point> parse_since_time(std::string_view text, std::string_view what) {
    const auto too_late = [&] {
        return make_error(std::string(what), "\"" + std::string(text) +
                                                 "\" is after 2261, where the system clock ends");
    };
    double seconds = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
    if (!text.empty() && ec == std::errc{} && end == text.data() + text.size() && seconds >= 0) {
        // Also stops "inf", which from_chars reads as a number.
        if (!(seconds < kClockEndUnixSeconds)) return too_late();
        return WallClock::time_point{std::chrono::duration_cast<WallClock::duration>(
            std::chrono::duration<double>(seconds))};
    }
    int year = 0;
    if (text.size() >= 4 &&
        std::from_chars(text.data(), text.data() + 4, year).ptr == text.data() + 4 &&
        year >= kClockEndYear) {
        return too_late();
    }
    auto parsed = parse_rfc3339(text);
    if (!parsed) {
        return make_error(std::string(what),
                          "needs Unix seconds or an RFC 3339 time (e.g. 1795000000 or "
                          "2026-11-23T15:04:05Z), not \"" +
                              std::string(text) + "\"");
    }
    return parsed;
}

}  // namespace tuner
