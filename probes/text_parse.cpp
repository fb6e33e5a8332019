// Parsers for the kernel's small text formats (see text_parse.hpp).
#include "probes/text_parse.hpp"

#include <cctype>
#include <charconv>

namespace tuner::probes {
namespace {

template <typename T>
Result<T> parse_number(std::string_view text, const std::string& where, const char* kind) {
    const std::string_view s = trim(text);
    if (s.empty()) return make_error(where, std::string("empty, expected ") + kind);
    T value{};
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec == std::errc::result_out_of_range) {
        return make_error(where, std::string(kind) + " out of range: " + quote(s));
    }
    if (ec != std::errc{} || end != s.data() + s.size()) {
        return make_error(where, std::string("not ") + kind + ": " + quote(s));
    }
    return value;
}

// Calls `on_line(line)` for each line until it returns true.
template <typename F>
void for_each_line(std::string_view content, F&& on_line) {
    while (!content.empty()) {
        const std::size_t nl = content.find('\n');
        const std::string_view line = content.substr(0, nl);
        if (on_line(line)) return;
        if (nl == std::string_view::npos) return;
        content.remove_prefix(nl + 1);
    }
}

}  // namespace

std::string quote(std::string_view content) {
    constexpr std::size_t kMax = 120;
    std::string out = "\"";
    for (std::size_t i = 0; i < content.size() && i < kMax; ++i) {
        const char c = content[i];
        if (c == '\n')
            out += "\\n";
        else if (c == '"')
            out += "\\\"";
        else
            out += c;
    }
    if (content.size() > kMax) out += "…";
    out += '"';
    return out;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
        text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
        text.remove_suffix(1);
    return text;
}

Result<std::uint64_t> parse_u64(std::string_view text, const std::string& where) {
    return parse_number<std::uint64_t>(text, where, "a non-negative integer");
}

Result<std::int64_t> parse_i64(std::string_view text, const std::string& where) {
    return parse_number<std::int64_t>(text, where, "an integer");
}

Result<double> parse_double(std::string_view text, const std::string& where) {
    return parse_number<double>(text, where, "a decimal number");
}

Result<std::uint64_t> parse_single_u64(std::string_view content, const std::string& where) {
    if (trim(content).empty()) return make_error(where, "empty file, expected a number");
    return parse_u64(content, where);
}

Result<std::optional<std::uint64_t>> find_keyed_u64(std::string_view content, std::string_view key,
                                                    const std::string& where) {
    std::optional<std::string_view> value;
    for_each_line(content, [&](std::string_view line) {
        if (line.size() > key.size() && line.substr(0, key.size()) == key &&
            (line[key.size()] == ' ' || line[key.size()] == '\t')) {
            value = line.substr(key.size());
            return true;
        }
        return false;
    });
    if (!value) return std::optional<std::uint64_t>{};
    auto number = parse_u64(*value, where);
    if (!number) {
        return make_error(where, "bad value for " + std::string(key) + ": " +
                                     quote(std::string(key) + std::string(*value)));
    }
    return std::optional<std::uint64_t>{*number};
}

Result<std::optional<std::uint64_t>> find_kb_field_bytes(std::string_view content,
                                                         std::string_view key,
                                                         const std::string& where) {
    std::optional<std::string_view> line_found;
    for_each_line(content, [&](std::string_view line) {
        if (line.size() > key.size() && line.substr(0, key.size()) == key &&
            line[key.size()] == ':') {
            line_found = line;
            return true;
        }
        return false;
    });
    if (!line_found) return std::optional<std::uint64_t>{};
    std::string_view value = trim(line_found->substr(key.size() + 1));
    bool in_kb = false;
    if (value.size() >= 2 && value.substr(value.size() - 2) == "kB") {
        value.remove_suffix(2);
        in_kb = true;
    }
    auto number = parse_u64(value, where);
    if (!number)
        return make_error(where, "bad value for " + std::string(key) + ": " + quote(*line_found));
    const std::uint64_t bytes = in_kb ? *number * 1024 : *number;
    return std::optional<std::uint64_t>{bytes};
}

Result<unsigned> count_cpu_list(std::string_view content, const std::string& where) {
    const std::string_view list = trim(content);
    if (list.empty()) return make_error(where, "empty CPU list");
    unsigned count = 0;
    std::string_view rest = list;
    while (!rest.empty()) {
        const std::size_t comma = rest.find(',');
        const std::string_view item = rest.substr(0, comma);
        const std::size_t dash = item.find('-');
        auto first = parse_u64(item.substr(0, dash), where);
        auto last =
            dash == std::string_view::npos ? first : parse_u64(item.substr(dash + 1), where);
        if (!first || !last || *last < *first || *last >= 65536) {
            return make_error(where, "not a CPU list (like \"0-3,5\"): " + quote(list));
        }
        count += static_cast<unsigned>(*last - *first + 1);
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
    return count;
}

}  // namespace tuner::probes
