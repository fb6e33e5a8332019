// PostgreSQL value parsing in base units and secret redaction (see values.hpp).
#include "tuner/postgres/values.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>

namespace tuner::postgres {
namespace {

enum class UnitKind { none, memory, time };

struct Unit {
    UnitKind kind = UnitKind::none;
    double base = 1;  // bytes or milliseconds per unit
};

// PostgreSQL's unit names (guc.c: memory_unit_conversion_table, time_unit_conversion_table);
// memory units are case-sensitive there, and binary.
std::optional<Unit> unit_named(std::string_view name) {
    if (name == "B") return Unit{UnitKind::memory, 1};
    if (name == "kB") return Unit{UnitKind::memory, 1024.0};
    if (name == "MB") return Unit{UnitKind::memory, 1024.0 * 1024};
    if (name == "GB") return Unit{UnitKind::memory, 1024.0 * 1024 * 1024};
    if (name == "TB") return Unit{UnitKind::memory, 1024.0 * 1024 * 1024 * 1024};
    if (name == "us") return Unit{UnitKind::time, 0.001};
    if (name == "ms") return Unit{UnitKind::time, 1};
    if (name == "s") return Unit{UnitKind::time, 1000};
    if (name == "min") return Unit{UnitKind::time, 60'000};
    if (name == "h") return Unit{UnitKind::time, 3'600'000};
    if (name == "d") return Unit{UnitKind::time, 86'400'000};
    return std::nullopt;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// pg_settings.unit may carry a multiplier: "8kB" (pages), "16MB" (old WAL segments).
std::optional<Unit> guc_unit_of(std::string_view unit) {
    unit = trim(unit);
    if (unit.empty()) return Unit{};
    std::size_t digits = 0;
    while (digits < unit.size() && std::isdigit(static_cast<unsigned char>(unit[digits]))) ++digits;
    const double multiplier =
        digits ? std::strtod(std::string(unit.substr(0, digits)).c_str(), nullptr) : 1.0;
    auto base = unit_named(unit.substr(digits));
    if (!base) return std::nullopt;
    base->base *= multiplier;
    return base;
}

// Takes a leading decimal number (sign, fraction, exponent) off s.
std::optional<double> take_number(std::string_view& s) {
    const std::string text(s);
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || !std::isfinite(value)) return std::nullopt;
    s.remove_prefix(static_cast<std::size_t>(end - text.c_str()));
    return value;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    }
    return true;
}

// Replaces s[from, to) with "***".
void mask(std::string& s, std::size_t from, std::size_t to) {
    s.replace(from, to - from, "***");
}

}  // namespace

std::optional<double> parse_pg_value(std::string_view text, std::string_view guc_unit) {
    const auto setting_unit = guc_unit_of(guc_unit);
    if (!setting_unit) return std::nullopt;
    std::string_view s = trim(text);
    // Values written by ALTER SYSTEM may keep their quotes in some views.
    if (s.size() >= 2 && s.front() == '\'' && s.back() == '\'') s = trim(s.substr(1, s.size() - 2));
    const auto number = take_number(s);
    if (!number) return std::nullopt;
    s = trim(s);
    if (s.empty()) return *number * setting_unit->base;
    const auto suffix = unit_named(s);
    if (!suffix || suffix->kind != setting_unit->kind) return std::nullopt;
    return *number * suffix->base;
}

bool differs_enough_to_change(std::string_view configured, std::string_view wanted,
                              std::string_view guc_unit) {
    const auto c = parse_pg_value(configured, guc_unit);
    const auto w = parse_pg_value(wanted, guc_unit);
    if (c && w) {
        if (*w == 0) return *c != 0;
        return std::fabs(*c - *w) > 0.05 * std::fabs(*w);
    }
    return !iequals(trim(configured), trim(wanted));
}

bool same_pg_value(std::string_view a, std::string_view b, std::string_view guc_unit) {
    const auto x = parse_pg_value(a, guc_unit);
    const auto y = parse_pg_value(b, guc_unit);
    if (x && y) {
        if (*y == 0) return *x == 0;
        return std::fabs(*x - *y) <= 0.01 * std::fabs(*y);
    }
    return iequals(trim(a), trim(b));
}

bool is_setting_name(std::string_view name) {
    constexpr std::size_t kMaxPartBytes = 63;  // NAMEDATALEN - 1
    const auto is_ascii_letter = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    };
    const auto is_ascii_digit = [](char c) { return c >= '0' && c <= '9'; };
    if (name.empty()) return false;
    for (;;) {
        const auto dot = name.find('.');
        const std::string_view part = name.substr(0, dot);
        if (part.empty() || part.size() > kMaxPartBytes) return false;
        if (!is_ascii_letter(part.front()) && part.front() != '_') return false;
        for (const char c : part) {
            if (!is_ascii_letter(c) && !is_ascii_digit(c) && c != '_') return false;
        }
        if (dot == std::string_view::npos) return true;
        name.remove_prefix(dot + 1);
    }
}

std::string redact_secrets(std::string_view text) {
    std::string s(text);
    // key=value connection strings: password = value, password='va lue'.
    std::size_t pos = 0;
    while (true) {
        std::string lower = s;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        pos = lower.find("password", pos);
        if (pos == std::string::npos) break;
        std::size_t i = pos + 8;
        while (i < s.size() && s[i] == ' ') ++i;
        if (i >= s.size() || s[i] != '=') {
            pos += 8;
            continue;
        }
        ++i;
        while (i < s.size() && s[i] == ' ') ++i;
        std::size_t end = i;
        if (end < s.size() && s[end] == '\'') {
            ++end;
            while (end < s.size() && s[end] != '\'') end += (s[end] == '\\') ? 2 : 1;
            end = std::min(end + 1, s.size());
        } else {
            while (end < s.size() && !std::isspace(static_cast<unsigned char>(s[end])) &&
                   s[end] != '&')
                ++end;
        }
        mask(s, i, end);
        pos = i + 3;
    }
    // URIs: scheme://user:password@host → scheme://***@host.
    for (const std::string_view scheme : {"postgresql://", "postgres://"}) {
        pos = 0;
        while ((pos = s.find(scheme, pos)) != std::string::npos) {
            const std::size_t start = pos + scheme.size();
            std::size_t end = start;
            while (end < s.size() && s[end] != '@' && s[end] != '/' && s[end] != '?' &&
                   !std::isspace(static_cast<unsigned char>(s[end])))
                ++end;
            if (end < s.size() && s[end] == '@' && end > start) mask(s, start, end);
            pos = start;
        }
    }
    return s;
}

}  // namespace tuner::postgres
