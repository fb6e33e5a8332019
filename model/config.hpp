// The configuration as plain structs, one per TOML section. The member initialisers ARE the
// built-in defaults; etc/tunerd.toml spells out the same values (a test checks they agree).
// Parsing and validation live in tuner/config.*; every module takes only its own struct.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/units.hpp"

namespace tuner {

using namespace std::chrono_literals;

// The largest request header the front accepts: Beast stores a header field in at most 64 KiB
// and throws on a longer one, so no header limit may let one through.
inline constexpr std::uint64_t kMaxHeaderSizeBytes = 64 * KiB;

// [rate_limit]: requests per client address (nginx's limit_req with nodelay), applied by the
// front (it travels in ServerConfig, which the front takes whole).
struct RateLimitConfig {
    double rate = 0;                    // requests per second per client address; 0 = off
    unsigned burst = 20;                // served at once beyond the rate (burst + 1 in a row)
    std::vector<std::string> allow;     // addresses and CIDR networks never limited
    std::uint64_t max_clients = 10000;  // addresses tracked (least recently seen forgotten)

    friend bool operator==(const RateLimitConfig&, const RateLimitConfig&) = default;
};

// [cache]: the front's micro-cache of GET/HEAD responses (server/micro_cache.hpp), applied by
// the front (it travels in ServerConfig). Off at size 0.
struct CacheConfig {
    std::uint64_t size_bytes = 0;  // bytes of entries (keys, headers, bodies); 0 = off
    std::uint64_t max_entry_size_bytes = 1 * MiB;  // larger responses are relayed, not stored
    std::uint64_t max_entries = 100000;            // entries at most, whatever their size
    Duration default_ttl = 0s;       // for `paths` when the response has no freshness; 0 = none
    std::vector<std::string> paths;  // path prefixes that get default_ttl
    Duration stale_if_error = 60s;   // an expired entry serves this long on upstream errors

    friend bool operator==(const CacheConfig&, const CacheConfig&) = default;
};

// [[static]]: one URL prefix served from a directory by the front itself (server/static_files).
struct StaticMount {
    std::string prefix;     // starts and ends with "/"; the longest matching prefix wins
    std::string root;       // an existing directory (absolute path)
    Duration max_age = 0s;  // Cache-Control: max-age
    std::string index;      // served for a directory ("" = a directory is 404)

    friend bool operator==(const StaticMount&, const StaticMount&) = default;
};

enum class AccessLogFormat { combined, common, json };

inline const char* to_string(AccessLogFormat f) {
    switch (f) {
        case AccessLogFormat::combined:
            return "combined";
        case AccessLogFormat::common:
            return "common";
        case AccessLogFormat::json:
            return "json";
    }
    return "?";
}

// [access_log]: one line per request, written by a thread of its own (server/access_log).
struct AccessLogConfig {
    bool enabled = false;
    std::string path = "-";  // "-" = stderr
    AccessLogFormat format = AccessLogFormat::combined;

    friend bool operator==(const AccessLogConfig&, const AccessLogConfig&) = default;
};

// [compression]: gzip and brotli for clients that send Accept-Encoding, applied by the front
// (it travels in ServerConfig). The level is a tuned knob: `level` is its ceiling, and
// policies/compression_level.hpp lowers it while the CPU quota is saturated.
struct CompressionConfig {
    bool enabled = true;
    std::uint64_t min_size_bytes = KiB;  // a smaller response (by Content-Length) is sent as is
    unsigned level = 6;                  // gzip level 1-9 (nginx gzip_comp_level), the ceiling
    unsigned brotli_level = 4;           // brotli quality 0-11 at `level`; lowered in step
    // Media types compressed: "type/subtype", "type/*" or "application/*+json" (a suffix).
    std::vector<std::string> types = {
        "text/*",          "application/json",   "application/javascript",
        "application/xml", "application/*+json", "application/*+xml",
        "image/svg+xml"};

    // Brotli's quality when gzip runs at `gzip_level` (the tuned knob, at most `level`): as many
    // steps below brotli_level as gzip is below `level`, at least 1 (0 stays 0).
    [[nodiscard]] unsigned brotli_at(unsigned gzip_level) const {
        const unsigned steps_down = level > gzip_level ? level - gzip_level : 0;
        if (brotli_level == 0) return 0;
        return brotli_level > steps_down ? brotli_level - steps_down : 1;
    }

    friend bool operator==(const CompressionConfig&, const CompressionConfig&) = default;
};

// [server]: the public listener and its front.
struct ServerConfig {
    std::string listen = "127.0.0.1:8080";
    std::uint64_t max_queue = 1024;
    Duration queue_timeout = 10s;
    // GET/HEAD requests a worker may be given beyond its threads while every worker is busy; they
    // wait in the worker's own backlog (server/dispatcher.hpp, "Backlog"). 0 = off.
    unsigned worker_backlog = 1;
    Duration request_timeout = 60s;
    Duration header_timeout = 10s;
    Duration keepalive_timeout = 75s;
    std::uint64_t max_header_size_bytes = 16 * KiB;
    std::uint64_t max_body_size_bytes = 10 * MiB;
    Duration shutdown_timeout = 30s;
    unsigned io_threads = 0;  // 0 = "auto" (policies/io_threads.hpp)
    // Request buffering (nginx's proxy_request_buffering): a body is read whole before a worker
    // is asked for, up to body_buffer_size in memory, beyond it in a spool file.
    bool request_buffering = true;
    // A path the front answers itself, for load balancers: 200 while a worker is ready, else 503
    // ("" = off). Nothing else is revealed; exempt from the rate limit and the cache.
    std::string health_path;
    std::uint64_t body_buffer_size_bytes = 64 * KiB;
    // Bytes of request bodies held in spool files at once, all connections together; a body
    // that would go past it gets 503 (without it: max_connections × max_body_size of disk).
    std::uint64_t spool_max_size_bytes = 1 * GiB;
    // A body must arrive at this average rate once header_timeout passed (Apache's
    // mod_reqtimeout MinRate); 0: only header_timeout between reads.
    std::uint64_t min_body_rate_bytes = 500;
    // Open client connections; beyond, an idle one is closed for the newcomer, or it gets 503.
    std::uint64_t max_connections = 1024;
    // Connections (requests, behind a trusted proxy) per client address; 0: no cap.
    std::uint64_t max_connections_per_address = 0;
    // Addresses or CIDR networks whose X-Forwarded-* and Forwarded headers are believed: by
    // default a proxy on this host (nginx terminating TLS), as gunicorn's forwarded_allow_ips.
    std::vector<std::string> trusted_proxies = {"127.0.0.1", "::1"};
    RateLimitConfig rate_limit;              // the [rate_limit] section
    CacheConfig cache;                       // the [cache] section
    std::vector<StaticMount> static_mounts;  // the [[static]] tables, in file order
    AccessLogConfig access_log;              // the [access_log] section
    CompressionConfig compression;           // the [compression] section

    friend bool operator==(const ServerConfig&, const ServerConfig&) = default;
};

// [admin]: the admin listener (/health, /metrics, /performance, /workers).
struct AdminConfig {
    std::string listen = "127.0.0.1:9464";
    std::string token_file;  // required when listen is not loopback
    std::string socket;      // a Unix socket (mode 0600, no token) for tunerctl; "" = none

    friend bool operator==(const AdminConfig&, const AdminConfig&) = default;
};

enum class PoolMode { fixed, formula, adaptive };

inline const char* to_string(PoolMode m) {
    switch (m) {
        case PoolMode::fixed:
            return "fixed";
        case PoolMode::formula:
            return "formula";
        case PoolMode::adaptive:
            return "adaptive";
    }
    return "?";
}

struct PortRange {
    std::uint16_t first = 20000;
    std::uint16_t last = 20999;
    friend bool operator==(const PortRange&, const PortRange&) = default;
};

// [workers]: the app's worker processes.
struct PoolConfig {
    // "builtin:demo" is stored as the one-element argv {"builtin:demo"}.
    std::vector<std::string> command = {"builtin:demo"};
    // A WSGI app ("module:callable") imported once by tunerd's preloader, which forks every
    // worker from it (issue 18); "" = off, workers run `command`. With it, command is not used.
    std::string preload;
    std::string server = "gunicorn";          // the WSGI server each forked worker runs
    std::string python = "/usr/bin/python3";  // the interpreter of the preloader
    std::string dir;                          // working directory; "" = tunerd's own
    std::map<std::string, std::string> env;   // extra environment
    PortRange ports;                          // only for commands that use {port}
    PoolMode mode = PoolMode::adaptive;
    unsigned count = 2;  // mode = "fixed"
    unsigned min = 1;
    unsigned max = 64;
    unsigned threads = 1;                 // concurrent requests per worker (start value)
    std::optional<unsigned> threads_max;  // unset = threads (the controller never changes threads)
    std::uint64_t memory_per_worker_bytes = 100 * MiB;  // until measured
    std::uint64_t max_requests = 0;                     // 0 = never recycle
    std::uint64_t max_requests_jitter = 0;
    std::uint64_t max_worker_rss_bytes = 0;  // 0 = no limit
    std::string health_path;                 // "" = ready when the socket accepts
    Duration startup_timeout = 30s;
    Duration drain_timeout = 30s;
    Duration kill_timeout = 10s;

    [[nodiscard]] unsigned effective_threads_max() const { return threads_max.value_or(threads); }
    [[nodiscard]] bool uses_preload() const { return !preload.empty(); }
    [[nodiscard]] bool is_builtin_demo() const {
        return !uses_preload() && command.size() == 1 && command.front() == "builtin:demo";
    }

    friend bool operator==(const PoolConfig&, const PoolConfig&) = default;
};

// [demo]: the built-in demo app's per-request defaults.
struct DemoConfig {
    unsigned cpu_ms = 5;
    unsigned io_ms = 50;
    unsigned rss_mb = 20;

    friend bool operator==(const DemoConfig&, const DemoConfig&) = default;
};

// [policy]: the control loop.
struct PolicyConfig {
    Duration interval = 1s;
    Duration window = 10s;  // sliding window of the front's statistics
    std::uint64_t os_reserve_bytes = 150 * MiB;
    double target_utilisation = 0.8;
    Duration scale_down_cooldown = 30s;
    unsigned pss_every = 10;  // PSS (smaps_rollup) every Nth cycle; RSS every cycle
    bool dry_run = false;

    friend bool operator==(const PolicyConfig&, const PolicyConfig&) = default;
};

enum class PostgresMode { off, recommend, apply };
enum class DatabaseLocation { local, remote };
enum class Storage { ssd, hdd };

inline const char* to_string(PostgresMode m) {
    switch (m) {
        case PostgresMode::off:
            return "off";
        case PostgresMode::recommend:
            return "recommend";
        case PostgresMode::apply:
            return "apply";
    }
    return "?";
}
inline const char* to_string(DatabaseLocation l) {
    return l == DatabaseLocation::local ? "local" : "remote";
}
inline const char* to_string(Storage s) {
    return s == Storage::ssd ? "ssd" : "hdd";
}

// [database]: the app's PostgreSQL, its connection pools and its memory settings.
struct DatabaseConfig {
    std::string url_file;        // libpq connection string the app gets
    std::string admin_url_file;  // rights for ALTER SYSTEM (apply mode)
    PostgresMode postgres = PostgresMode::off;
    DatabaseLocation location = DatabaseLocation::local;
    std::uint64_t memory_bytes = 0;  // PostgreSQL's memory when remote
    double memory_share = 0.25;      // PostgreSQL's share of this box when local
    Storage storage = Storage::ssd;
    Duration connect_timeout = 5s;

    friend bool operator==(const DatabaseConfig&, const DatabaseConfig&) = default;
};

// [state]: where tunerd keeps listen.json, the decision log and the runtime sockets.
struct StateConfig {
    std::string dir;  // "" = $STATE_DIRECTORY, /var/lib/tunerd as root, ~/.local/state/tunerd
    Duration retention = std::chrono::hours(24 * 30);

    friend bool operator==(const StateConfig&, const StateConfig&) = default;
};

// [log]
struct LogConfig {
    std::string level = "info";  // trace, debug, info, warn, error, critical, off

    friend bool operator==(const LogConfig&, const LogConfig&) = default;
};

struct Config {
    ServerConfig server;
    AdminConfig admin;
    PoolConfig workers;
    DemoConfig demo;
    PolicyConfig policy;
    DatabaseConfig database;
    StateConfig state;
    LogConfig log;
    std::string source = "built-in defaults";  // the file it came from, for logs

    // Equal when every setting is equal; `source` is where the settings came from, not a setting,
    // so a file that spells out the defaults equals Config{}.
    friend bool operator==(const Config& a, const Config& b) {
        return a.server == b.server && a.admin == b.admin && a.workers == b.workers &&
               a.demo == b.demo && a.policy == b.policy && a.database == b.database &&
               a.state == b.state && a.log == b.log;
    }
};

}  // namespace tuner
