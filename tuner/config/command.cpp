// Readers and writers of workers.command, workers.env and workers.ports (see command.hpp).
#include "tuner/config/command.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <optional>
#include <sstream>

namespace tuner::config::detail {
namespace {

bool is_identifier(std::string_view name) {
    if (name.empty() || std::isdigit(static_cast<unsigned char>(name.front()))) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
}

// Every {name} in `arg` that tunerd would not substitute. Braces around anything that is not an
// identifier (JSON in an argument, say) are left alone.
std::vector<std::string> unknown_placeholders(std::string_view arg) {
    std::vector<std::string> unknown;
    const auto& known = command_placeholders();
    for (auto open = arg.find('{'); open != std::string_view::npos;
         open = arg.find('{', open + 1)) {
        const auto close = arg.find('}', open + 1);
        if (close == std::string_view::npos) break;
        const auto name = arg.substr(open + 1, close - open - 1);
        if (is_identifier(name) && std::find(known.begin(), known.end(), name) == known.end()) {
            unknown.emplace_back(name);
        }
    }
    return unknown;
}

std::string known_placeholders_text() {
    std::string text;
    for (const auto name : command_placeholders()) {
        if (!text.empty()) text += ", ";
        text += "{" + std::string(name) + "}";
    }
    return text;
}

std::vector<std::string> split_on_whitespace(const std::string& text) {
    std::istringstream in(text);
    std::vector<std::string> words;
    for (std::string word; in >> word;) words.push_back(word);
    return words;
}

std::optional<std::vector<std::string>> read_command(const toml::node& node, const std::string& key,
                                                     IssueSink& sink) {
    std::vector<std::string> argv;
    bool ok = true;
    if (const auto text = node.value_exact<std::string>()) {
        argv = split_on_whitespace(*text);
    } else if (const auto* array = node.as_array()) {
        for (std::size_t i = 0; i < array->size(); ++i) {
            const auto& element = *array->get(i);
            if (const auto arg = element.value_exact<std::string>()) {
                argv.push_back(*arg);
            } else {
                sink.add(key, element.source(),
                         "element " + std::to_string(i + 1) + ": expected a string, got " +
                             describe(element));
                ok = false;
            }
        }
        if (ok && !argv.empty() && argv.front().empty()) {
            sink.add(key, node.source(), "the program (the first element) is empty");
            ok = false;
        }
    } else {
        sink.add(key, node.source(),
                 "expected \"builtin:demo\", a command line or an array of strings, got " +
                     describe(node));
        return std::nullopt;
    }
    if (ok && argv.empty()) {
        sink.add(key, node.source(),
                 "empty command: give \"builtin:demo\" or the program and its arguments");
        ok = false;
    }
    for (const auto& arg : argv) {
        for (const auto& name : unknown_placeholders(arg)) {
            sink.add(key, node.source(),
                     "unknown placeholder {" + name + "} in " + quoted(arg) +
                         " (known: " + known_placeholders_text() + ")");
            ok = false;
        }
    }
    if (!ok) return std::nullopt;
    return argv;
}

// Names a process environment can carry: not empty, no '=' (it separates name from value).
bool is_environment_name(std::string_view name) {
    return !name.empty() && name.find('=') == std::string_view::npos &&
           name.find('\0') == std::string_view::npos;
}

std::optional<std::map<std::string, std::string>> read_env(const toml::node& node,
                                                           const std::string& key,
                                                           IssueSink& sink) {
    const auto* table = node.as_table();
    if (table == nullptr) {
        sink.add(key, node.source(),
                 "expected a table of strings like { NAME = \"value\" }, got " + describe(node));
        return std::nullopt;
    }
    std::map<std::string, std::string> env;
    bool ok = true;
    for (const auto& [name, value] : *table) {
        const std::string entry_key = key + "." + std::string(name.str());
        if (!is_environment_name(name.str())) {
            sink.add(entry_key, name.source(),
                     "not an environment variable name: " + quoted(name.str()));
            ok = false;
        } else if (const auto text = value.value_exact<std::string>()) {
            env.emplace(std::string(name.str()), *text);
        } else {
            sink.add(entry_key, value.source(), "expected a string, got " + describe(value));
            ok = false;
        }
    }
    if (!ok) return std::nullopt;
    return env;
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
    unsigned port = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (error != std::errc{} || end != text.data() + text.size() || port < 1 || port > 65535) {
        return std::nullopt;
    }
    return static_cast<std::uint16_t>(port);
}

std::optional<PortRange> read_ports(const toml::node& node, const std::string& key,
                                    IssueSink& sink) {
    const auto text = node.value_exact<std::string>();
    if (!text) {
        sink.add(key, node.source(),
                 "expected a port range like \"20000-20999\", got " + describe(node));
        return std::nullopt;
    }
    const auto dash = text->find('-');
    const std::string_view whole(*text);
    const auto first = parse_port(whole.substr(0, dash));
    const auto last = dash == std::string::npos ? first : parse_port(whole.substr(dash + 1));
    if (!first || !last) {
        sink.add(key, node.source(),
                 "not a port range: " + quoted(*text) +
                     " (expected e.g. \"20000-20999\", ports 1..65535)");
        return std::nullopt;
    }
    if (*first > *last) {
        sink.add(key, node.source(),
                 "the first port " + std::to_string(*first) + " is above the last " +
                     std::to_string(*last) + " in " + quoted(*text));
        return std::nullopt;
    }
    return PortRange{*first, *last};
}

}  // namespace

ConfigKey command_key() {
    Writer<std::vector<std::string>> write = [](const std::vector<std::string>& command) {
        if (command.size() == 1 && command.front() == "builtin:demo") {
            return toml_string(command.front());
        }
        toml::array argv;
        for (const auto& arg : command) argv.push_back(arg);
        return toml_text(argv);
    };
    return make_key<std::vector<std::string>>(
        "workers", "command", "\"builtin:demo\" or argv; {socket} {port} {threads} {worker_id}",
        [](auto& c) -> auto& { return c.workers.command; }, read_command, std::move(write));
}

ConfigKey env_key() {
    Writer<std::map<std::string, std::string>> write =
        [](const std::map<std::string, std::string>& variables) {
            toml::table env;
            env.is_inline(true);
            for (const auto& [name, value] : variables) env.insert(name, value);
            return toml_text(env);
        };
    return make_key<std::map<std::string, std::string>>(
        "workers", "env", "extra environment of workers, { NAME = \"value\" }",
        [](auto& c) -> auto& { return c.workers.env; }, read_env, std::move(write));
}

ConfigKey ports_key() {
    Writer<PortRange> write = [](const PortRange& ports) {
        return toml_string(std::to_string(ports.first) + "-" + std::to_string(ports.last));
    };
    return make_key<PortRange>(
        "workers", "ports", "TCP ports for commands that use {port}",
        [](auto& c) -> auto& { return c.workers.ports; }, read_ports, std::move(write));
}

}  // namespace tuner::config::detail
