// Typed readers and writers of single TOML values for the config table: each reader checks the
// node's type, converts it (sizes, durations, enums) and reports what is wrong to an IssueSink.
// Internal to tuner_config.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "model/units.hpp"
#include "tuner/config/load.hpp"

namespace tuner::config::detail {

// Collects the issues of one document, each at the position toml++ recorded for it.
class IssueSink {
public:
    explicit IssueSink(std::string file) : file_(std::move(file)) {}

    void add(std::string key, const toml::source_region& at, std::string message);
    void add(std::string key, std::size_t line, std::size_t column, std::string message);
    // The keys that have an issue so far.
    [[nodiscard]] std::set<std::string, std::less<>> keys_with_issues() const;
    // Every issue, ordered by line and column so they read top to bottom like the file.
    std::vector<ConfigIssue> take_in_file_order();

private:
    std::string file_;
    std::vector<ConfigIssue> issues_;
};

// `"text"` with the quotes, for messages.
std::string quoted(std::string_view text);
// What a node holds, for "got ..." in messages: `integer 30`, `string "abc"`, `array`.
std::string describe(const toml::node& node);
// `unknown value "x" (allowed: a, b, c)`.
std::string not_allowed_message(std::string_view value,
                                const std::vector<std::string_view>& allowed);

// Readers: the converted value, or nullopt after reporting the problem under `key`.
std::optional<std::string> read_string(const toml::node& node, const std::string& key,
                                       IssueSink& sink);
// A size string ("512MB", binary units) or an integer byte count.
std::optional<std::uint64_t> read_size(const toml::node& node, const std::string& key,
                                       IssueSink& sink);
// A duration string with a unit ("500ms", "30s"); a bare integer is refused (which unit?).
std::optional<Duration> read_duration(const toml::node& node, const std::string& key,
                                      IssueSink& sink);
// A non-negative integer no larger than `max`.
std::optional<std::uint64_t> read_whole_number(const toml::node& node, const std::string& key,
                                               IssueSink& sink, std::uint64_t max);
std::optional<double> read_number(const toml::node& node, const std::string& key, IssueSink& sink);
std::optional<bool> read_bool(const toml::node& node, const std::string& key, IssueSink& sink);

template <typename Unsigned>
std::optional<Unsigned> read_unsigned(const toml::node& node, const std::string& key,
                                      IssueSink& sink) {
    const auto value = read_whole_number(node, key, sink, std::numeric_limits<Unsigned>::max());
    if (!value) return std::nullopt;
    return static_cast<Unsigned>(*value);
}

// One of a fixed set of names; `Enum` must have a to_string(Enum) in namespace tuner.
template <typename Enum>
std::optional<Enum> read_choice(const toml::node& node, const std::string& key, IssueSink& sink,
                                const std::vector<Enum>& choices) {
    const auto text = read_string(node, key, sink);
    if (!text) return std::nullopt;
    std::vector<std::string_view> names;
    for (const Enum choice : choices) {
        if (*text == to_string(choice)) return choice;
        names.emplace_back(to_string(choice));
    }
    sink.add(key, node.source(), not_allowed_message(*text, names));
    return std::nullopt;
}

// Writers: the TOML spelling of a value, produced by toml++'s formatter (quoting, escapes).
std::string toml_text(const toml::node& node);
std::string toml_string(std::string_view text);
// The shortest spelling that reads back as the same double, always with a '.' or an exponent.
std::string toml_float(double value);

}  // namespace tuner::config::detail
