// One client connection of the front and the exchanges it carries, in named steps (the shape of
// Beast's proxy examples, as coroutines):
//
//   Session::run          wait for a request, run its Exchange, repeat while keep-alive holds;
//                         then a lingering close
//   Exchange::run         read_header → acquire_slot → connect → send_request →
//                         read_response_header → relay_response; a failed step names a
//                         Failure and refusal_for() (refusal.hpp) picks the answer
//
// The worker slot is held by a SlotGuard from acquire_slot on: every path that leaves the
// exchange gives it back, once. Timeouts are Deadlines of the thread's Watchdog (deadline.hpp).
// Templates over the client stream and the upstream connector, so that the unit tests drive
// every step over beast::test::stream with failures injected; the front instantiates them with
// Asio sockets.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "model/config.hpp"
#include "server/deadline.hpp"
#include "server/dispatcher.hpp"
#include "server/front_hooks.hpp"
#include "server/http_util.hpp"
#include "server/refusal.hpp"

namespace tuner::server {

namespace exchange_detail {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
}  // namespace exchange_detail

inline constexpr std::size_t kRelayBufferSize = 16 * 1024;
// Beast keeps a header field in at most 64 KiB (a longer one throws std::length_error), and
// parses chunk extensions and trailers without its header limit: every read buffer is bounded
// so that no field longer than this can ever be collected, and a client that sends an endless
// chunk extension gets an error instead of growing the buffer.
inline constexpr std::size_t kMaxReadBuffer = 64 * 1024;
// A connection's read buffer that grew (a large header) is given back between requests.
inline constexpr std::size_t kShrinkBufferAbove = 16 * 1024;
// The worker's response header: 50 Set-Cookie lines must pass.
inline constexpr std::uint32_t kResponseHeaderLimit = 64 * 1024;
// A response whose Content-Length is at most this is read whole from the worker before its
// first byte goes to the client: header and body leave in one write, and a worker that dies
// mid-response has sent the client nothing yet, so an idempotent request can go to another.
inline constexpr std::size_t kWholeResponseMax = 64 * 1024;
inline constexpr auto kConnectTimeout = std::chrono::seconds(5);
// A parked upstream connection is reused only within this idle time: app servers close idle
// keep-alive connections on their own timer (gunicorn's gthread worker after 2 s), and a
// request written just as the close arrives fails, which only an idempotent request survives
// (it is retried). A new connection to a Unix socket costs microseconds.
inline constexpr auto kMaxParkedIdle = std::chrono::seconds(1);

// How the session cancels and closes a stream; the unit tests specialise it for their streams.
template <class Stream>
struct StreamOps {
    static void cancel(Stream& s) {
        boost::system::error_code ec;
        s.cancel(ec);
    }
    static void shutdown_send(Stream& s) {
        boost::system::error_code ec;
        s.shutdown(Stream::shutdown_send, ec);
    }
    static void close(Stream& s) {
        boost::system::error_code ec;
        s.close(ec);
    }
    // A parked connection the worker closed, or wrote to, while it sat idle: one MSG_PEEK.
    static bool peer_done(Stream& s) {
        char c;
        const ssize_t n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }
};

// A connection to one worker, parked in the dispatcher between requests.
template <class Stream>
class UpstreamConnection final : public IdleConnection {
public:
    explicit UpstreamConnection(Stream s) : stream(std::move(s)) {}
    // Taken for a request: false if it sat parked so long that the worker may be closing it
    // right now (kMaxParkedIdle), or if the worker closed it already. Over TCP that takes a
    // look at the socket (MSG_PEEK); over a Unix socket it does not: writing to a Unix socket
    // whose peer closed fails at once (EPIPE), so a request that meets a closed connection is
    // known not to have been delivered and goes out again (Exchange::send_request).
    bool still_usable() {
        if (Clock::now() - parked_at > kMaxParkedIdle || buffer.size() != 0) return false;
        return local || !StreamOps<Stream>::peer_done(stream);
    }
    Stream stream;
    boost::beast::flat_buffer buffer{kMaxReadBuffer};
    Clock::time_point parked_at{};
    bool local = false;  // a Unix socket
};

// What every session of one Front shares. Held by shared_ptr: a coroutine frame the io_context
// destroys after the Front still finds it (the dispatcher is then null, and nothing is released).
struct FrontCore {
    struct WaitState;
    // A live session as shutdown sees it.
    struct SessionHandle {
        virtual ~SessionHandle() = default;
        virtual boost::asio::any_io_executor executor() = 0;
        virtual void close_if_idle() = 0;
    };

    explicit FrontCore(Dispatcher& d, const ServerConfig& config, FrontHooks h)
        : dispatcher(&d),
          hooks(std::move(h)),
          config_(std::make_shared<const ServerConfig>(config)) {}

    std::shared_ptr<const ServerConfig> config() const {
        std::lock_guard lock(config_mutex_);
        return config_;
    }
    void set_config(const ServerConfig& config) {
        std::lock_guard lock(config_mutex_);
        config_ = std::make_shared<const ServerConfig>(config);
    }

    Dispatcher* dispatcher;  // null once the Front is destroyed
    FrontHooks hooks;
    std::atomic<bool> shutting_down{false};
    std::atomic<bool> aborting{false};
    std::atomic<std::uint64_t> next_waiter_id{1};
    std::atomic<std::size_t> requests_in_progress{0};
    std::atomic<std::size_t> open_connections{0};
    std::mutex mutex;  // guards sessions and waits
    std::set<std::shared_ptr<SessionHandle>> sessions;
    std::set<std::shared_ptr<WaitState>> waits;

private:
    mutable std::mutex config_mutex_;
    std::shared_ptr<const ServerConfig> config_;  // replaced whole on reload
};

// A request waiting in the dispatcher's queue: the grant cancels the timer to wake it.
struct FrontCore::WaitState {
    explicit WaitState(boost::asio::any_io_executor ex) : timer(std::move(ex)) {}
    boost::asio::steady_timer timer;
    BackendPtr backend;  // set by the dispatcher (under its lock) when granted
};

// A worker slot held by one exchange: released exactly once, by release() or on destruction
// (a path that forgot, or a frame destroyed at shutdown, gives it back unserved).
class SlotGuard {
public:
    SlotGuard() = default;
    SlotGuard(std::shared_ptr<FrontCore> core, BackendPtr backend)
        : core_(std::move(core)), backend_(std::move(backend)) {}
    SlotGuard(const SlotGuard&) = delete;
    SlotGuard& operator=(const SlotGuard&) = delete;
    SlotGuard(SlotGuard&& o) noexcept
        : core_(std::move(o.core_)), backend_(std::move(o.backend_)) {}
    SlotGuard& operator=(SlotGuard&& o) noexcept {
        if (this != &o) {
            release(nullptr, false);
            core_ = std::move(o.core_);
            backend_ = std::move(o.backend_);
        }
        return *this;
    }
    ~SlotGuard() { release(nullptr, false); }

    explicit operator bool() const { return backend_ != nullptr; }
    [[nodiscard]] const BackendPtr& backend() const { return backend_; }
    // Gives the slot back; `park` (a connection that can serve the next request) goes to the
    // worker's idle list. `served`: the worker answered.
    void release(std::unique_ptr<IdleConnection> park, bool served) {
        if (!backend_) return;
        BackendPtr backend = std::move(backend_);
        backend_.reset();
        if (core_ && core_->dispatcher)
            core_->dispatcher->release(backend, std::move(park), served);
    }

private:
    std::shared_ptr<FrontCore> core_;
    BackendPtr backend_;
};

template <class Client, class Connector>
class Session final : public FrontCore::SessionHandle,
                      public std::enable_shared_from_this<Session<Client, Connector>> {
public:
    using Upstream = typename Connector::Stream;
    using Connection = UpstreamConnection<Upstream>;

    Session(std::shared_ptr<FrontCore> core, std::shared_ptr<Watchdog> watchdog, Client client,
            Connector connector, std::string client_address)
        : core_(std::move(core)),
          client_(std::move(client)),
          connector_(std::move(connector)),
          client_address_(std::move(client_address)),
          client_deadline_(watchdog, [this] { StreamOps<Client>::cancel(client_); }),
          upstream_deadline_(watchdog,
                             [this] {
                                 if (upstream_) StreamOps<Upstream>::cancel(*upstream_);
                             }),
          late_deadline_(watchdog,
                         [this] {
                             if (on_late_) on_late_();
                         }),
          queue_deadline_(std::move(watchdog), [this] {
              if (waiting_) waiting_->timer.cancel();
          }) {}

    boost::asio::any_io_executor executor() override { return client_.get_executor(); }
    void close_if_idle() override {
        if (idle_) StreamOps<Client>::close(client_);
    }

    // The connection's life: requests until keep-alive ends, then a lingering close. `self`
    // (this session) keeps it alive for the coroutine: spawn run(session).
    static boost::asio::awaitable<void> run(std::shared_ptr<Session> self);

private:
    class Exchange;
    boost::asio::awaitable<void> serve();
    boost::asio::awaitable<bool> wait_for_request(const ServerConfig& cfg, bool first);
    boost::asio::awaitable<void> lingering_close();

    std::shared_ptr<FrontCore> core_;
    Client client_;
    Connector connector_;
    std::string client_address_;
    boost::beast::flat_buffer client_buffer_{kMaxReadBuffer};
    bool idle_ = true;              // between requests (shutdown closes idle sessions at once)
    Upstream* upstream_ = nullptr;  // the worker connection in use, for its deadline
    Deadline client_deadline_;
    Deadline upstream_deadline_;
    // request_timeout passed while the worker still owes its response header: the exchange
    // answers 504 at once (on_late_), while it goes on waiting for the worker.
    Deadline late_deadline_;
    std::function<void()> on_late_;
    // queue_timeout for a request waiting in the dispatcher's queue: its wake-up timer never
    // expires by itself (no timerfd change per wait); the grant or this deadline cancels it.
    Deadline queue_deadline_;
    std::shared_ptr<FrontCore::WaitState> waiting_;
    // A message serialized for one write; its memory is kept between requests up to a bound.
    std::string out_;
    void release_out() {
        if (out_.capacity() > kShrinkBufferAbove) {
            std::string().swap(out_);
        } else {
            out_.clear();
        }
    }
};

template <class Client, class Connector>
class Session<Client, Connector>::Exchange {
public:
    Exchange(Session& s, std::shared_ptr<const ServerConfig> cfg)
        : s_(s), core_(*s.core_), cfg_holder_(std::move(cfg)), cfg_(*cfg_holder_) {
        parser_.header_limit(static_cast<std::uint32_t>(
            std::min<std::uint64_t>(cfg_.max_header_size_bytes, kMaxHeaderSizeBytes)));
        parser_.body_limit(cfg_.max_body_size_bytes);
    }
    ~Exchange() {
        if (counted_) --core_.requests_in_progress;
        s_.upstream_ = nullptr;
    }

    // One request; true when the connection may carry another.
    boost::asio::awaitable<bool> run();

private:
    using Request = exchange_detail::http::request_parser<exchange_detail::http::buffer_body>;
    using Response = exchange_detail::http::response_parser<exchange_detail::http::buffer_body>;
    struct Fault {
        Failure failure;
        boost::system::error_code ec;
    };
    using Step = std::optional<Fault>;
    enum class Outcome { keep_alive, close, retry };

    boost::asio::awaitable<Step> read_header();
    boost::asio::awaitable<Step> acquire_slot();
    boost::asio::awaitable<Step> connect();
    boost::asio::awaitable<Step> send_request();
    boost::asio::awaitable<Step> read_response_header();
    boost::asio::awaitable<Outcome> relay_response();
    // The late deadline fired: the 504 goes out now, beside the wait for the worker.
    void late_fired();
    boost::asio::awaitable<void> write_late_answer();
    // After a 504: the worker's answer is read and dropped, then its slot freed; a worker
    // silent for twice request_timeout is reported stuck.
    boost::asio::awaitable<bool> finish_late(boost::system::error_code ec);

    // The request may go to another worker after `fault` (nothing reached the client yet).
    bool may_retry(const Fault& fault) const;
    // may_retry, and if so counts the retry: the caller goes round again.
    bool retry(const Fault& fault);
    void new_response_parser();
    void drop_connection();
    // The worker answered in full (or as far as it will): its slot is freed, the connection
    // parked when `reusable`, and the service time taken. `served`: it counts as an answer.
    void release_worker(bool reusable, bool served = true);
    // The worker failed under this request: the pool checks on it before the slot is freed
    // (a dead worker must leave dispatch before its slot goes to the next request).
    void worker_failed(const std::string& what);
    // The connection is dropped and the slot freed unserved, with no word to the pool.
    void abandon_worker();
    // Sends the front's own answer for `fault` (or nothing: a silent close) and records it.
    boost::asio::awaitable<bool> refuse(Fault fault, bool body_unread);
    void record_now(int status);
    Dispatcher* dispatcher() const { return core_.dispatcher; }

    Session& s_;
    FrontCore& core_;
    std::shared_ptr<const ServerConfig> cfg_holder_;  // a reload replaces it for later requests
    const ServerConfig& cfg_;
    Request parser_;
    std::optional<Response> res_parser_;
    RequestRecord record_;
    unsigned version_ = 11;
    exchange_detail::http::verb method_ = exchange_detail::http::verb::unknown;
    bool keep_alive_ = false;
    bool has_body_ = false;
    bool expect_continue_ = false;
    bool sent_continue_ = false;
    bool counted_ = false;
    bool retried_ = false;
    bool reused_ = false;  // conn_ came parked from an earlier request
    unsigned avoid_ = 0;
    SlotGuard slot_;
    std::unique_ptr<Connection> conn_;
    bool late_answered_ = false;  // the client got (or is getting) 504
    bool late_writing_ = false;
    std::shared_ptr<boost::asio::steady_timer> late_written_;  // wakes finish_late
    Clock::time_point service_start_{};
};

namespace exchange_detail {

// Streams the body of the message in parser `p` from `in` to `out` through serializer `sr`,
// whose header is already written (the relay of the Beast documentation, asynchronous).
// in_ec / out_ec tell which side failed.
template <class InStream, class OutStream, bool isRequest>
asio::awaitable<void> relay_body(InStream& in, Deadline& in_deadline, beast::flat_buffer& in_buffer,
                                 http::parser<isRequest, http::buffer_body>& p, OutStream& out,
                                 Deadline& out_deadline,
                                 http::serializer<isRequest, http::buffer_body>& sr,
                                 Duration in_timeout, Duration out_timeout,
                                 boost::system::error_code& in_ec,
                                 boost::system::error_code& out_ec) {
    std::array<char, kRelayBufferSize> buf;
    do {
        if (!p.is_done()) {
            p.get().body().data = buf.data();
            p.get().body().size = buf.size();
            in_deadline.arm(in_timeout);
            co_await http::async_read(in, in_buffer, p,
                                      asio::redirect_error(asio::use_awaitable, in_ec));
            in_deadline.settle(in_ec);
            if (in_ec == http::error::need_buffer) in_ec = {};
            if (in_ec) co_return;
            p.get().body().size = buf.size() - p.get().body().size;
            // A read that only ended the body (its last chunk, or the end of a close-delimited
            // body) passes no buffer: given an empty one, Beast's chunked serializer writes an
            // empty chunk, itself a last chunk, then the last chunk, which the peer reads as the
            // start of its next message.
            p.get().body().data = p.get().body().size == 0 ? nullptr : buf.data();
            p.get().body().more = !p.is_done();
        } else {
            p.get().body().data = nullptr;
            p.get().body().size = 0;
            p.get().body().more = false;
        }
        out_deadline.arm(out_timeout);
        co_await http::async_write(out, sr, asio::redirect_error(asio::use_awaitable, out_ec));
        out_deadline.settle(out_ec);
        if (out_ec == http::error::need_buffer) out_ec = {};
        if (out_ec) co_return;
    } while (!p.is_done() || !sr.is_done());
}

// Serializes a whole message (header and a buffer_body that is all there) into `out`, so that
// it leaves in one contiguous write: Beast's serializer hands out one buffer per header field,
// each an iovec segment of the system call.
template <bool isRequest>
void serialize(http::serializer<isRequest, http::buffer_body>& sr, std::string& out,
               boost::system::error_code& ec) {
    out.clear();
    while (!ec && !sr.is_done()) {
        sr.next(ec, [&](boost::system::error_code&, const auto& buffers) {
            std::size_t n = 0;
            for (const auto b : beast::buffers_range_ref(buffers)) {
                out.append(static_cast<const char*>(b.data()), b.size());
                n += b.size();
            }
            sr.consume(n);
        });
    }
}

}  // namespace exchange_detail

// ---- the connection ------------------------------------------------------------------------

template <class Client, class Connector>
boost::asio::awaitable<void> Session<Client, Connector>::run(std::shared_ptr<Session> self) {
    co_await self->serve();
}

template <class Client, class Connector>
boost::asio::awaitable<void> Session<Client, Connector>::serve() {
    std::shared_ptr<FrontCore::SessionHandle> handle = this->shared_from_this();
    {
        std::lock_guard lock(core_->mutex);
        core_->sessions.insert(handle);
    }
    ++core_->open_connections;
    struct Unregister {
        Session& s;
        std::shared_ptr<FrontCore::SessionHandle> handle;
        ~Unregister() {
            std::lock_guard lock(s.core_->mutex);
            s.core_->sessions.erase(handle);
            --s.core_->open_connections;
        }
    } unregister{*this, handle};

    for (bool first = true;; first = false) {
        idle_ = true;
        if (core_->shutting_down && !first) break;
        auto cfg = core_->config();
        if (!co_await wait_for_request(*cfg, first)) break;
        idle_ = false;
        Exchange exchange(*this, std::move(cfg));
        if (!co_await exchange.run()) break;
    }
    idle_ = true;
    co_await lingering_close();
}

// Waits for the first byte of the next request: header_timeout for the first request,
// keepalive_timeout between requests. False: closed, idle timeout, or shutdown.
template <class Client, class Connector>
boost::asio::awaitable<bool> Session<Client, Connector>::wait_for_request(const ServerConfig& cfg,
                                                                          bool first) {
    namespace asio = exchange_detail::asio;
    if (client_buffer_.size() > 0) co_return true;  // pipelined: the next request is here
    if (client_buffer_.capacity() > kShrinkBufferAbove) client_buffer_.shrink_to_fit();
    boost::system::error_code ec;
    client_deadline_.arm(first ? cfg.header_timeout : cfg.keepalive_timeout);
    const std::size_t n = co_await client_.async_read_some(
        client_buffer_.prepare(4096), asio::redirect_error(asio::use_awaitable, ec));
    client_deadline_.settle(ec);
    if (ec) co_return false;
    client_buffer_.commit(n);
    co_return true;
}

// After our FIN, read and drop what the client still sends (a body we refused, say) for a
// moment, so that closing does not reset the connection before the client read our answer.
template <class Client, class Connector>
boost::asio::awaitable<void> Session<Client, Connector>::lingering_close() {
    namespace asio = exchange_detail::asio;
    StreamOps<Client>::shutdown_send(client_);
    std::array<char, 4096> discard;
    std::size_t drained = 0;
    boost::system::error_code ec;
    client_deadline_.arm(std::chrono::seconds(2));
    while (drained < 1024 * 1024) {
        const std::size_t n = co_await client_.async_read_some(
            asio::buffer(discard), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        drained += n;
    }
    client_deadline_.disarm();
    StreamOps<Client>::close(client_);
}

// ---- one exchange ----------------------------------------------------------------------------

template <class Client, class Connector>
boost::asio::awaitable<bool> Session<Client, Connector>::Exchange::run() {
    if (auto fault = co_await read_header()) {
        const Refusal refusal = refusal_for(fault->failure, fault->ec, cfg_);
        if (!refusal.answers()) co_return false;
        // Answered before the request counts: recorded as refused, and the connection closes.
        record_.arrived = record_.dispatched = Clock::now();
        keep_alive_ = false;
        co_await refuse(*fault, true);
        co_return false;
    }
    for (;;) {
        if (auto fault = co_await acquire_slot()) co_return co_await refuse(*fault, has_body_);
        if (auto fault = co_await connect()) {
            if (retry(*fault)) continue;
            co_return co_await refuse(*fault, has_body_);
        }
        if (auto fault = co_await send_request()) {
            if (fault->failure == Failure::body_too_large ||
                fault->failure == Failure::body_malformed ||
                fault->failure == Failure::client_gone) {
                // The client failed while sending its body: the worker's connection is mid-message.
                abandon_worker();
                co_return co_await refuse(*fault, true);
            }
            if (fault->failure == Failure::stale_connection) {
                abandon_worker();  // not the worker's failure
            } else {
                worker_failed(fault->ec.message());
            }
            if (retry(*fault)) continue;
            co_return co_await refuse(*fault, has_body_);
        }
        if (auto fault = co_await read_response_header()) {
            if (late_answered_) co_return co_await finish_late(fault->ec);
            worker_failed(fault->ec.message());
            if (retry(*fault)) continue;
            co_return co_await refuse(*fault, false);
        }
        const Outcome outcome = co_await relay_response();
        if (outcome == Outcome::retry) continue;
        co_return outcome == Outcome::keep_alive;
    }
}

template <class Client, class Connector>
auto Session<Client, Connector>::Exchange::read_header() -> boost::asio::awaitable<Step> {
    namespace asio = exchange_detail::asio;
    namespace http = exchange_detail::http;
    boost::system::error_code ec;
    s_.client_deadline_.arm(cfg_.header_timeout);
    co_await http::async_read_header(s_.client_, s_.client_buffer_, parser_,
                                     asio::redirect_error(asio::use_awaitable, ec));
    s_.client_deadline_.settle(ec);
    if (ec) co_return Fault{classify_header_error(ec), ec};

    ++core_.requests_in_progress;
    counted_ = true;
    auto& req = parser_.get();
    version_ = req.version();
    method_ = req.method();
    keep_alive_ = req.keep_alive() && !core_.shutting_down;
    has_body_ = !parser_.is_done();
    record_.arrived = Clock::now();
    record_.dispatched = record_.arrived;
    if (dispatcher()) dispatcher()->note_arrival(record_.arrived);
    if (parser_.content_length() && *parser_.content_length() > cfg_.max_body_size_bytes) {
        // Refused before anything is read of the body: answered, then the connection closes.
        has_body_ = true;
        co_return Fault{Failure::body_too_large, http::error::body_limit};
    }
    if (req.count(http::field::transfer_encoding) != 0 && !parser_.chunked()) {
        // A request body framed by a coding other than chunked (RFC 9112 §6.3: "gzip" alone)
        // has no length anyone can know: 400 and close, never a second request from its bytes.
        has_body_ = true;
        co_return Fault{Failure::header_malformed, http::error::bad_transfer_encoding};
    }
    if (req.count(http::field::content_length) > 1) {
        // Repeated identical lengths (Beast refuses differing ones) reach the worker once.
        const auto length = std::to_string(*parser_.content_length());
        req.erase(http::field::content_length);
        req.set(http::field::content_length, length);
    }
    // What the worker gets: one hop's headers removed, the client's address added, HTTP/1.1.
    expect_continue_ = boost::beast::iequals(req[http::field::expect], "100-continue");
    req.erase(http::field::expect);
    strip_hop_by_hop(req);
    add_forwarded_for(req, s_.client_address_);
    req.version(11);
    if (has_body_ && !parser_.content_length()) req.chunked(true);
    co_return std::nullopt;
}

template <class Client, class Connector>
auto Session<Client, Connector>::Exchange::acquire_slot() -> boost::asio::awaitable<Step> {
    namespace asio = exchange_detail::asio;
    if (core_.aborting || !dispatcher()) co_return Fault{Failure::shutting_down, {}};
    Dispatcher& d = *dispatcher();
    BackendPtr backend = d.try_acquire(avoid_);
    if (!backend) {
        auto wait = std::make_shared<FrontCore::WaitState>(s_.client_.get_executor());
        Waiter waiter;
        waiter.id = core_.next_waiter_id++;
        waiter.avoid = avoid_;
        waiter.grant = [wait](BackendPtr b) {
            wait->backend = std::move(b);
            asio::post(wait->timer.get_executor(), [wait] { wait->timer.cancel(); });
        };
        const auto status = d.acquire(std::move(waiter), backend);
        if (status == AcquireStatus::queue_full) {
            d.note_rejected();
            co_return Fault{Failure::queue_full, {}};
        }
        if (status == AcquireStatus::queued) {
            {
                std::lock_guard lock(core_.mutex);
                core_.waits.insert(wait);
            }
            wait->timer.expires_at(Clock::time_point::max());
            s_.waiting_ = wait;
            s_.queue_deadline_.arm(cfg_.queue_timeout);
            boost::system::error_code ec;
            co_await wait->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            s_.queue_deadline_.disarm();
            s_.waiting_.reset();
            {
                std::lock_guard lock(core_.mutex);
                core_.waits.erase(wait);
            }
            if (!core_.dispatcher) co_return Fault{Failure::shutting_down, {}};
            // Not in the queue any more: granted (possibly just as the timer fired).
            if (!d.cancel(waiter.id)) backend = wait->backend;
            if (!backend) {
                if (core_.aborting) co_return Fault{Failure::shutting_down, {}};
                record_.queue_timeout = true;
                co_return Fault{Failure::queue_timeout, {}};
            }
        }
    }
    slot_ = SlotGuard(s_.core_, std::move(backend));
    record_.dispatched = Clock::now();
    record_.reached_worker = true;
    co_return std::nullopt;
}

template <class Client, class Connector>
auto Session<Client, Connector>::Exchange::connect() -> boost::asio::awaitable<Step> {
    const BackendPtr& backend = slot_.backend();
    while (auto idle = dispatcher()->take_idle(backend)) {
        std::unique_ptr<Connection> candidate(static_cast<Connection*>(idle.release()));
        if (candidate->still_usable()) {
            conn_ = std::move(candidate);
            s_.upstream_ = &conn_->stream;
            reused_ = true;
            co_return std::nullopt;
        }
    }
    reused_ = false;
    conn_ = std::make_unique<Connection>(s_.connector_.make(s_.client_.get_executor()));
    conn_->local = !backend->address.tcp_port;
    s_.upstream_ = &conn_->stream;
    s_.upstream_deadline_.arm(kConnectTimeout);
    boost::system::error_code ec = co_await s_.connector_.connect(conn_->stream, *backend);
    s_.upstream_deadline_.settle(ec);
    if (!ec) co_return std::nullopt;
    // Nothing was sent: any method may go to another worker, once.
    worker_failed("connect: " + ec.message());
    co_return Fault{Failure::worker_unreachable, ec};
}

template <class Client, class Connector>
auto Session<Client, Connector>::Exchange::send_request() -> boost::asio::awaitable<Step> {
    namespace asio = exchange_detail::asio;
    namespace http = exchange_detail::http;
    service_start_ = Clock::now();
    boost::system::error_code in_ec, out_ec;
    auto& req = parser_.get();
    auto& up = conn_->stream;
    http::request_serializer<http::buffer_body> sr{req};
    s_.upstream_deadline_.arm(cfg_.request_timeout);
    bool header_written = false;
    if (!has_body_) {
        req.body().data = nullptr;
        req.body().size = 0;
        req.body().more = false;
        // One contiguous buffer, one system call with one segment.
        exchange_detail::serialize(sr, s_.out_, out_ec);
        if (!out_ec) {
            co_await asio::async_write(up, asio::buffer(s_.out_),
                                       asio::redirect_error(asio::use_awaitable, out_ec));
        }
        s_.upstream_deadline_.settle(out_ec);
        s_.release_out();
    } else {
        co_await http::async_write_header(up, sr,
                                          asio::redirect_error(asio::use_awaitable, out_ec));
        s_.upstream_deadline_.settle(out_ec);
        header_written = !out_ec;
        if (!out_ec && expect_continue_ && !sent_continue_) {
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            s_.client_deadline_.arm(cfg_.header_timeout);
            co_await asio::async_write(s_.client_, asio::buffer(kContinue.data(), kContinue.size()),
                                       asio::redirect_error(asio::use_awaitable, in_ec));
            s_.client_deadline_.settle(in_ec);
            sent_continue_ = true;
        }
        if (!out_ec && !in_ec) {
            co_await exchange_detail::relay_body(s_.client_, s_.client_deadline_, s_.client_buffer_,
                                                 parser_, up, s_.upstream_deadline_, sr,
                                                 cfg_.header_timeout, cfg_.request_timeout, in_ec,
                                                 out_ec);
        }
    }
    if (in_ec) co_return Fault{classify_body_error(in_ec), in_ec};
    if (out_ec && reused_ && conn_->local && !header_written &&
        (out_ec == asio::error::broken_pipe || out_ec == asio::error::connection_reset)) {
        // The worker had closed this parked connection: not one byte was delivered.
        co_return Fault{Failure::stale_connection, out_ec};
    }
    if (out_ec) co_return Fault{Failure::worker_failed, out_ec};
    co_return std::nullopt;
}

template <class Client, class Connector>
auto Session<Client, Connector>::Exchange::read_response_header() -> boost::asio::awaitable<Step> {
    namespace asio = exchange_detail::asio;
    namespace http = exchange_detail::http;
    new_response_parser();
    boost::system::error_code ec;
    // After request_timeout the client gets 504 (late_fired); the worker keeps its slot until
    // it answers, because it is still busy with this request, or until twice request_timeout
    // passed and it counts as stuck.
    s_.on_late_ = [this] { late_fired(); };
    s_.late_deadline_.arm(cfg_.request_timeout);
    s_.upstream_deadline_.arm(cfg_.request_timeout * 2);
    for (;;) {
        co_await http::async_read_header(conn_->stream, conn_->buffer, *res_parser_,
                                         asio::redirect_error(asio::use_awaitable, ec));
        // Interim 1xx responses are not for the client (we never forward Expect or Upgrade):
        // read on to the final response.
        if (ec || res_parser_->get().result_int() >= 200) break;
        new_response_parser();
    }
    s_.upstream_deadline_.settle(ec);
    s_.late_deadline_.disarm();
    s_.on_late_ = nullptr;
    if (late_answered_) co_return Fault{Failure::worker_late, ec};
    if (ec) co_return Fault{classify_response_error(ec), ec};
    co_return std::nullopt;
}

template <class Client, class Connector>
auto Session<Client, Connector>::Exchange::relay_response() -> boost::asio::awaitable<Outcome> {
    namespace asio = exchange_detail::asio;
    namespace http = exchange_detail::http;
    auto& res = res_parser_->get();
    record_.status = res.result_int();
    const bool upstream_keep_alive = res_parser_->keep_alive();
    const bool bodyless = method_ == http::verb::head || res.result_int() == 204 ||
                          res.result_int() == 304 || res.result_int() < 200;
    const auto length = res_parser_->content_length();
    const bool whole =
        bodyless || res_parser_->is_done() || (length && *length <= kWholeResponseMax);
    boost::system::error_code client_ec, upstream_ec;

    // A small response: read it whole, then header and body go out in one write.
    std::unique_ptr<char[]> body;
    std::size_t body_size = 0;
    if (whole && !res_parser_->is_done()) {
        body_size = static_cast<std::size_t>(length.value_or(0));
        body = std::make_unique<char[]>(std::max<std::size_t>(body_size, 1));
        res.body().data = body.get();
        res.body().size = body_size;
        s_.upstream_deadline_.arm(cfg_.request_timeout);
        while (!res_parser_->is_done() && !upstream_ec) {
            co_await http::async_read(conn_->stream, conn_->buffer, *res_parser_,
                                      asio::redirect_error(asio::use_awaitable, upstream_ec));
            if (upstream_ec == http::error::need_buffer) upstream_ec = {};
        }
        s_.upstream_deadline_.settle(upstream_ec);
        if (upstream_ec) {
            // Nothing reached the client: a transport failure is retried (idempotent
            // requests), anything else answered 502.
            worker_failed(upstream_ec.message());
            Fault fault{classify_response_error(upstream_ec), upstream_ec};
            if (fault.failure == Failure::worker_late) fault.failure = Failure::worker_failed;
            if (retry(fault)) co_return Outcome::retry;
            const bool keep = co_await refuse(fault, false);
            co_return keep ? Outcome::keep_alive : Outcome::close;
        }
    }

    strip_hop_by_hop(res);
    if (!bodyless && !length && !res_parser_->is_done()) {
        // The worker's framing (chunked or close-delimited) is per hop: re-frame.
        if (version_ >= 11) {
            res.chunked(true);
        } else {
            keep_alive_ = false;
        }
    }
    if (core_.shutting_down) keep_alive_ = false;
    res.keep_alive(keep_alive_);
    res.version(version_);
    if (whole) {
        // The worker is done: its slot goes to the next request before the client is written
        // to (a sync worker gets its next request a client write sooner).
        release_worker(upstream_keep_alive);
        res.body().data = body.get();
        res.body().size = body_size;
        res.body().more = false;
        http::response_serializer<http::buffer_body> sr{res};
        exchange_detail::serialize(sr, s_.out_, client_ec);
        body.reset();
        s_.client_deadline_.arm(cfg_.request_timeout);
        if (!client_ec) {
            co_await asio::async_write(s_.client_, asio::buffer(s_.out_),
                                       asio::redirect_error(asio::use_awaitable, client_ec));
        }
        s_.client_deadline_.settle(client_ec);
        s_.release_out();
    } else {
        http::response_serializer<http::buffer_body> sr{res};
        s_.client_deadline_.arm(cfg_.request_timeout);
        co_await http::async_write_header(s_.client_, sr,
                                          asio::redirect_error(asio::use_awaitable, client_ec));
        s_.client_deadline_.settle(client_ec);
        if (!client_ec) {
            co_await exchange_detail::relay_body(conn_->stream, s_.upstream_deadline_,
                                                 conn_->buffer, *res_parser_, s_.client_,
                                                 s_.client_deadline_, sr, cfg_.request_timeout,
                                                 cfg_.request_timeout, upstream_ec, client_ec);
        }
    }
    const bool upstream_clean = !upstream_ec && res_parser_->is_done();
    if (upstream_ec) {
        // The headers are with the client already: nothing to retry, the client sees its
        // connection close. Said, so a worker dying mid-response is not silent.
        spdlog::warn(
            "event=response_cut worker={} status={} error=\"{}\" (the worker failed after the "
            "response began; the client's connection is closed)",
            slot_.backend()->id, record_.status, upstream_ec.message());
        worker_failed(upstream_ec.message());
    }
    // (a no-op when released above, or by worker_failed)
    release_worker(upstream_clean && upstream_keep_alive && !client_ec);
    record_now(client_ec ? 0 : record_.status);
    // A response cut short cannot be repaired: the client sees the connection close.
    co_return !client_ec && upstream_clean && keep_alive_ ? Outcome::keep_alive : Outcome::close;
}

template <class Client, class Connector>
void Session<Client, Connector>::Exchange::late_fired() {
    if (late_answered_) return;
    late_answered_ = true;
    late_writing_ = true;
    keep_alive_ = false;
    // The session outlives the writer: finish_late waits for it before the exchange ends.
    boost::asio::co_spawn(s_.client_.get_executor(), write_late_answer(), boost::asio::detached);
}

template <class Client, class Connector>
boost::asio::awaitable<void> Session<Client, Connector>::Exchange::write_late_answer() {
    try {
        co_await refuse(Fault{Failure::worker_late, {}}, false);
    } catch (...) {
        // A failed write is the client gone; nothing else can throw here.
    }
    StreamOps<Client>::shutdown_send(s_.client_);
    late_writing_ = false;
    if (late_written_) late_written_->cancel();
}

// No response header within request_timeout: the client got 504; the worker was still busy
// with the request, so its slot was held until it answered (now: its answer is read and
// dropped) or until a second request_timeout passed (ec: it counts as stuck).
template <class Client, class Connector>
boost::asio::awaitable<bool> Session<Client, Connector>::Exchange::finish_late(
    boost::system::error_code ec) {
    namespace asio = exchange_detail::asio;
    namespace http = exchange_detail::http;
    if (!ec) {
        std::array<char, kRelayBufferSize> scratch;
        s_.upstream_deadline_.arm(cfg_.request_timeout);
        while (!ec && !res_parser_->is_done()) {
            res_parser_->get().body().data = scratch.data();
            res_parser_->get().body().size = scratch.size();
            co_await http::async_read(conn_->stream, conn_->buffer, *res_parser_,
                                      asio::redirect_error(asio::use_awaitable, ec));
            if (ec == http::error::need_buffer) ec = {};
        }
        s_.upstream_deadline_.settle(ec);
    }
    if (ec && !is_timeout(ec)) {
        worker_failed(ec.message());
    } else {
        const unsigned worker = slot_.backend()->id;
        release_worker(!ec && res_parser_->is_done() && res_parser_->keep_alive(), !ec);
        if (ec && core_.hooks.worker_stuck) {
            core_.hooks.worker_stuck(worker, "no response within " +
                                                 format_duration(cfg_.request_timeout * 2) + ": " +
                                                 ec.message());
        }
    }
    if (late_writing_) {
        late_written_ = std::make_shared<asio::steady_timer>(s_.client_.get_executor(),
                                                             Clock::time_point::max());
        boost::system::error_code wait_ec;
        co_await late_written_->async_wait(asio::redirect_error(asio::use_awaitable, wait_ec));
    }
    co_return false;
}

template <class Client, class Connector>
bool Session<Client, Connector>::Exchange::may_retry(const Fault& fault) const {
    if (retried_ || core_.aborting) return false;
    switch (fault.failure) {
        case Failure::worker_unreachable:
        case Failure::stale_connection:
            return true;  // nothing was delivered
        case Failure::worker_failed:
            // The connection failed before anything reached the client: an idempotent request
            // without a body goes to another worker, once (RFC 9110 §9.2.2; nginx's
            // proxy_next_upstream error). A response the worker sent that cannot be relayed
            // (worker_bad_response) is not a reason: the worker ran the request.
            return !has_body_ && is_retryable_method(method_);
        default:
            return false;
    }
}

template <class Client, class Connector>
bool Session<Client, Connector>::Exchange::retry(const Fault& fault) {
    // A stale parked connection costs no attempt: the next one is taken, or a new one made
    // (which cannot be stale), so this repeats at most once per parked connection.
    if (fault.failure == Failure::stale_connection && !core_.aborting) return true;
    if (!may_retry(fault)) return false;
    retried_ = true;
    if (dispatcher()) dispatcher()->note_retry();
    return true;
}

template <class Client, class Connector>
void Session<Client, Connector>::Exchange::new_response_parser() {
    res_parser_.emplace();
    // Beast 1.74 compares against an empty optional wrongly: "unlimited" must be a number.
    res_parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    res_parser_->header_limit(kResponseHeaderLimit);
    if (method_ == exchange_detail::http::verb::head) res_parser_->skip(true);
}

template <class Client, class Connector>
void Session<Client, Connector>::Exchange::release_worker(bool reusable, bool served) {
    if (!slot_) return;
    record_.service_usec = usec_between(service_start_, Clock::now());
    std::unique_ptr<IdleConnection> park;
    if (reusable && conn_) {
        conn_->parked_at = Clock::now();
        park = std::move(conn_);
    }
    drop_connection();
    slot_.release(std::move(park), served);
}

template <class Client, class Connector>
void Session<Client, Connector>::Exchange::drop_connection() {
    s_.upstream_ = nullptr;
    conn_.reset();
}

template <class Client, class Connector>
void Session<Client, Connector>::Exchange::worker_failed(const std::string& what) {
    if (!slot_) return;
    if (core_.hooks.upstream_failed) core_.hooks.upstream_failed(slot_.backend()->id, what);
    avoid_ = slot_.backend()->id;
    abandon_worker();
}

template <class Client, class Connector>
void Session<Client, Connector>::Exchange::abandon_worker() {
    drop_connection();
    slot_.release(nullptr, false);
}

template <class Client, class Connector>
boost::asio::awaitable<bool> Session<Client, Connector>::Exchange::refuse(Fault fault,
                                                                          bool body_unread) {
    namespace asio = exchange_detail::asio;
    namespace http = exchange_detail::http;
    const Refusal refusal = refusal_for(fault.failure, fault.ec, cfg_);
    if (!refusal.answers()) {
        record_now(0);
        co_return false;
    }
    // A body still in the socket cannot be skipped safely: close after answering.
    const bool keep = keep_alive_ && !body_unread && !core_.shutting_down;
    auto res = front_error(refusal.status, version_, refusal.message, keep);
    // A response to HEAD has no content (RFC 9110 §9.3.2): the client reads none, so a body sent
    // on a kept-alive connection would be read as the start of the next response. The
    // Content-Length stays, as for a GET.
    if (method_ == http::verb::head) res.body().clear();
    boost::system::error_code ec;
    s_.client_deadline_.arm(cfg_.request_timeout);
    co_await http::async_write(s_.client_, res, asio::redirect_error(asio::use_awaitable, ec));
    s_.client_deadline_.settle(ec);
    record_now(ec ? 0 : static_cast<int>(res.result_int()));
    co_return keep && !ec;
}

template <class Client, class Connector>
void Session<Client, Connector>::Exchange::record_now(int status) {
    record_.completed = Clock::now();
    record_.status = status;
    if (record_.service_usec == 0 && record_.reached_worker &&
        service_start_ != Clock::time_point{})
        record_.service_usec = usec_between(service_start_, record_.completed);
    if (dispatcher()) dispatcher()->record(record_);
}

}  // namespace tuner::server
