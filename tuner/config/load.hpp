// Configuration loading: TOML text -> the model/ Config structs, validated in one pass that
// collects every error with its file, key and line; and the effective config written back as TOML.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/config.hpp"
#include "model/result.hpp"

namespace tuner::config {

// One thing wrong with a config file.
struct ConfigIssue {
    std::string file;      // the path given to load_config_file, or the source name of parse_config
    std::string key;       // dotted, "workers.max_requests"; "" for TOML syntax errors
    std::size_t line = 0;  // 1-based; 0 when the problem has no place in the file
    std::size_t column = 0;  // 1-based
    std::string message;     // what is wrong, quoting the offending value

    // "etc/tunerd.toml:12:3: workers.max_requests: <message>", the compiler-style form editors
    // and humans both read.
    [[nodiscard]] std::string to_string() const;
};

struct LoadedConfig {
    Config config;                    // the effective config: defaults, then what the file set
    std::vector<ConfigIssue> errors;  // every error, in file order; empty = valid

    [[nodiscard]] bool ok() const { return errors.empty(); }
};

// Parses and validates TOML text. `source_name` names the text in issues and in config.source.
LoadedConfig parse_config(std::string_view toml_text, std::string source_name = "<string>");

// Reads and parses a file; an unreadable file is one issue naming the path and the reason.
LoadedConfig load_config_file(const std::string& path);

// The effective config as commented TOML: every key of every section, one line each.
// parse_config(format_config(c)).config == c for every valid c.
std::string format_config(const Config& config);

// A stable short hex digest of format_config(config) (FNV-1a 64): tells two configs apart in logs.
std::string config_hash(const Config& config);

// Every key the config language knows, dotted ("server.listen"), in file order.
std::vector<std::string> known_config_keys();

// The keys the running daemon is built around (its sockets, its I/O threads, its files): they
// change only on restart. Dotted, in file order.
std::vector<std::string> restart_only_keys();

// A reload: every restart-only key of `next` whose value differs from `running` gets the running
// value back. Returns the keys that differed. (state.dir must be resolved in both.)
std::vector<std::string> keep_restart_only(const Config& running, Config& next);

// Where tunerd looks when no --config is given.
std::string default_config_path();

// The state directory: state.dir when set; else $STATE_DIRECTORY (systemd's StateDirectory=, the
// first entry when colon-separated); else /var/lib/tunerd as root; else $HOME/.local/state/tunerd.
std::string resolve_state_dir(const StateConfig& state,
                              const std::function<const char*(const char*)>& getenv_fn = ::getenv,
                              bool is_root = ::geteuid() == 0);

// "127.0.0.1:8080", "[::1]:0", "0.0.0.0:80", "localhost:8080" -> {host, port}; the host of an
// IPv6 address comes back without its brackets. Port 0 (any free port) is allowed.
Result<std::pair<std::string, std::uint16_t>> parse_listen(std::string_view host_port);

// True when the address only accepts connections from this machine: 127.0.0.0/8, ::1, localhost.
bool is_loopback_listen(std::string_view host_port);

}  // namespace tuner::config
