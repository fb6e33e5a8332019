// The table of every config key (see keys.hpp). The ranges here are the single-key rules
// of docs/configuration.md; rules that involve two keys live in rules.cpp.
#include "tuner/config/keys.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "server/client_address.hpp"
#include "server/compression.hpp"
#include "tuner/config/command.hpp"

namespace tuner::config::detail {
namespace {

// ---- writers ------------------------------------------------------------------------------

std::string write_string(const std::string& text) {
    return toml_string(text);
}
std::string write_size(const std::uint64_t& bytes) {
    return toml_string(format_size(bytes));
}
std::string write_duration(const Duration& duration) {
    return toml_string(format_duration(duration));
}
template <typename Unsigned>
std::string write_whole(const Unsigned& number) {
    return std::to_string(number);
}
std::string write_double(const double& number) {
    return toml_float(number);
}
std::string write_bool(const bool& flag) {
    return flag ? "true" : "false";
}
template <typename Enum>
std::string write_choice(const Enum& choice) {
    return toml_string(to_string(choice));
}

// ---- checks -------------------------------------------------------------------------------

template <typename Unsigned>
Check<Unsigned> between(std::uint64_t low, std::uint64_t high) {
    return [low, high](const Unsigned& n) -> std::optional<std::string> {
        if (n >= low && n <= high) return std::nullopt;
        const auto got = ", got " + std::to_string(n);
        if (low == high) return "must be " + std::to_string(low) + got;
        if (high == std::numeric_limits<Unsigned>::max()) {
            return "must be at least " + std::to_string(low) + got;
        }
        return "must be between " + std::to_string(low) + " and " + std::to_string(high) + got;
    };
}

template <typename Unsigned>
Check<Unsigned> at_least(std::uint64_t low) {
    return between<Unsigned>(low, std::numeric_limits<Unsigned>::max());
}

// Upper bounds of the durations (docs/configuration.md): far above what a deployment needs, low
// enough that a slip ("1d" for "1s") cannot make the daemon scan a day of latency histograms
// under the dispatcher's lock every cycle, or wait a day to give up on a worker.
constexpr Duration kMaxTimeout = std::chrono::hours(1);
constexpr Duration kMaxWindow = std::chrono::minutes(10);
constexpr Duration kMaxCooldown = std::chrono::hours(1);
constexpr Duration kMaxRetention = std::chrono::hours(24 * 3650);

// Above zero and at most `high`.
Check<Duration> positive_duration_up_to(Duration high) {
    return [high](const Duration& d) -> std::optional<std::string> {
        if (d.count() > 0 && d <= high) return std::nullopt;
        return "must be greater than 0 and at most " + quoted(format_duration(high)) + ", got " +
               quoted(format_duration(d));
    };
}

// A timeout: every duration has an upper bound, and this is a timeout's.
Check<Duration> positive_duration() {
    return positive_duration_up_to(kMaxTimeout);
}

Check<Duration> duration_between(Duration low, Duration high) {
    return [low, high](const Duration& d) -> std::optional<std::string> {
        if (d >= low && d <= high) return std::nullopt;
        return "must be between " + quoted(format_duration(low)) + " and " +
               quoted(format_duration(high)) + ", got " + quoted(format_duration(d));
    };
}

Check<std::uint64_t> size_at_least(std::uint64_t low) {
    return [low](const std::uint64_t& bytes) -> std::optional<std::string> {
        if (bytes >= low) return std::nullopt;
        return "must be at least " + quoted(format_size(low)) + ", got " +
               quoted(format_size(bytes));
    };
}

Check<std::uint64_t> size_between(std::uint64_t low, std::uint64_t high) {
    return [low, high](const std::uint64_t& bytes) -> std::optional<std::string> {
        if (bytes >= low && bytes <= high) return std::nullopt;
        return "must be between " + quoted(format_size(low)) + " and " + quoted(format_size(high)) +
               ", got " + quoted(format_size(bytes));
    };
}

Check<std::string> listen_address() {
    return [](const std::string& text) -> std::optional<std::string> {
        const auto parsed = parse_listen(text);
        if (parsed) return std::nullopt;
        return parsed.error().what;
    };
}

Check<std::string> one_of(std::vector<std::string_view> allowed) {
    return [allowed = std::move(allowed)](const std::string& text) -> std::optional<std::string> {
        if (std::find(allowed.begin(), allowed.end(), text) != allowed.end()) return std::nullopt;
        return not_allowed_message(text, allowed);
    };
}

Check<std::string> empty_or_absolute_path() {
    return [](const std::string& path) -> std::optional<std::string> {
        if (path.empty() || path.front() == '/') return std::nullopt;
        return "must start with \"/\", got " + quoted(path);
    };
}

Check<std::string> absolute_path() {
    return [](const std::string& path) -> std::optional<std::string> {
        if (!path.empty() && path.front() == '/') return std::nullopt;
        return "must be an absolute path, got " + quoted(path);
    };
}

// "" or "module:callable" as gunicorn takes it: dotted Python identifiers on both sides (ASCII
// only here; the preloader reports what Python itself refuses).
Check<std::string> wsgi_app_spec() {
    const auto dotted_identifier = [](std::string_view text) {
        if (text.empty()) return false;
        bool start = true;
        for (const char c : text) {
            const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
            const bool digit = c >= '0' && c <= '9';
            if (c == '.') {
                if (start) return false;
                start = true;
            } else if (letter || (digit && !start)) {
                start = false;
            } else {
                return false;
            }
        }
        return !start;
    };
    return [dotted_identifier](const std::string& spec) -> std::optional<std::string> {
        if (spec.empty()) return std::nullopt;
        const auto colon = spec.find(':');
        if (colon != std::string::npos && dotted_identifier(spec.substr(0, colon)) &&
            dotted_identifier(spec.substr(colon + 1)))
            return std::nullopt;
        return "must be \"module:callable\" (e.g. \"app:app\", \"mysite.wsgi:application\"), "
               "got " +
               quoted(spec);
    };
}

// ---- one factory per value type -----------------------------------------------------------

template <typename Access>
ConfigKey string_key(std::string_view section, std::string_view name, std::string_view comment,
                     Access access, Check<std::string> check = {}) {
    return make_key<std::string>(section, name, comment, access, read_string, write_string,
                                 std::move(check));
}

template <typename Access>
ConfigKey size_key(std::string_view section, std::string_view name, std::string_view comment,
                   Access access, Check<std::uint64_t> check = {}) {
    return make_key<std::uint64_t>(section, name, comment, access, read_size, write_size,
                                   std::move(check));
}

template <typename Access>
ConfigKey duration_key(std::string_view section, std::string_view name, std::string_view comment,
                       Access access, Check<Duration> check = {}) {
    return make_key<Duration>(section, name, comment, access, read_duration, write_duration,
                              std::move(check));
}

template <typename Unsigned, typename Access>
ConfigKey whole_key(std::string_view section, std::string_view name, std::string_view comment,
                    Access access, Check<Unsigned> check = {}) {
    return make_key<Unsigned>(section, name, comment, access, read_unsigned<Unsigned>,
                              write_whole<Unsigned>, std::move(check));
}

template <typename Access>
ConfigKey fraction_key(std::string_view section, std::string_view name, std::string_view comment,
                       Access access, Check<double> check) {
    return make_key<double>(section, name, comment, access, read_number, write_double,
                            std::move(check));
}

template <typename Access>
ConfigKey bool_key(std::string_view section, std::string_view name, std::string_view comment,
                   Access access) {
    return make_key<bool>(section, name, comment, access, read_bool, write_bool);
}

template <typename Enum, typename Access>
ConfigKey choice_key(std::string_view section, std::string_view name, std::string_view comment,
                     Access access, std::vector<Enum> choices) {
    Reader<Enum> read = [choices = std::move(choices)](const toml::node& node,
                                                       const std::string& key, IssueSink& sink) {
        return read_choice(node, key, sink, choices);
    };
    return make_key<Enum>(section, name, comment, access, std::move(read), write_choice<Enum>);
}

// ---- the keys that need their own reader or writer ----------------------------------------

// An array of strings, each checked by `problem` (its text, or null when the element is not a
// string; a sentence when it is wrong), at most `max` of them: trusted proxies, media types, path
// prefixes. `expected` says what the array holds, with an example; written on one line (toml++
// breaks a long array over several, and a key is one line here).
template <typename Access, typename Problem>
ConfigKey string_array_key(std::string_view section, std::string_view name,
                           std::string_view comment, Access access, std::string expected,
                           std::size_t max, std::string noun, Problem problem) {
    Reader<std::vector<std::string>> read =
        [expected, max, noun, problem](const toml::node& node, const std::string& key,
                                       IssueSink& sink) -> std::optional<std::vector<std::string>> {
        const auto* array = node.as_array();
        if (!array) {
            sink.add(key, node.source(), "expected " + expected + ", got " + describe(node));
            return std::nullopt;
        }
        if (array->size() > max) {
            sink.add(key, node.source(),
                     "at most " + std::to_string(max) + " " + noun + ", got " +
                         std::to_string(array->size()));
            return std::nullopt;
        }
        std::vector<std::string> entries;
        bool ok = true;
        for (std::size_t i = 0; i < array->size(); ++i) {
            const auto& element = *array->get(i);
            const auto text = element.value_exact<std::string>();
            if (const std::optional<std::string> wrong = problem(element, text)) {
                sink.add(key, element.source(), "element " + std::to_string(i + 1) + ": " + *wrong);
                ok = false;
                continue;
            }
            entries.push_back(*text);
        }
        if (!ok) return std::nullopt;
        return entries;
    };
    Writer<std::vector<std::string>> write = [](const std::vector<std::string>& entries) {
        std::string text = "[";
        for (const auto& entry : entries)
            text += (text.size() > 1 ? ", " : "") + toml_string(entry);
        return text + "]";
    };
    return make_key<std::vector<std::string>>(section, name, comment, access, std::move(read),
                                              std::move(write));
}

// An array of addresses and CIDR networks (server.trusted_proxies, rate_limit.allow).
template <typename Access>
ConfigKey networks_key(std::string_view section, std::string_view name, std::string_view comment,
                       Access access) {
    return string_array_key(
        section, name, comment, access,
        "an array of addresses or networks, e.g. [\"127.0.0.1\", \"10.0.0.0/8\"]", 10000,
        "addresses or networks",
        [](const toml::node& element,
           const std::optional<std::string>& text) -> std::optional<std::string> {
            if (!text) return "expected a string, got " + describe(element);
            if (auto network = server::parse_network(*text); !network) return network.error().what;
            return std::nullopt;
        });
}

// compression.types: an array of media type patterns ("text/*", "application/*+json").
ConfigKey compression_types_key() {
    return string_array_key(
        "compression", "types", "media types compressed (\"type/*\", \"type/*+suffix\")",
        [](auto& c) -> auto& { return c.server.compression.types; },
        "an array of media types, e.g. [\"text/*\", \"application/json\"]", 256, "media types",
        [](const toml::node& element,
           const std::optional<std::string>& text) -> std::optional<std::string> {
            if (!text) return "expected a string, got " + describe(element);
            return server::type_pattern_problem(*text);
        });
}

// cache.paths: an array of URL path prefixes, each starting with "/".
ConfigKey cache_paths_key() {
    return string_array_key(
        "cache", "paths", "path prefixes that get default_ttl when the app sets no freshness",
        [](auto& c) -> auto& { return c.server.cache.paths; },
        "an array of path prefixes, e.g. [\"/api/\", \"/news\"]", 1000, "prefixes",
        [](const toml::node& element,
           const std::optional<std::string>& text) -> std::optional<std::string> {
            if (!text || text->empty() || text->front() != '/')
                return "expected a path prefix starting with \"/\", got " + describe(element);
            return std::nullopt;
        });
}

// threads_max is optional: unset means "same as threads", written commented out with that value.
ConfigKey threads_max_key() {
    ConfigKey key{"workers",
                  "threads_max",
                  "> threads lets the controller raise threads (thread-safe apps only)",
                  {},
                  {}};
    key.read = [](const toml::node& node, const std::string& dotted, Config& config,
                  IssueSink& sink) {
        if (auto threads_max = read_unsigned<unsigned>(node, dotted, sink)) {
            config.workers.threads_max = *threads_max;
        }
    };
    key.write = [](const Config& config) {
        return WrittenValue{std::to_string(config.workers.effective_threads_max()),
                            config.workers.threads_max.has_value()};
    };
    return key;
}

// database.memory: a size, or "" for "not known" (stored as 0), as the sketch spells its default.
ConfigKey database_memory_key() {
    Reader<std::uint64_t> read = [](const toml::node& node, const std::string& key,
                                    IssueSink& sink) -> std::optional<std::uint64_t> {
        if (node.value_exact<std::string>() == std::string()) return 0;
        return read_size(node, key, sink);
    };
    Writer<std::uint64_t> write = [](const std::uint64_t& bytes) {
        return bytes == 0 ? toml_string("") : write_size(bytes);
    };
    return make_key<std::uint64_t>(
        "database", "memory", "PostgreSQL's memory when remote (\"\" = not known)",
        [](auto& c) -> auto& { return c.database.memory_bytes; }, std::move(read),
        std::move(write));
}

// server.io_threads: 1 to 64, or "auto" (stored as 0): half the effective cores, 1 to 4.
ConfigKey io_threads_key() {
    Reader<unsigned> read = [](const toml::node& node, const std::string& key,
                               IssueSink& sink) -> std::optional<unsigned> {
        if (const auto text = node.value_exact<std::string>()) {
            if (*text == "auto") return 0u;
            sink.add(key, node.source(),
                     "must be \"auto\" or a number of threads, got " + describe(node));
            return std::nullopt;
        }
        const auto n = read_unsigned<unsigned>(node, key, sink);
        if (n && (*n < 1 || *n > 64)) {
            sink.add(key, node.source(),
                     "must be \"auto\" or between 1 and 64, got " + std::to_string(*n));
            return std::nullopt;
        }
        return n;
    };
    Writer<unsigned> write = [](const unsigned& n) {
        return n == 0 ? toml_string("auto") : std::to_string(n);
    };
    return make_key<unsigned>(
        "server", "io_threads", "threads of the front: \"auto\" = half the cores, 1 to 4",
        [](auto& c) -> auto& { return c.server.io_threads; }, std::move(read), std::move(write));
}

std::vector<ConfigKey> build_keys() {
    using PM = PoolMode;
    std::vector<ConfigKey> keys;
    auto add = [&keys](ConfigKey key) { keys.push_back(std::move(key)); };

    // [server]
    add(restart_only(string_key(
        "server", "listen", "public address, host:port (port 0 = any free port)",
        [](auto& c) -> auto& { return c.server.listen; }, listen_address())));
    add(whole_key<std::uint64_t>(
        "server", "max_queue", "waiting requests; beyond: 503 + Retry-After",
        [](auto& c) -> auto& { return c.server.max_queue; }));
    add(whole_key<unsigned>(
        "server", "worker_backlog", "GET/HEAD requests a busy worker may hold beyond its threads",
        [](auto& c) -> auto& { return c.server.worker_backlog; }, between<unsigned>(0, 8)));
    add(duration_key(
        "server", "queue_timeout", "a request that waited longer gets 503",
        [](auto& c) -> auto& { return c.server.queue_timeout; }, positive_duration()));
    add(duration_key(
        "server", "request_timeout", "an upstream slower than this gets 504",
        [](auto& c) -> auto& { return c.server.request_timeout; }, positive_duration()));
    add(duration_key(
        "server", "header_timeout", "time a client has to send its request headers",
        [](auto& c) -> auto& { return c.server.header_timeout; }, positive_duration()));
    add(duration_key(
        "server", "keepalive_timeout", "an idle client connection is closed after this",
        [](auto& c) -> auto& { return c.server.keepalive_timeout; }, positive_duration()));
    add(size_key(
        "server", "max_header_size", "larger request headers get 431",
        [](auto& c) -> auto& { return c.server.max_header_size_bytes; },
        size_between(KiB, kMaxHeaderSizeBytes)));
    add(size_key(
        "server", "max_body_size", "larger request bodies get 413",
        [](auto& c) -> auto& { return c.server.max_body_size_bytes; }));
    add(duration_key(
        "server", "shutdown_timeout", "on SIGTERM, queued and in-flight requests get this long",
        [](auto& c) -> auto& { return c.server.shutdown_timeout; }, positive_duration()));
    add(restart_only(io_threads_key()));
    add(bool_key(
        "server", "request_buffering", "read a request body whole before a worker is taken",
        [](auto& c) -> auto& { return c.server.request_buffering; }));
    add(string_key(
        "server", "health_path",
        "\"\" = off; else the front answers it: 200 while a worker is ready, else 503",
        [](auto& c) -> auto& { return c.server.health_path; }, empty_or_absolute_path()));
    add(size_key(
        "server", "body_buffer_size", "larger buffered bodies go to a file in the state dir",
        [](auto& c) -> auto& { return c.server.body_buffer_size_bytes; },
        size_between(KiB, 16 * MiB)));
    add(size_key(
        "server", "spool_max_size", "request bodies on disk at once, all connections; past it 503",
        [](auto& c) -> auto& { return c.server.spool_max_size_bytes; }));
    add(size_key(
        "server", "min_body_rate", "bytes/s a body must average after header_timeout (0 = off)",
        [](auto& c) -> auto& { return c.server.min_body_rate_bytes; }));
    add(whole_key<std::uint64_t>(
        "server", "max_connections", "open client connections; beyond: an idle one or 503",
        [](auto& c) -> auto& { return c.server.max_connections; },
        between<std::uint64_t>(1, 1000000)));
    add(whole_key<std::uint64_t>(
        "server", "max_connections_per_address", "per client address (0 = no cap); else 429",
        [](auto& c) -> auto& { return c.server.max_connections_per_address; }));
    add(networks_key(
        "server", "trusted_proxies", "proxies whose X-Forwarded-For/-Proto are believed",
        [](auto& c) -> auto& { return c.server.trusted_proxies; }));

    // [rate_limit]
    add(fraction_key(
        "rate_limit", "rate", "requests/s per client address (0 = off); beyond: 429",
        [](auto& c) -> auto& { return c.server.rate_limit.rate; },
        [](const double& rate) -> std::optional<std::string> {
            if (rate >= 0 && rate <= 1e6) return std::nullopt;
            return "must be between 0 (off) and 1000000 requests per second";
        }));
    add(whole_key<unsigned>(
        "rate_limit", "burst", "requests served at once beyond the rate (nginx nodelay)",
        [](auto& c) -> auto& { return c.server.rate_limit.burst; }, between<unsigned>(0, 1000000)));
    add(networks_key(
        "rate_limit", "allow", "addresses and networks never limited",
        [](auto& c) -> auto& { return c.server.rate_limit.allow; }));
    add(whole_key<std::uint64_t>(
        "rate_limit", "max_clients", "client addresses remembered (least recent forgotten)",
        [](auto& c) -> auto& { return c.server.rate_limit.max_clients; },
        between<std::uint64_t>(1, 10000000)));

    // [cache]
    add(size_key(
        "cache", "size", "bytes of cached responses (0 = off), e.g. \"64MB\"",
        [](auto& c) -> auto& { return c.server.cache.size_bytes; },
        [](const std::uint64_t& bytes) -> std::optional<std::string> {
            if (bytes == 0 || (bytes >= 64 * KiB && bytes <= 64 * GiB)) return std::nullopt;
            return "must be 0 (off) or between \"64KB\" and \"64GB\", got " +
                   quoted(format_size(bytes));
        }));
    add(size_key(
        "cache", "max_entry_size", "larger responses are relayed, never stored",
        [](auto& c) -> auto& { return c.server.cache.max_entry_size_bytes; },
        size_between(KiB, 1 * GiB)));
    add(whole_key<std::uint64_t>(
        "cache", "max_entries", "entries at most (least recently used evicted)",
        [](auto& c) -> auto& { return c.server.cache.max_entries; },
        between<std::uint64_t>(1, 10000000)));
    add(duration_key(
        "cache", "default_ttl", "freshness for `paths` when the app sets none (0 = none)",
        [](auto& c) -> auto& { return c.server.cache.default_ttl; },
        duration_between(Duration{0}, std::chrono::hours(24 * 365))));
    add(cache_paths_key());
    add(duration_key(
        "cache", "stale_if_error", "an expired entry answers this long when the app fails",
        [](auto& c) -> auto& { return c.server.cache.stale_if_error; },
        duration_between(Duration{0}, std::chrono::hours(24 * 365))));
    // [access_log]
    add(bool_key(
        "access_log", "enabled", "one line per request (off by default)",
        [](auto& c) -> auto& { return c.server.access_log.enabled; }));
    add(string_key(
        "access_log", "path", "\"-\" = stderr, else a file (reopened on SIGUSR1)",
        [](auto& c) -> auto& { return c.server.access_log.path; },
        [](const std::string& path) -> std::optional<std::string> {
            if (path == "-" || (!path.empty() && path.front() == '/')) return std::nullopt;
            return "must be \"-\" (stderr) or an absolute path, got " + quoted(path);
        }));
    add(choice_key<AccessLogFormat>(
        "access_log", "format", "combined | common | json",
        [](auto& c) -> auto& { return c.server.access_log.format; },
        {AccessLogFormat::combined, AccessLogFormat::common, AccessLogFormat::json}));
    // [compression]
    add(bool_key(
        "compression", "enabled", "gzip/br for clients that send Accept-Encoding",
        [](auto& c) -> auto& { return c.server.compression.enabled; }));
    add(size_key(
        "compression", "min_size", "smaller responses (by Content-Length) go as they are",
        [](auto& c) -> auto& { return c.server.compression.min_size_bytes; },
        size_between(0, 1024 * MiB)));
    add(whole_key<unsigned>(
        "compression", "level", "gzip level 1-9, the ceiling the CPU policy lowers from",
        [](auto& c) -> auto& { return c.server.compression.level; }, between<unsigned>(1, 9)));
    add(whole_key<unsigned>(
        "compression", "brotli_level", "brotli quality 0-11 at level; lowered in step",
        [](auto& c) -> auto& { return c.server.compression.brotli_level; },
        between<unsigned>(0, 11)));
    add(compression_types_key());

    // [admin]
    add(restart_only(string_key(
        "admin", "listen", "admin address; off loopback it requires token_file",
        [](auto& c) -> auto& { return c.admin.listen; }, listen_address())));
    add(string_key(
        "admin", "token_file", "file holding the bearer token (\"\" = none)",
        [](auto& c) -> auto& { return c.admin.token_file; }));
    add(restart_only(string_key(
        "admin", "socket", "Unix socket for tunerctl, mode 0600, no token (\"\" = none)",
        [](auto& c) -> auto& { return c.admin.socket; }, empty_or_absolute_path())));

    // [workers]
    add(command_key());
    add(string_key(
        "workers", "preload", "WSGI app \"module:callable\" imported once, workers forked from it",
        [](auto& c) -> auto& { return c.workers.preload; }, wsgi_app_spec()));
    add(string_key(
        "workers", "server", "WSGI server of preloaded workers: waitress or gunicorn",
        [](auto& c) -> auto& { return c.workers.server; }, one_of({"waitress", "gunicorn"})));
    add(string_key(
        "workers", "python", "interpreter that runs the preloader (and so the app)",
        [](auto& c) -> auto& { return c.workers.python; }, absolute_path()));
    add(string_key(
        "workers", "dir", "working directory of workers (\"\" = tunerd's own)",
        [](auto& c) -> auto& { return c.workers.dir; }));
    add(env_key());
    add(ports_key());
    add(choice_key<PoolMode>("workers", "mode", "fixed | formula | adaptive",
                             [](auto& c) -> auto& { return c.workers.mode; },
                             {PM::fixed, PM::formula, PM::adaptive}));
    add(whole_key<unsigned>(
        "workers", "count", "workers when mode = \"fixed\"",
        [](auto& c) -> auto& { return c.workers.count; }));
    add(whole_key<unsigned>(
        "workers", "min", "fewest workers (only a memory shortage goes below)",
        [](auto& c) -> auto& { return c.workers.min; }, at_least<unsigned>(1)));
    add(whole_key<unsigned>(
        "workers", "max", "most workers", [](auto& c) -> auto& { return c.workers.max; },
        between<unsigned>(1, 1024)));
    add(whole_key<unsigned>(
        "workers", "threads", "concurrent requests per worker (the start value)",
        [](auto& c) -> auto& { return c.workers.threads; }, at_least<unsigned>(1)));
    add(threads_max_key());
    add(size_key(
        "workers", "memory_per_worker", "memory of one worker until measured",
        [](auto& c) -> auto& { return c.workers.memory_per_worker_bytes; }, size_at_least(1)));
    add(whole_key<std::uint64_t>(
        "workers", "max_requests", "recycle a worker after this many requests (0 = never)",
        [](auto& c) -> auto& { return c.workers.max_requests; }));
    add(whole_key<std::uint64_t>(
        "workers", "max_requests_jitter",
        "up to this many more, so workers do not recycle together",
        [](auto& c) -> auto& { return c.workers.max_requests_jitter; }));
    add(size_key(
        "workers", "max_worker_rss", "recycle a worker above this RSS (0 = no limit)",
        [](auto& c) -> auto& { return c.workers.max_worker_rss_bytes; }));
    add(string_key(
        "workers", "health_path", "\"\" = ready when the socket accepts; else GET it for 200",
        [](auto& c) -> auto& { return c.workers.health_path; }, empty_or_absolute_path()));
    add(duration_key(
        "workers", "startup_timeout", "a worker not ready by then is replaced",
        [](auto& c) -> auto& { return c.workers.startup_timeout; }, positive_duration()));
    add(duration_key(
        "workers", "drain_timeout", "a stopping worker's in-flight requests get this long",
        [](auto& c) -> auto& { return c.workers.drain_timeout; }, positive_duration()));
    add(duration_key(
        "workers", "kill_timeout", "SIGKILL this long after SIGTERM",
        [](auto& c) -> auto& { return c.workers.kill_timeout; }, positive_duration()));

    // [demo]
    add(whole_key<unsigned>(
        "demo", "cpu_ms", "CPU time burnt per request, in ms",
        [](auto& c) -> auto& { return c.demo.cpu_ms; }));
    add(whole_key<unsigned>(
        "demo", "io_ms", "wait per request (as for a database), in ms",
        [](auto& c) -> auto& { return c.demo.io_ms; }));
    add(whole_key<unsigned>(
        "demo", "rss_mb", "resident memory each demo worker holds, in MB",
        [](auto& c) -> auto& { return c.demo.rss_mb; }));

    // [policy]
    add(duration_key(
        "policy", "interval", "one control cycle every interval (at least 100ms)",
        [](auto& c) -> auto& { return c.policy.interval; }, duration_between(100ms, kMaxWindow)));
    add(duration_key(
        "policy", "window", "sliding window of the front's statistics (>= interval)",
        [](auto& c) -> auto& { return c.policy.window; }, positive_duration_up_to(kMaxWindow)));
    add(size_key(
        "policy", "os_reserve", "taken off host memory when no cgroup limit applies",
        [](auto& c) -> auto& { return c.policy.os_reserve_bytes; }));
    add(fraction_key(
        "policy", "target_utilisation", "busy fraction the controller aims workers at, (0, 1]",
        [](auto& c) -> auto& { return c.policy.target_utilisation; },
        [](const double& u) -> std::optional<std::string> {
            if (u > 0 && u <= 1) return std::nullopt;
            return "must be in (0, 1], got " + toml_float(u);
        }));
    add(duration_key(
        "policy", "scale_down_cooldown", "low utilisation this long before shrinking",
        [](auto& c) -> auto& { return c.policy.scale_down_cooldown; },
        duration_between(Duration{0}, kMaxCooldown)));
    add(whole_key<unsigned>(
        "policy", "pss_every", "PSS (smaps_rollup) every Nth cycle; RSS every cycle",
        [](auto& c) -> auto& { return c.policy.pss_every; }, at_least<unsigned>(1)));
    add(bool_key(
        "policy", "dry_run", "log decisions without acting on them",
        [](auto& c) -> auto& { return c.policy.dry_run; }));

    // [database]
    add(string_key(
        "database", "url_file", "file with the libpq URL the app uses (\"\" = none)",
        [](auto& c) -> auto& { return c.database.url_file; }));
    add(string_key(
        "database", "admin_url_file", "URL with rights for ALTER SYSTEM (apply mode)",
        [](auto& c) -> auto& { return c.database.admin_url_file; }));
    add(choice_key<PostgresMode>(
        "database", "postgres", "off | recommend | apply",
        [](auto& c) -> auto& { return c.database.postgres; },
        {PostgresMode::off, PostgresMode::recommend, PostgresMode::apply}));
    add(choice_key<DatabaseLocation>("database", "location",
                                     "local (shares this box's memory) | remote",
                                     [](auto& c) -> auto& { return c.database.location; },
                                     {DatabaseLocation::local, DatabaseLocation::remote}));
    add(database_memory_key());
    add(fraction_key(
        "database", "memory_share", "PostgreSQL's share of this box when local, (0, 1)",
        [](auto& c) -> auto& { return c.database.memory_share; },
        [](const double& share) -> std::optional<std::string> {
            if (share > 0 && share < 1) return std::nullopt;
            return "must be in (0, 1), got " + toml_float(share);
        }));
    add(choice_key<Storage>("database", "storage", "ssd | hdd (sets the planner's cost settings)",
                            [](auto& c) -> auto& { return c.database.storage; },
                            {Storage::ssd, Storage::hdd}));
    add(duration_key(
        "database", "connect_timeout", "libpq connect timeout",
        [](auto& c) -> auto& { return c.database.connect_timeout; }, positive_duration()));

    // [state]
    add(restart_only(string_key(
        "state", "dir", "\"\" = $STATE_DIRECTORY, else /var/lib/tunerd or ~/.local/state/tunerd",
        [](auto& c) -> auto& { return c.state.dir; })));
    add(duration_key(
        "state", "retention", "decisions older than this are deleted",
        [](auto& c) -> auto& { return c.state.retention; },
        positive_duration_up_to(kMaxRetention)));

    // [log]
    add(string_key(
        "log", "level", "trace | debug | info | warn | error | critical | off",
        [](auto& c) -> auto& { return c.log.level; },
        one_of({"trace", "debug", "info", "warn", "error", "critical", "off"})));
    return keys;
}

}  // namespace

const std::vector<ConfigSection>& config_sections() {
    static const std::vector<ConfigSection> sections = {
        {"server", "The public listener: clients connect here; requests queue for a worker."},
        {"rate_limit", "Requests per client address (nginx's limit_req, nodelay); off at rate 0."},
        {"cache", "The front's micro-cache of GET/HEAD responses; off at size 0."},
        {"access_log", "One line per request (nginx's combined or common format, or JSON)."},
        {"compression", "Response compression (gzip, brotli) for clients that ask for it."},
        {"admin", "The admin listener: /health, /metrics, /performance, /workers."},
        {"workers", "The app's worker processes, started, supervised and resized by tunerd."},
        {"demo", "The built-in demo app (command = \"builtin:demo\"): per-request defaults."},
        {"policy", "The control loop that sizes the pool."},
        {"database", "The app's PostgreSQL: connection pools and memory settings."},
        {"state", "Where tunerd keeps listen.json, the decision log and worker sockets."},
        {"log", "Logging to stderr."},
    };
    return sections;
}

// ---- [[static]] ------------------------------------------------------------------------------

namespace {

constexpr Duration kMaxStaticMaxAge = std::chrono::hours(24 * 3650);

// A prefix the front can compare with a request path as sent: "/" at both ends, no escapes,
// query, fragment, backslash, dot segment, space or control character.
std::optional<std::string> prefix_problem(const std::string& prefix) {
    if (prefix.size() < 1 || prefix.front() != '/' || prefix.back() != '/')
        return "must start and end with \"/\", got " + quoted(prefix);
    for (const char c : prefix) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7F || c == '%' || c == '?' || c == '#' || c == '\\')
            return "must be a plain path (no spaces, controls, %, ?, # or \\), got " +
                   quoted(prefix);
    }
    if (prefix.find("/./") != std::string::npos || prefix.find("/../") != std::string::npos ||
        prefix.find("//") != std::string::npos)
        return "must not hold \"//\", \".\" or \"..\" segments, got " + quoted(prefix);
    return std::nullopt;
}

std::optional<std::string> root_problem(const std::string& root) {
    if (root.empty() || root.front() != '/') return "must be an absolute path, got " + quoted(root);
    struct stat info {};
    if (::stat(root.c_str(), &info) != 0)
        return "cannot use " + quoted(root) + ": " + std::strerror(errno);
    if (!S_ISDIR(info.st_mode)) return quoted(root) + " is not a directory";
    return std::nullopt;
}

}  // namespace

void read_static_mounts(const toml::node& node, Config& config, IssueSink& sink) {
    const auto* array = node.as_array();
    if (array == nullptr || !array->is_array_of_tables()) {
        sink.add("static", node.source(),
                 "expected [[static]] tables (an array of tables: [[static]] prefix = "
                 "\"/static/\" root = \"/srv/app/static\"), got " +
                     describe(node));
        return;
    }
    std::vector<StaticMount> mounts;
    bool ok = true;
    for (std::size_t i = 0; i < array->size(); ++i) {
        const auto& table = *array->get(i)->as_table();
        const std::string which = " ([[static]] number " + std::to_string(i + 1) + ")";
        StaticMount mount;
        bool have_prefix = false, have_root = false, good = true;
        for (const auto& entry : table) {
            const toml::key& name = entry.first;
            const toml::node& value = entry.second;
            const std::string_view key_name = name.str();
            const std::string dotted = "static." + std::string(key_name);
            auto problem = [&](std::string message) {
                sink.add(dotted, value.source(), std::move(message) + which);
                good = false;
            };
            if (key_name == "prefix") {
                auto text = read_string(value, dotted, sink);
                if (!text) {
                    good = false;
                } else if (auto p = prefix_problem(*text)) {
                    problem(*p);
                } else {
                    for (const auto& earlier : mounts) {
                        if (earlier.prefix == *text) problem("duplicate prefix " + quoted(*text));
                    }
                    mount.prefix = *text;
                    have_prefix = true;
                }
            } else if (key_name == "root") {
                auto text = read_string(value, dotted, sink);
                if (!text) {
                    good = false;
                } else if (auto p = root_problem(*text)) {
                    problem(*p);
                } else {
                    mount.root = *text;
                    have_root = true;
                }
            } else if (key_name == "max_age") {
                auto d = read_duration(value, dotted, sink);
                if (!d) {
                    good = false;
                } else if (d->count() < 0 || *d > kMaxStaticMaxAge) {
                    problem("must be between \"0s\" and " +
                            quoted(format_duration(kMaxStaticMaxAge)) + ", got " +
                            quoted(format_duration(*d)));
                } else {
                    mount.max_age = *d;
                }
            } else if (key_name == "index") {
                auto text = read_string(value, dotted, sink);
                if (!text) {
                    good = false;
                } else if (!text->empty() &&
                           (text->find('/') != std::string::npos || text->front() == '.')) {
                    problem("must be a file name (no \"/\", not hidden), got " + quoted(*text));
                } else {
                    mount.index = *text;
                }
            } else {
                sink.add(dotted, name.source(),
                         "unknown key " + quoted(name.str()) +
                             " in [[static]] (prefix, root, max_age, index)" + which);
                good = false;
            }
        }
        const auto at = table.source();
        if (!have_prefix && good) {
            sink.add("static.prefix", at, "missing: each [[static]] needs a prefix" + which);
            good = false;
        }
        if (!have_root && good) {
            sink.add("static.root", at, "missing: each [[static]] needs a root" + which);
            good = false;
        }
        if (good) mounts.push_back(std::move(mount));
        ok = ok && good;
    }
    if (ok) config.server.static_mounts = std::move(mounts);
}

std::string format_static_mounts(const Config& config) {
    std::string out =
        "\n# Directories the front serves by itself: [[static]] prefix = \"/static/\", root, "
        "max_age, index.\n";
    if (config.server.static_mounts.empty()) return out + "# (no [[static]] mounts)\n";
    for (const auto& m : config.server.static_mounts) {
        out += "[[static]]\n";
        out += "prefix = " + toml_string(m.prefix) + "\n";
        out += "root = " + toml_string(m.root) + "\n";
        out += "max_age = " + toml_string(format_duration(m.max_age)) + "\n";
        out += "index = " + toml_string(m.index) + "\n";
    }
    return out;
}

const std::vector<ConfigKey>& config_keys() {
    static const std::vector<ConfigKey> keys = build_keys();
    return keys;
}

const ConfigSection* find_section(std::string_view name) {
    const auto& sections = config_sections();
    const auto it = std::find_if(sections.begin(), sections.end(),
                                 [name](const ConfigSection& s) { return s.name == name; });
    return it == sections.end() ? nullptr : &*it;
}

const ConfigKey* find_key(std::string_view section, std::string_view name) {
    const auto& keys = config_keys();
    const auto it = std::find_if(keys.begin(), keys.end(), [&](const ConfigKey& k) {
        return k.section == section && k.name == name;
    });
    return it == keys.end() ? nullptr : &*it;
}

}  // namespace tuner::config::detail
