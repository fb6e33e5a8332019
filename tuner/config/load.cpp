// Config loading: TOML text -> Config in one pass that collects every issue (see load.hpp).
#include "tuner/config/load.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include <toml++/toml.h>

#include "tuner/config/keys.hpp"

namespace tuner::config {
namespace {

using detail::IssueSink;

// Optimal string alignment distance (Levenshtein plus adjacent transpositions, Damerau 1964):
// "max_reqeusts" is one edit from "max_requests", as a person would count it.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        }
    }
    return d[a.size()][b.size()];
}

constexpr std::size_t kMaxSuggestionDistance = 2;

// The closest known table name, when a typo away.
std::optional<std::string> suggest_section(std::string_view unknown) {
    std::optional<std::string> best;
    std::size_t best_distance = kMaxSuggestionDistance + 1;
    for (const auto& section : detail::config_sections()) {
        const auto distance = edit_distance(unknown, section.name);
        if (distance < best_distance) {
            best_distance = distance;
            best = std::string(section.name);
        }
    }
    return best;
}

// The closest known dotted key when a typo away; else the keys of that very name in other
// sections (`level` written under [server]: compression.level or log.level).
std::optional<std::string> suggest_key(std::string_view unknown_dotted, std::string_view name) {
    std::optional<std::string> best;
    std::size_t best_distance = kMaxSuggestionDistance + 1;
    for (const auto& key : detail::config_keys()) {
        const auto distance = edit_distance(unknown_dotted, key.dotted());
        if (distance < best_distance) {
            best_distance = distance;
            best = key.dotted();
        }
    }
    if (best) return best;
    // A name in several sections (`level`: compression.level, log.level) names them all.
    for (const auto& key : detail::config_keys()) {
        if (key.name != name) continue;
        best = best ? *best + " or " + key.dotted() : key.dotted();
    }
    return best;
}

std::string with_suggestion(std::string message, const std::optional<std::string>& suggestion) {
    if (suggestion) message += "; did you mean " + *suggestion + "?";
    return message;
}

// A top-level entry that is not one of the known sections.
void report_unknown_top_level(const toml::key& name, const toml::node& node, IssueSink& sink) {
    const std::string text(name.str());
    if (node.is_table()) {
        auto suggestion = suggest_section(text);
        if (suggestion) suggestion = "[" + *suggestion + "]";
        sink.add(text, name.source(), with_suggestion("unknown table [" + text + "]", suggestion));
        return;
    }
    sink.add(text, name.source(),
             with_suggestion("unknown key " + detail::quoted(text) + " outside any [section]",
                             suggest_key(text, text)));
}

void read_section(const toml::key& section_name, const toml::node& node, Config& config,
                  detail::KeyPositions& positions, IssueSink& sink) {
    const std::string section(section_name.str());
    if (section == "static") {
        detail::read_static_mounts(node, config, sink);
        return;
    }
    if (detail::find_section(section) == nullptr) {
        report_unknown_top_level(section_name, node, sink);
        return;
    }
    const auto* table = node.as_table();
    if (table == nullptr) {
        sink.add(section, node.source(),
                 "expected a table [" + section + "], got " + detail::describe(node));
        return;
    }
    for (const auto& [name, value] : *table) {
        const std::string dotted = section + "." + std::string(name.str());
        const auto* key = detail::find_key(section, name.str());
        if (key == nullptr) {
            sink.add(dotted, name.source(),
                     with_suggestion(
                         "unknown key " + detail::quoted(name.str()) + " in [" + section + "]",
                         suggest_key(dotted, name.str())));
            continue;
        }
        positions[dotted] = {name.source().begin.line, name.source().begin.column};
        key->read(value, dotted, config, sink);
    }
}

// The whole file, or why it cannot be read.
Result<std::string> read_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return system_error(path, "cannot open config file");
    struct stat info {};
    if (::fstat(fd, &info) == 0 && S_ISDIR(info.st_mode)) {
        ::close(fd);
        return make_error(path, "cannot read config file: it is a directory");
    }
    std::string text;
    char buffer[8192];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            const int saved = errno;
            ::close(fd);
            return make_error(path,
                              "cannot read config file: " + std::string(std::strerror(saved)));
        }
        text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
}

}  // namespace

std::string ConfigIssue::to_string() const {
    std::string out = file;
    if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
    out += ": ";
    if (!key.empty()) out += key + ": ";
    return out + message;
}

LoadedConfig parse_config(std::string_view toml_text, std::string source_name) {
    LoadedConfig loaded;
    IssueSink sink(source_name);
    loaded.config.source = std::move(source_name);
    toml::table document;
    try {
        document = toml::parse(toml_text, std::string_view(loaded.config.source));
    } catch (const toml::parse_error& error) {
        // toml++ stops at the first syntax error; nothing after it can be trusted.
        sink.add("", error.source(), "TOML syntax error: " + std::string(error.description()));
        loaded.errors = sink.take_in_file_order();
        return loaded;
    }
    detail::KeyPositions positions;
    for (const auto& [name, node] : document) {
        read_section(name, node, loaded.config, positions, sink);
    }
    detail::check_cross_key_rules(loaded.config, positions, sink);
    loaded.errors = sink.take_in_file_order();
    return loaded;
}

LoadedConfig load_config_file(const std::string& path) {
    auto text = read_file(path);
    if (!text) {
        LoadedConfig loaded;
        loaded.config.source = path;
        loaded.errors.push_back(ConfigIssue{path, "", 0, 0, text.error().what});
        return loaded;
    }
    return parse_config(*text, path);
}

std::vector<std::string> known_config_keys() {
    std::vector<std::string> names;
    for (const auto& key : detail::config_keys()) names.push_back(key.dotted());
    return names;
}

std::vector<std::string> restart_only_keys() {
    std::vector<std::string> names;
    for (const auto& key : detail::config_keys()) {
        if (key.restart_only) names.push_back(key.dotted());
    }
    return names;
}

std::vector<std::string> keep_restart_only(const Config& running, Config& next) {
    std::vector<std::string> kept;
    for (const auto& key : detail::config_keys()) {
        if (!key.restart_only || key.write(running).toml == key.write(next).toml) continue;
        key.copy(running, next);
        kept.push_back(key.dotted());
    }
    return kept;
}

}  // namespace tuner::config
