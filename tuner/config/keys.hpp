// The table of every config key, one row per setting (as bpftune keeps its tunables): where it
// lives, its one-line comment, how it is read (type and range checked) and written back.
// Parsing, formatting and the key list all come from this one table. Internal to tuner_config.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "model/config.hpp"
#include "tuner/config/values.hpp"

namespace tuner::config::detail {

struct ConfigSection {
    std::string_view name;     // "server"
    std::string_view comment;  // one line, written above the [section] header
};

// One key's value as format_config writes it. An unset optional key is written commented out,
// showing the value it falls back to.
struct WrittenValue {
    std::string toml;
    bool set = true;
};

struct ConfigKey {
    std::string_view section;
    std::string_view name;
    std::string_view comment;
    // Stores the node's value into the config, or reports why it cannot under `dotted`.
    std::function<void(const toml::node& node, const std::string& dotted, Config& config,
                       IssueSink& sink)>
        read;
    std::function<WrittenValue(const Config& config)> write;
    // Copies this key's value from one config to another (a reload keeping a running value).
    std::function<void(const Config& from, Config& to)> copy;
    // The running daemon is built around it (a socket, its threads, its files): a reload keeps
    // the running value and says so; it changes on restart.
    bool restart_only = false;

    [[nodiscard]] std::string dotted() const {
        return std::string(section) + "." + std::string(name);
    }
};

template <typename T>
using Reader = std::function<std::optional<T>(const toml::node&, const std::string&, IssueSink&)>;
template <typename T>
using Writer = std::function<std::string(const T&)>;
// A range or form check on a converted value: the problem, or nothing when the value is fine.
template <typename T>
using Check = std::function<std::optional<std::string>(const T&)>;

// A key of type T. `access` is a generic lambda returning the member of a Config& (to store) or
// of a const Config& (to write), e.g. [](auto& c) -> auto& { return c.server.listen; }.
template <typename T, typename Access>
ConfigKey make_key(std::string_view section, std::string_view name, std::string_view comment,
                   Access access, Reader<T> read, Writer<T> write, Check<T> check = {}) {
    ConfigKey key{section, name, comment, {}, {}, {}};
    key.read = [access, read = std::move(read), check = std::move(check)](
                   const toml::node& node, const std::string& dotted, Config& config,
                   IssueSink& sink) {
        auto value = read(node, dotted, sink);
        if (!value) return;
        if (check) {
            if (auto problem = check(*value)) {
                sink.add(dotted, node.source(), std::move(*problem));
                return;
            }
        }
        access(config) = std::move(*value);
    };
    key.write = [access, write = std::move(write)](const Config& config) {
        return WrittenValue{write(access(config))};
    };
    key.copy = [access](const Config& from, Config& to) { access(to) = access(from); };
    return key;
}

// Marks a key as changing only on restart.
inline ConfigKey restart_only(ConfigKey key) {
    key.restart_only = true;
    return key;
}

// Sections and keys in the order the example file and format_config show them.
const std::vector<ConfigSection>& config_sections();
const std::vector<ConfigKey>& config_keys();

const ConfigSection* find_section(std::string_view name);
const ConfigKey* find_key(std::string_view section, std::string_view name);

// [[static]]: the array of tables read into config.server.static_mounts (each prefix starts and
// ends with "/", no duplicates; each root an existing directory), and written back.
void read_static_mounts(const toml::node& node, Config& config, IssueSink& sink);
std::string format_static_mounts(const Config& config);

// Where each key the document set sits (its line and column), by dotted name.
struct KeyPosition {
    std::size_t line = 0;
    std::size_t column = 0;
};
using KeyPositions = std::map<std::string, KeyPosition, std::less<>>;

// The rules that involve more than one key (rules.cpp). Each violation is reported at the
// key of the rule that comes last in the file; rules whose keys already failed are skipped.
void check_cross_key_rules(const Config& config, const KeyPositions& positions, IssueSink& sink);

}  // namespace tuner::config::detail
