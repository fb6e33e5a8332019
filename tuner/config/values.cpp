// Typed readers and writers of single TOML values (see values.hpp).
#include "tuner/config/values.hpp"

#include <algorithm>
#include <charconv>
#include <sstream>
#include <tuple>

namespace tuner::config::detail {

void IssueSink::add(std::string key, const toml::source_region& at, std::string message) {
    add(std::move(key), at.begin.line, at.begin.column, std::move(message));
}

void IssueSink::add(std::string key, std::size_t line, std::size_t column, std::string message) {
    issues_.push_back(ConfigIssue{file_, std::move(key), line, column, std::move(message)});
}

std::set<std::string, std::less<>> IssueSink::keys_with_issues() const {
    std::set<std::string, std::less<>> keys;
    for (const auto& issue : issues_) keys.insert(issue.key);
    return keys;
}

std::vector<ConfigIssue> IssueSink::take_in_file_order() {
    std::stable_sort(issues_.begin(), issues_.end(), [](const auto& a, const auto& b) {
        return std::tie(a.line, a.column) < std::tie(b.line, b.column);
    });
    return std::move(issues_);
}

std::string quoted(std::string_view text) {
    return "\"" + std::string(text) + "\"";
}

std::string describe(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::string:
            return "string " + quoted(*node.value<std::string>());
        case toml::node_type::integer:
            return "integer " + std::to_string(*node.value<std::int64_t>());
        case toml::node_type::floating_point:
            return "float " + toml_float(*node.value<double>());
        case toml::node_type::boolean:
            return *node.value<bool>() ? "boolean true" : "boolean false";
        case toml::node_type::array:
            return "array";
        case toml::node_type::table:
            return "table";
        case toml::node_type::date:
            return "date";
        case toml::node_type::time:
            return "time";
        case toml::node_type::date_time:
            return "date-time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

std::string not_allowed_message(std::string_view value,
                                const std::vector<std::string_view>& allowed) {
    std::string names;
    for (const auto name : allowed) {
        if (!names.empty()) names += ", ";
        names += name;
    }
    return "unknown value " + quoted(value) + " (allowed: " + names + ")";
}

namespace {

// The value a units parser (parse_size, parse_duration) produced, or nothing after reporting its
// error at the node.
template <typename T>
std::optional<T> converted(Result<T> parsed, const toml::node& node, const std::string& key,
                           IssueSink& sink) {
    if (parsed) return std::move(parsed).value();
    sink.add(key, node.source(), parsed.error().what);
    return std::nullopt;
}

}  // namespace

std::optional<std::string> read_string(const toml::node& node, const std::string& key,
                                       IssueSink& sink) {
    if (const auto text = node.value_exact<std::string>()) return *text;
    sink.add(key, node.source(), "expected a string, got " + describe(node));
    return std::nullopt;
}

std::optional<std::uint64_t> read_size(const toml::node& node, const std::string& key,
                                       IssueSink& sink) {
    if (const auto text = node.value_exact<std::string>()) {
        return converted<std::uint64_t>(parse_size(*text), node, key, sink);
    }
    if (const auto count = node.value_exact<std::int64_t>()) {
        if (*count >= 0) return static_cast<std::uint64_t>(*count);
        sink.add(key, node.source(), "a size cannot be negative, got " + describe(node));
        return std::nullopt;
    }
    sink.add(key, node.source(),
             "expected a size like \"512MB\" (or a byte count), got " + describe(node));
    return std::nullopt;
}

std::optional<Duration> read_duration(const toml::node& node, const std::string& key,
                                      IssueSink& sink) {
    if (const auto text = node.value_exact<std::string>()) {
        return converted<Duration>(parse_duration(*text), node, key, sink);
    }
    std::string message = "expected a duration string like \"30s\", got " + describe(node);
    if (const auto count = node.value_exact<std::int64_t>()) {
        const auto n = std::to_string(*count);
        message += ": add a unit, e.g. \"" + n + "s\" or \"" + n + "ms\"";
    }
    sink.add(key, node.source(), std::move(message));
    return std::nullopt;
}

std::optional<std::uint64_t> read_whole_number(const toml::node& node, const std::string& key,
                                               IssueSink& sink, std::uint64_t max) {
    const auto number = node.value_exact<std::int64_t>();
    if (!number) {
        sink.add(key, node.source(), "expected a whole number, got " + describe(node));
        return std::nullopt;
    }
    if (*number < 0) {
        sink.add(key, node.source(), "must not be negative, got " + std::to_string(*number));
        return std::nullopt;
    }
    if (static_cast<std::uint64_t>(*number) > max) {
        sink.add(
            key, node.source(),
            "too large: " + std::to_string(*number) + " (at most " + std::to_string(max) + ")");
        return std::nullopt;
    }
    return static_cast<std::uint64_t>(*number);
}

std::optional<double> read_number(const toml::node& node, const std::string& key, IssueSink& sink) {
    if (const auto number = node.value_exact<double>()) return *number;
    if (const auto whole = node.value_exact<std::int64_t>()) return static_cast<double>(*whole);
    sink.add(key, node.source(), "expected a number like 0.8, got " + describe(node));
    return std::nullopt;
}

std::optional<bool> read_bool(const toml::node& node, const std::string& key, IssueSink& sink) {
    if (const auto flag = node.value_exact<bool>()) return *flag;
    sink.add(key, node.source(), "expected true or false, got " + describe(node));
    return std::nullopt;
}

std::string toml_text(const toml::node& node) {
    // Basic ("double-quoted") strings only, as the documentation and the sketch spell them.
    std::ostringstream out;
    out << toml::toml_formatter{node, toml::format_flags::allow_unicode_strings};
    return out.str();
}

std::string toml_string(std::string_view text) {
    return toml_text(toml::value<std::string>(std::string(text)));
}

std::string toml_float(double value) {
    // toml++ prints 0.8 as 0.80000000000000004 (17 significant digits); std::to_chars gives the
    // shortest text that round-trips, which is what a person wrote.
    char buffer[64];
    const auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
    std::string text(buffer, error == std::errc{} ? end : buffer);
    const bool looks_integral = std::all_of(
        text.begin(), text.end(), [](char c) { return c == '-' || (c >= '0' && c <= '9'); });
    if (looks_integral) text += ".0";  // TOML needs a '.' or exponent to read a float back
    return text;
}

}  // namespace tuner::config::detail
