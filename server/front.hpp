// The public HTTP front: an async HTTP/1.1 reverse proxy (Boost.Beast, C++20 coroutines) with
// keep-alive on both sides. Each request waits for a worker slot from the Dispatcher (bounded
// FIFO, queue_timeout → 503 + Retry-After), is streamed to the worker and its response streamed
// back (request_timeout → 504). Header and body limits give 431/413, malformed requests 400.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "model/config.hpp"
#include "model/result.hpp"
#include "server/dispatcher.hpp"

namespace tuner::server {

struct FrontHooks {
    // A worker refused a connection or dropped one mid-request: the pool checks on it. Called
    // before the request's slot is released and before a retry, so it must act at once (a dead
    // worker leaves dispatch before anything else is sent its way), not post.
    std::function<void(unsigned worker_id, const std::string& error)> upstream_failed;
    // A worker held a request for twice request_timeout without answering: replace it.
    std::function<void(unsigned worker_id, const std::string& why)> worker_stuck;
};

class Front {
public:
    Front(boost::asio::io_context& ioc, const ServerConfig& config, Dispatcher& dispatcher,
          FrontHooks hooks = {});
    ~Front();
    Front(const Front&) = delete;
    Front& operator=(const Front&) = delete;

    // Binds the listener (port 0 picks a free port); EADDRINUSE and friends come back as errors.
    Result<boost::asio::ip::tcp::endpoint> listen(const boost::asio::ip::tcp::endpoint& endpoint);
    // Starts accepting. With server.io_threads = N > 1, N − 1 more threads each run an
    // io_context of their own; connections are handed to the N contexts in turn. (Call it before
    // the process's signals are unblocked: those threads must not take them.)
    void start();
    // Stops and joins the extra I/O threads (after the main io_context stopped).
    void stop_threads();

    // SIGTERM: stop accepting, close idle keep-alive connections, let queued and in-flight
    // requests finish (responses then carry Connection: close).
    void begin_shutdown();
    // shutdown_timeout passed: what is still queued gets 503 and idle connections close;
    // requests already at a worker finish while the pool drains it (workers.drain_timeout).
    void abort_remaining();
    // Requests between header read and response end.
    [[nodiscard]] std::size_t requests_in_progress() const {
        return registry_->requests_in_progress.load();
    }
    [[nodiscard]] std::size_t open_connections() const {
        return registry_->open_connections.load();
    }
    // Settings that a config reload may change (timeouts, limits, max_queue).
    void update_config(const ServerConfig& config);

    struct Session;
    struct WaitState;
    struct LateAnswer;

private:
    friend struct Session;
    boost::asio::awaitable<void> accept_loop();
    boost::asio::awaitable<void> run_session(boost::asio::ip::tcp::socket socket);
    // Answers 504 when the worker is late; see the response-header wait in run_session.
    boost::asio::awaitable<void> answer_late(std::shared_ptr<LateAnswer> late,
                                             std::shared_ptr<Session> session, unsigned version,
                                             Duration request_timeout, RequestRecord record);

    std::shared_ptr<const ServerConfig> config() const;
    boost::asio::io_context& next_context();
    void close_idle_sessions();

    boost::asio::io_context& ioc_;
    mutable std::mutex config_mutex_;
    std::shared_ptr<const ServerConfig> config_;  // replaced whole on reload; sessions keep theirs
    // server.io_threads − 1 contexts with a thread each; the caller's ioc_ is the first.
    std::vector<std::unique_ptr<boost::asio::io_context>> extra_contexts_;
    std::vector<std::thread> extra_threads_;
    std::size_t next_context_ = 0;
    Dispatcher& dispatcher_;
    FrontHooks hooks_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::atomic<bool> shutting_down_{false};
    std::atomic<bool> aborting_{false};
    std::atomic<std::uint64_t> next_waiter_id_{1};
    // Live sessions and queued waits, so shutdown can reach them. Shared with the session
    // coroutines: a coroutine frame the io_context destroys after the Front still finds it.
    struct Registry {
        std::mutex mutex;
        std::set<std::shared_ptr<Session>> sessions;
        std::set<std::shared_ptr<WaitState>> waits;
        std::atomic<std::size_t> requests_in_progress{0};
        std::atomic<std::size_t> open_connections{0};
    };
    std::shared_ptr<Registry> registry_ = std::make_shared<Registry>();
};

}  // namespace tuner::server
