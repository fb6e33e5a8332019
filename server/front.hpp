// The public HTTP front: an async HTTP/1.1 reverse proxy (Boost.Beast, C++20 coroutines) with
// keep-alive on both sides. Each request waits for a worker slot from the Dispatcher (bounded
// FIFO, queue_timeout → 503 + Retry-After), is streamed to the worker and its response streamed
// back (request_timeout → 504). Header and body limits give 431/413, malformed requests 400.
// The connection and its exchanges are in exchange.hpp; this is the listener, the I/O threads
// and shutdown.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "model/config.hpp"
#include "model/result.hpp"
#include "server/cache_stats.hpp"
#include "server/compression.hpp"
#include "server/dispatcher.hpp"
#include "server/front_hooks.hpp"

namespace tuner::server {

struct FrontCore;
class Watchdog;

// Client connections as the admin API reports them.
struct ConnectionStats {
    std::size_t open = 0;
    std::uint64_t refused_max_connections = 0;      // turned away with 503 (none idle to evict)
    std::uint64_t refused_per_address = 0;          // turned away with 429 at accept
    std::uint64_t evicted = 0;                      // idle connections closed for a newcomer
    std::uint64_t rate_limited = 0;                 // requests answered 429 by [rate_limit]
    std::size_t rate_limit_clients = 0;             // client addresses the rate limit remembers
    std::map<int, std::uint64_t> static_responses;  // [[static]] answers by status
    std::uint64_t static_bytes = 0;                 // [[static]] bytes sent, headers included
    bool access_log_enabled = false;
    std::uint64_t access_log_written = 0;  // [access_log] lines written
    std::uint64_t access_log_dropped = 0;  // lines dropped: the queue was full
    std::uint64_t access_log_errors = 0;   // failed opens and writes
    CompressionStats compression;          // [compression]
    std::uint64_t spool_bytes = 0;         // request body bytes held in spool files now
    std::uint64_t spool_refused = 0;       // bodies refused (503): server.spool_max_size reached
};

class Front {
public:
    // `spool_dir`: where request bodies larger than server.body_buffer_size are held (unnamed
    // files); "" = the system's temporary directory.
    Front(boost::asio::io_context& ioc, const ServerConfig& config, Dispatcher& dispatcher,
          FrontHooks hooks = {}, std::string spool_dir = {});
    ~Front();
    Front(const Front&) = delete;
    Front& operator=(const Front&) = delete;

    // Binds the listener (port 0 picks a free port); EADDRINUSE and friends come back as errors.
    Result<boost::asio::ip::tcp::endpoint> listen(const boost::asio::ip::tcp::endpoint& endpoint);
    // Or serves on a listening socket systemd passed (socket activation), bound to `bound`.
    // One acceptor either way: it hands connections to the I/O threads in turn, so an adopted
    // socket serves every io_thread as a bound one does.
    Result<boost::asio::ip::tcp::endpoint> adopt(const boost::asio::ip::tcp::endpoint& bound,
                                                 int fd);
    // Starts accepting with `io_threads` threads in all (server.io_threads, "auto" resolved by
    // the caller): N − 1 more threads each run an io_context of their own, and connections are
    // handed to the N contexts in turn. (Call it before the process's signals are unblocked:
    // those threads must not take them.)
    void start(unsigned io_threads);
    // Stops and joins the extra I/O threads (after the main io_context stopped).
    void stop_threads();

    // SIGTERM: stop accepting, close idle keep-alive connections, let queued and in-flight
    // requests finish (responses then carry Connection: close).
    void begin_shutdown();
    // shutdown_timeout passed: what is still queued gets 503 and idle connections close;
    // requests already at a worker finish while the pool drains it (workers.drain_timeout).
    void abort_remaining();
    // Requests between header read and response end.
    [[nodiscard]] std::size_t requests_in_progress() const;
    [[nodiscard]] std::size_t open_connections() const;
    [[nodiscard]] ConnectionStats connection_stats() const;
    // Settings that a config reload may change (timeouts, limits, max_queue, [cache]).
    void update_config(const ServerConfig& config);
    // The micro-cache ([cache], micro_cache.hpp): its counters, emptying it, and its capacity
    // in bytes (at most cache.size; the knob a memory policy turns under pressure).
    [[nodiscard]] CacheStats cache_stats() const;
    void clear_cache();
    void set_cache_capacity(std::uint64_t bytes);
    // SIGUSR1: the access log opens its file again (after logrotate moved it).
    void reopen_access_log();
    // Waits until the access log wrote what it has queued (at exit); false on timeout.
    bool flush_access_log(std::chrono::milliseconds timeout);
    // The gzip level the compression policy chose (the knob compression.level), at most the
    // configured one; brotli follows it (effective_levels). From the next response on.
    void set_compression_level(unsigned level);

private:
    boost::asio::awaitable<void> accept_loop();
    std::size_t next_context();
    boost::asio::io_context& context(std::size_t i);
    void close_idle_sessions();
    // A connection beyond max_connections or max_connections_per_address: a short answer
    // written without waiting, then closed (no session, no buffer).
    void turn_away(boost::asio::ip::tcp::socket& socket, std::string_view response,
                   std::string_view reason);

    boost::asio::io_context& ioc_;
    // server.io_threads − 1 contexts with a thread each; the caller's ioc_ is the first.
    std::vector<std::unique_ptr<boost::asio::io_context>> extra_contexts_;
    std::vector<std::thread> extra_threads_;
    std::vector<std::shared_ptr<Watchdog>> watchdogs_;  // one per context, in the same order
    std::size_t next_context_ = 0;
    // Connections turned away since the last log line (one line per second at most).
    std::uint64_t turned_away_ = 0;
    std::chrono::steady_clock::time_point turned_away_logged_{};
    Dispatcher& dispatcher_;
    std::shared_ptr<FrontCore> core_;
    boost::asio::ip::tcp::acceptor acceptor_;
};

}  // namespace tuner::server
