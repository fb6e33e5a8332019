// The public HTTP front (see front.hpp): the listener, the I/O threads and shutdown. Each
// accepted connection runs a Session (exchange.hpp) on one context; the worker side is reached
// over the Unix socket (or loopback TCP port) the pool gave each worker.
#include "server/front.hpp"

#include <sys/socket.h>

#include <filesystem>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include "server/deadline.hpp"
#include "server/exchange.hpp"
#include "server/guarded.hpp"
#include "server/listener.hpp"

namespace tuner::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;

namespace {

// Connects to a worker's address: its Unix socket, or its port on 127.0.0.1.
struct SocketConnector {
    using Stream = asio::generic::stream_protocol::socket;

    static Stream make(const asio::any_io_executor& executor) { return Stream(executor); }

    static asio::generic::stream_protocol::endpoint endpoint(const UpstreamAddress& address) {
        if (address.tcp_port) {
            return asio::generic::stream_protocol::endpoint(
                tcp::endpoint(asio::ip::address_v4::loopback(), *address.tcp_port));
        }
        return asio::generic::stream_protocol::endpoint(
            asio::local::stream_protocol::endpoint(address.unix_path));
    }

    // A Unix socket's connect() completes in the call, or fails at once (EAGAIN: the worker's
    // listen backlog is full); made non-blocking first, it never waits. True: connected, or
    // failed (ec). False: not tried (TCP), or it must wait (the asynchronous connect then).
    static bool connect_now(Stream& stream, const Backend& backend, boost::system::error_code& ec) {
        if (backend.address.tcp_port) return false;
        const auto ep = endpoint(backend.address);
        stream.open(ep.protocol(), ec);
        if (!ec) stream.non_blocking(true, ec);
        if (ec) return true;
        if (::connect(stream.native_handle(), ep.data(), static_cast<socklen_t>(ep.size())) == 0)
            return true;
        const int error = errno;
        if (error == EAGAIN || error == EINPROGRESS || error == EINTR) {
            boost::system::error_code ignored;
            stream.close(ignored);
            return false;
        }
        ec.assign(error, boost::system::system_category());
        return true;
    }

    static awaitable<boost::system::error_code> connect(Stream& stream, const Backend& backend) {
        boost::system::error_code ec;
        co_await stream.async_connect(endpoint(backend.address),
                                      asio::redirect_error(use_awaitable, ec));
        co_return ec;
    }
};

using ClientSession = Session<tcp::socket, SocketConnector>;

std::string spool_directory(std::string dir) {
    if (!dir.empty()) return dir;
    std::error_code ec;
    auto tmp = std::filesystem::temp_directory_path(ec);
    return ec ? std::string("/tmp") : tmp.string();
}

constexpr std::string_view kTooManyConnections =
    "HTTP/1.1 503 Service Unavailable\r\nServer: tunerd\r\nContent-Type: text/plain; "
    "charset=utf-8\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 39\r\n\r\n"
    "too many open connections, retry later\n";
constexpr std::string_view kTooManyFromAddress =
    "HTTP/1.1 429 Too Many Requests\r\nServer: tunerd\r\nContent-Type: text/plain; "
    "charset=utf-8\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 39\r\n\r\n"
    "too many connections from your address\n";

bool out_of_descriptors(const boost::system::error_code& ec) {
    return ec == asio::error::no_descriptors || ec.value() == ENFILE ||
           ec == asio::error::no_buffer_space || ec == asio::error::no_memory;
}

}  // namespace

Front::Front(asio::io_context& ioc, const ServerConfig& config, Dispatcher& dispatcher,
             FrontHooks hooks, std::string spool_dir)
    : ioc_(ioc),
      dispatcher_(dispatcher),
      core_(std::make_shared<FrontCore>(dispatcher, config, std::move(hooks),
                                        spool_directory(std::move(spool_dir)))),
      acceptor_(ioc) {
    dispatcher_.set_backlog(config.worker_backlog);
}

Front::~Front() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    stop_threads();
    // Sessions whose frames are destroyed later (with their io_context) release nothing.
    core_->dispatcher = nullptr;
}

std::size_t Front::requests_in_progress() const {
    return core_->requests_in_progress.load();
}
std::size_t Front::open_connections() const {
    return core_->open_connections.load();
}
ConnectionStats Front::connection_stats() const {
    const auto limiter = core_->rate_limiter.stats();
    ConnectionStats stats{core_->open_connections.load(),
                          core_->refused_max_connections.load(),
                          core_->refused_per_address.load(),
                          core_->evicted.load(),
                          limiter.limited,
                          limiter.tracked};
    auto statics = core_->static_counters.snapshot();
    stats.static_responses = std::move(statics.responses);
    stats.static_bytes = statics.bytes;
    const auto log = core_->access_log.stats();
    stats.access_log_enabled = core_->access_log.enabled();
    stats.access_log_written = log.written;
    stats.access_log_dropped = log.dropped;
    stats.access_log_errors = log.errors;
    stats.spool_bytes = core_->spool_budget.used();
    stats.spool_refused = core_->spool_budget.refused();
    const auto cfg = core_->config();
    stats.compression = read_counters(core_->compression);
    stats.compression.enabled = cfg->compression.enabled;
    stats.compression.configured_level = cfg->compression.level;
    stats.compression.min_size_bytes = cfg->compression.min_size_bytes;
    stats.compression.levels = effective_levels(cfg->compression, core_->tuned_compression_level());
    return stats;
}

void Front::reopen_access_log() {
    core_->access_log.reopen();
}

bool Front::flush_access_log(std::chrono::milliseconds timeout) {
    return core_->access_log.flush(timeout);
}

CacheStats Front::cache_stats() const {
    return core_->cache.stats();
}
void Front::clear_cache() {
    core_->cache.clear();
}
void Front::set_cache_capacity(std::uint64_t bytes) {
    core_->cache.set_capacity(bytes);
}

void Front::set_compression_level(unsigned level) {
    core_->compression_level = std::max(1u, level);
}

void Front::update_config(const ServerConfig& config) {
    core_->set_config(config);
    dispatcher_.set_max_queue(config.max_queue);
    dispatcher_.set_backlog(config.worker_backlog);
}

std::size_t Front::next_context() {
    // Called only from the accept loop, on ioc_'s thread.
    return next_context_++ % (extra_contexts_.size() + 1);
}

asio::io_context& Front::context(std::size_t i) {
    return i == 0 ? ioc_ : *extra_contexts_[i - 1];
}

void Front::stop_threads() {
    for (auto& c : extra_contexts_) c->stop();
    for (auto& t : extra_threads_) {
        if (t.joinable()) t.join();
    }
    extra_threads_.clear();
}

Result<tcp::endpoint> Front::listen(const tcp::endpoint& endpoint) {
    return open_listener(acceptor_, endpoint);
}

Result<tcp::endpoint> Front::adopt(const tcp::endpoint& bound, int fd) {
    return adopt_listener(acceptor_, bound, fd);
}

void Front::start(unsigned io_threads) {
    io_threads = std::max(1u, io_threads);
    watchdogs_.push_back(std::make_shared<Watchdog>(ioc_.get_executor()));
    for (unsigned i = 1; i < io_threads; ++i) {
        auto& ctx = *extra_contexts_.emplace_back(std::make_unique<asio::io_context>(1));
        watchdogs_.push_back(std::make_shared<Watchdog>(ctx.get_executor()));
        extra_threads_.emplace_back([&ctx, i] {
            auto work = asio::make_work_guard(ctx);
            run_guarded(ctx, "io" + std::to_string(i));
        });
    }
    spawn_guarded(ioc_, accept_loop(), "front_accept");
}

awaitable<void> Front::accept_loop() {
    while (!core_->shutting_down) {
        boost::system::error_code ec;
        const std::size_t i = next_context();
        tcp::socket socket =
            co_await acceptor_.async_accept(context(i), asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
            // EMFILE and friends: an idle connection gives its descriptor back, and the loop
            // backs off briefly instead of spinning on a listener that stays readable.
            if (out_of_descriptors(ec)) core_->evict_idle();
            spdlog::warn("event=accept_failed error=\"{}\" open_connections={}", ec.message(),
                         core_->open_connections.load());
            asio::steady_timer t(ioc_, std::chrono::milliseconds(100));
            co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
        }
        const auto cfg = core_->config();
        // At max_connections, a connection that waits for a request makes room for this one.
        if (core_->open_connections.load() >= cfg->max_connections && !core_->evict_idle()) {
            ++core_->refused_max_connections;
            turn_away(socket, kTooManyConnections, "max_connections");
            continue;
        }
        const auto remote = socket.remote_endpoint(ec);
        if (ec) continue;  // reset before we got to it
        const auto peer = normalized(remote.address());
        std::string address = peer.to_string();
        // A direct client is counted per connection; one behind a trusted proxy per request.
        AddressPlace place;
        if (cfg->max_connections_per_address > 0 && !cfg->proxies.contains(peer)) {
            if (!core_->take_address(address, cfg->max_connections_per_address)) {
                ++core_->refused_per_address;
                turn_away(socket, kTooManyFromAddress, "max_connections_per_address");
                continue;
            }
            place = AddressPlace(core_, address);
        }
        socket.set_option(tcp::no_delay(true), ec);
        auto executor = socket.get_executor();
        auto session = std::make_shared<ClientSession>(core_, watchdogs_[i], std::move(socket),
                                                       SocketConnector{}, std::move(address),
                                                       std::move(place));
        spawn_guarded(executor, ClientSession::run(std::move(session)), "front_session");
    }
}

void Front::turn_away(tcp::socket& socket, std::string_view response, std::string_view reason) {
    // Non-blocking: a client that does not read gets what fits, and the close.
    (void)::send(socket.native_handle(), response.data(), response.size(),
                 MSG_DONTWAIT | MSG_NOSIGNAL);
    boost::system::error_code ec;
    socket.shutdown(tcp::socket::shutdown_send, ec);
    socket.close(ec);
    ++turned_away_;
    const auto now = std::chrono::steady_clock::now();
    if (now - turned_away_logged_ >= std::chrono::seconds(1)) {
        spdlog::warn("event=connections_refused reason={} count={} open_connections={}", reason,
                     turned_away_, core_->open_connections.load());
        turned_away_ = 0;
        turned_away_logged_ = now;
    }
}

void Front::begin_shutdown() {
    core_->shutting_down = true;
    asio::post(ioc_, [this] {
        boost::system::error_code ec;
        acceptor_.close(ec);
    });
    close_idle_sessions();
}

void Front::abort_remaining() {
    core_->aborting = true;
    {
        std::lock_guard lock(core_->mutex);
        // On the thread that runs each: timers and sockets are not shared between threads.
        for (const auto& w : core_->waits) {
            asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
        }
    }
    close_idle_sessions();
}

void Front::close_idle_sessions() {
    std::lock_guard lock(core_->mutex);
    for (const auto& s : core_->sessions) {
        asio::post(s->executor(), [s] { s->close_if_idle(); });
    }
}

}  // namespace tuner::server
