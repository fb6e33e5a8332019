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
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <concepts>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "model/config.hpp"
#include "server/access_log.hpp"
#include "server/client_address.hpp"
#include "server/compression_relay.hpp"
#include "server/deadline.hpp"
#include "server/dispatcher.hpp"
#include "server/front_hooks.hpp"
#include "server/http_util.hpp"
#include "server/micro_cache.hpp"
#include "server/rate_limit.hpp"
#include "server/refusal.hpp"
#include "server/request_body.hpp"
#include "server/static_files.hpp"

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
    // Writes what the socket takes now, without waiting (one sendmsg, as nginx's writev): the
    // bytes written, 0 with ec clear when it takes nothing now, ec set when it failed. The rest
    // goes out by an asynchronous write (write_rest).
    template <class ConstBuffers>
    static std::size_t write_now(Stream& s, const ConstBuffers& buffers,
                                 boost::system::error_code& ec) {
        std::array<iovec, 4> iov{};
        std::size_t count = 0;
        for (auto it = boost::asio::buffer_sequence_begin(buffers);
             it != boost::asio::buffer_sequence_end(buffers) && count < iov.size(); ++it) {
            const boost::asio::const_buffer b(*it);
            if (b.size() == 0) continue;
            iov[count++] = iovec{const_cast<void*>(b.data()), b.size()};
        }
        ec = {};
        if (count == 0) return 0;
        msghdr message{};
        message.msg_iov = iov.data();
        message.msg_iovlen = count;
        for (;;) {
            const ssize_t n = ::sendmsg(s.native_handle(), &message, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n >= 0) return static_cast<std::size_t>(n);
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                ec.assign(errno, boost::system::system_category());
            return 0;
        }
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

// The front's settings as one request sees them: the [server] config with its trusted proxies
// parsed. Replaced whole on reload; an exchange keeps the one it started with.
struct FrontSettings : ServerConfig {
    explicit FrontSettings(const ServerConfig& config)
        : ServerConfig(config),
          proxies(config.trusted_proxies),
          rate_limit_allow(config.rate_limit.allow),
          statics(config.static_mounts) {}
    NetworkSet proxies;
    NetworkSet rate_limit_allow;
    StaticMounts statics;  // [[static]], their roots open
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
        // Closes the connection for a newcomer if it waits for a request (any thread): true
        // when it did, and its place in open_connections is given up at once.
        virtual bool try_evict() = 0;
    };

    explicit FrontCore(Dispatcher& d, const ServerConfig& config, FrontHooks h, std::string spool)
        : dispatcher(&d),
          hooks(std::move(h)),
          spool_dir(std::move(spool)),
          cache(config.cache),
          access_log(config.access_log),
          config_(std::make_shared<const FrontSettings>(config)) {}

    std::shared_ptr<const FrontSettings> config() const {
        std::lock_guard lock(config_mutex_);
        return config_;
    }
    void set_config(const ServerConfig& config) {
        auto settings = std::make_shared<const FrontSettings>(config);
        access_log.configure(config.access_log);
        std::lock_guard lock(config_mutex_);
        // A reload that leaves [cache] alone keeps the entries and any capacity set since.
        if (config_->cache != config.cache) cache.configure(config.cache);
        config_ = std::move(settings);
    }

    // One idle connection closed to make room (max_connections): false if none is idle.
    bool evict_idle() {
        std::lock_guard lock(mutex);
        for (const auto& s : sessions) {
            if (s->try_evict()) {
                ++evicted;
                return true;
            }
        }
        return false;
    }

    // Connections (or requests behind a trusted proxy) per client address
    // (max_connections_per_address): a place is taken, or false at the cap.
    bool take_address(const std::string& address, std::uint64_t cap) {
        std::lock_guard lock(address_mutex_);
        auto& n = per_address_[address];
        if (n >= cap) {
            if (n == 0) per_address_.erase(address);
            return false;
        }
        ++n;
        return true;
    }
    void give_back_address(const std::string& address) {
        std::lock_guard lock(address_mutex_);
        const auto it = per_address_.find(address);
        if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
    }

    Dispatcher* dispatcher;  // null once the Front is destroyed
    FrontHooks hooks;
    const std::string spool_dir;      // request bodies larger than body_buffer_size
    RateLimiter rate_limiter;         // [rate_limit], per client address
    MicroCache cache;                 // [cache]
    StaticCounters static_counters;   // [[static]] answers
    AccessLog access_log;             // [access_log]
    CompressionCounters compression;  // [compression]: responses, bytes, CPU, encoder memory
    SpoolBudget spool_budget;         // request body bytes in spool files (spool_max_size)
    // The compression level the policy set (policies/compression_level.hpp); 0: none yet, the
    // configured one applies.
    std::atomic<unsigned> compression_level{0};
    [[nodiscard]] std::optional<unsigned> tuned_compression_level() const {
        const unsigned level = compression_level.load(std::memory_order_relaxed);
        return level ? std::optional<unsigned>(level) : std::nullopt;
    }
    std::atomic<bool> shutting_down{false};
    std::atomic<bool> aborting{false};
    std::atomic<std::uint64_t> next_waiter_id{1};
    std::atomic<std::size_t> requests_in_progress{0};
    std::atomic<std::size_t> open_connections{0};
    std::atomic<std::uint64_t> refused_max_connections{0};
    std::atomic<std::uint64_t> refused_per_address{0};
    std::atomic<std::uint64_t> evicted{0};
    std::mutex mutex;  // guards sessions and waits
    std::set<std::shared_ptr<SessionHandle>> sessions;
    std::set<std::shared_ptr<WaitState>> waits;

private:
    mutable std::mutex config_mutex_;
    std::shared_ptr<const FrontSettings> config_;  // replaced whole on reload
    std::mutex address_mutex_;
    // Bounded: an entry lives while a connection or request of its address does.
    std::unordered_map<std::string, std::uint64_t> per_address_;
};

// A place of one client address in FrontCore's per-address count, given back on destruction.
class AddressPlace {
public:
    AddressPlace() = default;
    AddressPlace(std::shared_ptr<FrontCore> core, std::string address)
        : core_(std::move(core)), address_(std::move(address)) {}
    AddressPlace(AddressPlace&& o) noexcept
        : core_(std::move(o.core_)), address_(std::move(o.address_)) {}
    AddressPlace& operator=(AddressPlace&& o) noexcept {
        if (this != &o) {
            reset();
            core_ = std::move(o.core_);
            address_ = std::move(o.address_);
        }
        return *this;
    }
    ~AddressPlace() { reset(); }
    void reset() {
        if (core_) core_->give_back_address(address_);
        core_.reset();
    }

private:
    std::shared_ptr<FrontCore> core_;
    std::string address_;
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
    // `ahead`: the ticket the slot was acquired with (dispatcher.hpp, "Backlog"), or null.
    SlotGuard(std::shared_ptr<FrontCore> core, BackendPtr backend,
              std::shared_ptr<AheadTicket> ahead = nullptr)
        : core_(std::move(core)), backend_(std::move(backend)), ahead_(std::move(ahead)) {}
    SlotGuard(const SlotGuard&) = delete;
    SlotGuard& operator=(const SlotGuard&) = delete;
    SlotGuard(SlotGuard&& o) noexcept
        : core_(std::move(o.core_)), backend_(std::move(o.backend_)), ahead_(std::move(o.ahead_)) {}
    SlotGuard& operator=(SlotGuard&& o) noexcept {
        if (this != &o) {
            release(nullptr, false);
            core_ = std::move(o.core_);
            backend_ = std::move(o.backend_);
            ahead_ = std::move(o.ahead_);
        }
        return *this;
    }
    ~SlotGuard() { release(nullptr, false); }

    explicit operator bool() const { return backend_ != nullptr; }
    [[nodiscard]] const BackendPtr& backend() const { return backend_; }
    // The ticket it was acquired with, if it may have waited in the worker's backlog.
    [[nodiscard]] const std::shared_ptr<AheadTicket>& ahead() const { return ahead_; }
    // Gives the slot back; `park` (a connection that can serve the next request) goes to the
    // worker's idle list. `served`: the worker answered.
    void release(std::unique_ptr<IdleConnection> park, bool served) {
        if (!backend_) return;
        BackendPtr backend = std::move(backend_);
        backend_.reset();
        std::shared_ptr<AheadTicket> ahead = std::move(ahead_);
        if (core_ && core_->dispatcher)
            core_->dispatcher->release(backend, std::move(park), served, Clock::now(), ahead);
    }

private:
    std::shared_ptr<FrontCore> core_;
    BackendPtr backend_;
    std::shared_ptr<AheadTicket> ahead_;
};

template <class Client, class Connector>
class Session final : public FrontCore::SessionHandle,
                      public std::enable_shared_from_this<Session<Client, Connector>> {
public:
    using Upstream = typename Connector::Stream;
    using Connection = UpstreamConnection<Upstream>;

    // `client_address`: the peer's address as text; `place`: its place in the per-address count
    // (none when uncounted). The session counts itself in open_connections.
    Session(std::shared_ptr<FrontCore> core, std::shared_ptr<Watchdog> watchdog, Client client,
            Connector connector, std::string client_address, AddressPlace place = {})
        : core_(std::move(core)),
          client_(std::move(client)),
          connector_(std::move(connector)),
          client_address_(std::move(client_address)),
          address_place_(std::move(place)),
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
          }) {
        boost::system::error_code ec;
        peer_ = boost::asio::ip::make_address(client_address_, ec);
        ++core_->open_connections;
    }
    ~Session() override { give_up_connection(); }

    boost::asio::any_io_executor executor() override { return client_.get_executor(); }
    void close_if_idle() override {
        if (state_ != State::busy) StreamOps<Client>::close(client_);
    }
    bool try_evict() override {
        State expected = State::idle;
        if (!state_.compare_exchange_strong(expected, State::evicted)) return false;
        give_up_connection();
        boost::asio::post(client_.get_executor(), [self = this->shared_from_this()] {
            StreamOps<Client>::close(self->client_);
        });
        return true;
    }

    // The connection's life: requests until keep-alive ends, then a lingering close. `self`
    // (this session) keeps it alive for the coroutine: spawn run(session).
    static boost::asio::awaitable<void> run(std::shared_ptr<Session> self);

private:
    class Exchange;
    boost::asio::awaitable<void> serve();
    boost::asio::awaitable<bool> wait_for_request(const ServerConfig& cfg, bool first);
    boost::asio::awaitable<void> lingering_close();

    void give_up_connection() {
        if (counted_.exchange(false)) --core_->open_connections;
    }

    std::shared_ptr<FrontCore> core_;
    Client client_;
    Connector connector_;
    std::string client_address_;
    boost::asio::ip::address peer_;  // unspecified when client_address_ is not an address
    AddressPlace address_place_;
    boost::beast::flat_buffer client_buffer_{kMaxReadBuffer};
    // idle: waiting for a request (shutdown, or a newcomer at max_connections, may close it);
    // busy: a request arrived; evicted: closed for a newcomer (set by another thread).
    enum class State { idle, busy, evicted };
    std::atomic<State> state_{State::idle};
    std::atomic<bool> counted_{true};  // holds a place in open_connections
    Upstream* upstream_ = nullptr;     // the worker connection in use, for its deadline
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
    // The body of a small response read whole (at most kWholeResponseMax); kept between
    // requests only up to 4 KB (an API's answer), so that an idle connection holds little.
    static constexpr std::size_t kKeepWholeBodyUpTo = 4096;
    std::unique_ptr<char[]> whole_body_;
    std::size_t whole_body_capacity_ = 0;
    char* whole_body(std::size_t size) {
        if (size > whole_body_capacity_ || !whole_body_) {
            whole_body_capacity_ = std::max<std::size_t>(size, 1024);
            whole_body_ = std::make_unique_for_overwrite<char[]>(whole_body_capacity_);
        }
        return whole_body_.get();
    }
    void release_whole_body() {
        if (whole_body_capacity_ > kKeepWholeBodyUpTo) {
            whole_body_.reset();
            whole_body_capacity_ = 0;
        }
    }
};

template <class Client, class Connector>
class Session<Client, Connector>::Exchange {
public:
    Exchange(Session& s, std::shared_ptr<const FrontSettings> cfg)
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
    // A request for a [[static]] mount: answered from its directory, no worker involved.
    boost::asio::awaitable<bool> serve_static();
    // server.health_path, for load balancers: 200 while a worker is ready (and tunerd is not
    // stopping), else 503; a short text body and nothing else.
    boost::asio::awaitable<bool> serve_health();
    // Request buffering: the whole body is read (to memory, or past body_buffer_size to a spool
    // file) before a worker slot is asked for.
    boost::asio::awaitable<Step> buffer_body();
    // The body would take the spool past server.spool_max_size: 503, a warning at most a minute.
    Fault spool_full();
    // The slot at once if the dispatcher has one free, or the fault that ends the request: true,
    // with `step` set. False: the request must wait for one (acquire_slot).
    bool slot_now(Step& step);
    boost::asio::awaitable<Step> acquire_slot();
    void take_slot(BackendPtr backend, std::shared_ptr<AheadTicket> ahead);
    // The ticket to acquire with (dispatcher.hpp, "Backlog"), or null.
    std::shared_ptr<AheadTicket> ahead_ticket();
    // `conn` becomes the exchange's connection to the slot's worker (`reused`: a parked one).
    void adopt(std::unique_ptr<Connection> conn, bool reused);
    // A parked connection to the slot's worker that is still usable, if there is one.
    bool reuse_parked();
    // A new connection made without a wait, where the connector can (a Unix socket: connect()
    // completes in the call while the worker's listen backlog has room).
    bool connect_now();
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

    // Sends the 100 Continue the client asked for (once).
    boost::asio::awaitable<void> send_continue(boost::system::error_code& ec);
    // The time the next read of a buffered body may take: header_timeout, and no more than
    // keeps the average at min_body_rate after the first header_timeout (mod_reqtimeout).
    Duration body_read_timeout(Clock::time_point started, std::uint64_t received) const;
    // A buffered body goes to the worker: the header and a body in memory in one write, a
    // spooled body after the header in pieces.
    boost::asio::awaitable<void> send_buffered(bool& header_written, boost::system::error_code& ec);
    // A body relayed as the client sends it: the header, then the body through a serializer.
    boost::asio::awaitable<void> send_streamed(bool& header_written,
                                               boost::system::error_code& in_ec,
                                               boost::system::error_code& out_ec);
    // A response relayed as the worker sends it (too long, or of unknown length, to be read
    // whole): the header, then the body, compressed by `encoder` if any, copied to the
    // micro-cache when it stores it.
    boost::asio::awaitable<void> relay_streamed(Encoder* encoder,
                                                const exchange_detail::http::fields* stored_fields,
                                                boost::system::error_code& upstream_ec,
                                                boost::system::error_code& client_ec);
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
    // The request counts as an arrival for the controller (once): not for a cache hit.
    void note_arrival();

    // ---- [cache] (micro_cache.hpp) ----
    // Looks the request up: a value when it was answered from the cache (true: the connection
    // may carry another request), nothing when it goes to a worker.
    boost::asio::awaitable<std::optional<bool>> cache_lookup();
    // Waits (up to request_timeout) for another request's fill of this key: its entry or null.
    boost::asio::awaitable<MicroCache::EntryPtr> wait_for_fill(
        std::shared_ptr<MicroCache::Waiter> waiter);
    // Answers from `entry` with `status`; `front_only`: no worker took part.
    boost::asio::awaitable<bool> serve_cached(MicroCache::EntryPtr entry, cache::Status status,
                                              bool front_only, bool collapsed = false);
    // The worker's response header (hop-by-hop fields removed): whether its body is to be
    // stored, and X-Cache-Status on it.
    void cache_response_header(exchange_detail::http::fields& res,
                               std::optional<std::uint64_t> length);
    // The body to store arrived whole: the entry is stored and the fill's waiters answered.
    void cache_finish(const exchange_detail::http::fields& res, std::string body);
    void count_cache(cache::Status status, bool collapsed = false);
    // Whether [compression] applies to an answer from `entry` (its type, status, length and
    // coding): then it is compressed per the request's Accept-Encoding and says Vary.
    bool cached_compressible(const MicroCache::Entry& entry) const;
    // An upstream failure an expired entry may answer instead (RFC 5861 stale-if-error).
    static bool stale_answers(Failure failure);
    // The access log's line for this exchange (record_now, when the log is on).
    void log_access();
    Dispatcher* dispatcher() const { return core_.dispatcher; }

    Session& s_;
    FrontCore& core_;
    std::shared_ptr<const FrontSettings> cfg_holder_;  // a reload replaces it for later requests
    const FrontSettings& cfg_;
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
    unsigned retry_after_s_ = 0;          // a 429 of the rate limit: when the client may try again
    std::shared_ptr<AheadTicket> ahead_;  // made at the first acquire that may wait ahead
    SlotGuard slot_;
    std::optional<BufferedBody> body_;  // the whole request body, when buffered
    AddressPlace client_place_;         // the forwarded client's place (behind a trusted proxy)
    std::unique_ptr<Connection> conn_;
    bool late_answered_ = false;  // the client got (or is getting) 504
    bool late_writing_ = false;
    std::shared_ptr<boost::asio::steady_timer> late_written_;  // wakes finish_late
    Clock::time_point service_start_{};
    bool arrival_noted_ = false;
    // [cache]: the X-Cache-Status of this request (none while the cache is off).
    std::optional<cache::Status> cache_status_;
    bool cache_counted_ = false;
    bool cache_credentials_ = false;  // Authorization or Cookie
    bool cache_may_store_ = false;    // its response may be stored
    std::string cache_primary_;
    MicroCache::FillGuard cache_fill_;  // this request fills its key
    MicroCache::EntryPtr cache_stale_;  // an expired entry that may answer an upstream error
    std::optional<cache::Storability> cache_storing_;  // the response being stored
    bool health_ = false;                              // a GET or HEAD of server.health_path
    const StaticMounts::Mount* static_ = nullptr;      // the [[static]] mount the path is under
    std::optional<boost::asio::ip::address> client_;   // the client, once the header is read
    std::optional<unsigned> worker_id_;                // the worker that took the request
    std::uint64_t bytes_sent_ = 0;                     // to the client, headers included
};

namespace exchange_detail {

// A copy of a relayed body, up to `limit` bytes (the micro-cache's max_entry_size).
struct Tee {
    std::string data;
    std::size_t limit = 0;
    bool overflow = false;
    void append(const char* p, std::size_t n) {
        if (overflow) return;
        if (data.size() + n > limit) {
            overflow = true;
            std::string().swap(data);
            return;
        }
        data.append(p, n);
    }
};

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
                                 boost::system::error_code& out_ec, Tee* tee = nullptr,
                                 std::uint64_t* written = nullptr) {
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
            if (tee) tee->append(buf.data(), p.get().body().size);
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
        const std::size_t n =
            co_await http::async_write(out, sr, asio::redirect_error(asio::use_awaitable, out_ec));
        if (written) *written += n;
        out_deadline.settle(out_ec);
        if (out_ec == http::error::need_buffer) out_ec = {};
        if (out_ec) co_return;
    } while (!p.is_done() || !sr.is_done());
}

// The header of `m` as Beast's serializer writes it (basic_fields::writer): the start line,
// every field in order, the blank line.
template <bool isRequest, class Body>
void append_header(const http::message<isRequest, Body>& m, std::string& out) {
    const auto text = [](beast::string_view v) { return std::string_view(v.data(), v.size()); };
    const unsigned version = m.version();
    const char http_version[] = {'H', 'T',
                                 'T', 'P',
                                 '/', static_cast<char>('0' + version / 10),
                                 '.', static_cast<char>('0' + version % 10)};
    if constexpr (isRequest) {
        out.append(text(m.method_string()));
        out += ' ';
        out.append(text(m.target()));
        out += ' ';
        out.append(http_version, sizeof http_version);
    } else {
        out.append(http_version, sizeof http_version);
        const unsigned code = m.result_int();
        const char status[] = {' ', static_cast<char>('0' + code / 100 % 10),
                               static_cast<char>('0' + code / 10 % 10),
                               static_cast<char>('0' + code % 10), ' '};
        out.append(status, sizeof status);
        const auto reason = m.reason();
        out.append(text(reason.empty() ? http::obsolete_reason(m.result()) : reason));
    }
    out.append("\r\n");
    for (const auto& f : m) {
        out.append(text(f.name_string()));
        out.append(": ");
        out.append(text(f.value()));
        out.append("\r\n");
    }
    out.append("\r\n");
}

// Serializes a whole message (header and a buffer_body that is all there) into `out`, so that
// it leaves in one contiguous write: Beast's serializer hands out one buffer per header field,
// each an iovec segment of the system call.
// `header_only`: the header alone (its body goes out by other means). The serializer lives on
// this function's stack, not in a coroutine's frame: a frame over 1 KB is a malloc each time.
template <bool isRequest>
void serialize(http::message<isRequest, http::buffer_body>& message, std::string& out,
               boost::system::error_code& ec, bool header_only = false) {
    out.clear();
    if (!message.chunked()) {
        // Written straight from the fields, as Beast's writer lays them out: its buffer sequence
        // (a view per field, walked through a variant) cost more than the copy.
        append_header(message, out);
        if (!header_only && message.body().data)
            out.append(static_cast<const char*>(message.body().data), message.body().size);
        return;
    }
    http::serializer<isRequest, http::buffer_body> sr{message};
    if (header_only) sr.split(true);
    while (!ec && !(header_only ? sr.is_header_done() : sr.is_done())) {
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

// ---- I/O without a trip through the scheduler ----------------------------------------------
// An Asio operation that completes at once is still posted: its handler goes through the
// scheduler's queue (a lock, a handler allocation, a resume) before the coroutine goes on. As
// nginx does, the front writes at once what the socket takes (StreamOps::write_now) and parses
// what it already read (parse_buffered); only what must wait goes to the reactor.

// Parses what `b` holds into `p`, no I/O: true when `done(p)` holds. False with ec clear: more
// bytes must be read (an asynchronous read then parses them with the rest); with ec set: the
// bytes are bad, as the asynchronous read would have said.
template <class Parser, class Done>
bool parse_buffered(Parser& p, beast::flat_buffer& b, boost::system::error_code& ec, Done done) {
    ec = {};
    while (!done(p)) {
        if (b.size() == 0) return false;
        const std::size_t used = p.put(b.data(), ec);
        b.consume(used);
        if (ec == http::error::need_more || ec == http::error::need_buffer) {
            ec = {};
            return false;
        }
        if (ec || used == 0) return false;
    }
    return true;
}

// The rest of `buffers` after the `written` bytes write_now took, written asynchronously under
// `deadline`: the bytes it wrote.
template <class Stream, class ConstBuffers>
asio::awaitable<std::size_t> write_rest(Stream& s, const ConstBuffers& buffers, std::size_t written,
                                        Deadline& deadline, Duration timeout,
                                        boost::system::error_code& ec) {
    beast::buffers_suffix<ConstBuffers> rest(buffers);
    rest.consume(written);
    deadline.arm(timeout);
    const std::size_t n =
        co_await asio::async_write(s, rest, asio::redirect_error(asio::use_awaitable, ec));
    deadline.settle(ec);
    co_return n;
}

// Writes all of `buffers`: at once what the socket takes, the rest asynchronously under
// `deadline`. The bytes written.
template <class Stream, class ConstBuffers>
asio::awaitable<std::size_t> write_all(Stream& s, const ConstBuffers& buffers, Deadline& deadline,
                                       Duration timeout, boost::system::error_code& ec) {
    std::size_t n = StreamOps<Stream>::write_now(s, buffers, ec);
    if (!ec && n < asio::buffer_size(buffers))
        n += co_await write_rest(s, buffers, n, deadline, timeout, ec);
    co_return n;
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
    struct Unregister {
        Session& s;
        std::shared_ptr<FrontCore::SessionHandle> handle;
        ~Unregister() {
            std::lock_guard lock(s.core_->mutex);
            s.core_->sessions.erase(handle);
        }
    } unregister{*this, handle};

    auto cfg = core_->config();
    for (bool first = true;; first = false) {
        if (!first) state_ = State::idle;
        if (core_->shutting_down && !first) break;
        if (!co_await wait_for_request(*cfg, first)) break;
        // A request arrived, unless the connection was just closed for a newcomer.
        State expected = State::idle;
        if (!state_.compare_exchange_strong(expected, State::busy)) break;
        // The settings of the moment it arrived (a reload applies from the next request on).
        cfg = core_->config();
        Exchange exchange(*this, cfg);
        if (!co_await exchange.run()) break;
    }
    if (state_ == State::busy) state_ = State::idle;
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
        if (counted_ && !record_.front_only) note_arrival();
        // Refused by a limit on a request read whole: the connection may carry the next one.
        if (fault->failure == Failure::rate_limited ||
            fault->failure == Failure::too_many_connections)
            co_return co_await refuse(*fault, has_body_);
        const Refusal refusal = refusal_for(fault->failure, fault->ec, cfg_);
        if (!refusal.answers()) co_return false;
        // Answered before the request counts: recorded as refused, and the connection closes.
        record_.arrived = record_.dispatched = Clock::now();
        keep_alive_ = false;
        co_await refuse(*fault, true);
        co_return false;
    }
    if (health_) co_return co_await serve_health();
    if (static_) co_return co_await serve_static();
    // A request the cache may answer counts as an arrival only once it goes to a worker.
    const bool cache_on = core_.cache.enabled();
    if (!cache_on || has_body_) note_arrival();
    if (has_body_ && cfg_.request_buffering) {
        if (auto fault = co_await buffer_body()) co_return co_await refuse(*fault, true);
    }
    if (cache_on) {
        if (auto answered = co_await cache_lookup()) co_return *answered;
        note_arrival();
    }
    for (;;) {
        // A free slot and a parked connection are taken without a wait (or a coroutine frame).
        Step slot;
        if (!slot_now(slot)) slot = co_await acquire_slot();
        if (slot) co_return co_await refuse(*slot, has_body_);
        if (!reuse_parked() && !connect_now()) {
            if (auto fault = co_await connect()) {
                if (retry(*fault)) continue;
                co_return co_await refuse(*fault, has_body_);
            }
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
    // Most often the whole header came with the bytes wait_for_request read.
    const auto header_done = [](const Request& p) { return p.is_header_done(); };
    if (!exchange_detail::parse_buffered(parser_, s_.client_buffer_, ec, header_done) && !ec) {
        s_.client_deadline_.arm(cfg_.header_timeout);
        co_await http::async_read_header(s_.client_, s_.client_buffer_, parser_,
                                         asio::redirect_error(asio::use_awaitable, ec));
        s_.client_deadline_.settle(ec);
    }
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
    // The client: the peer, or the one a trusted proxy forwarded.
    const bool peer_trusted = cfg_.proxies.contains(s_.peer_);
    const auto client = peer_trusted ? client_address(cfg_.proxies, s_.peer_, forwarded_for(req))
                                     : normalized(s_.peer_);
    client_ = client;
    if (!cfg_.health_path.empty() && (method_ == http::verb::get || method_ == http::verb::head)) {
        const std::string_view target = req.target();
        if (target.substr(0, target.find('?')) == cfg_.health_path) {
            // The front answers it, before the rate limit: not an arrival either.
            health_ = true;
            record_.front_only = true;
            has_body_ = has_body_ || !parser_.is_done();
            co_return std::nullopt;
        }
    }
    if (cfg_.rate_limit.rate > 0 && !cfg_.rate_limit_allow.contains(client)) {
        const auto verdict =
            core_.rate_limiter.admit(client.to_string(), cfg_.rate_limit, record_.arrived);
        if (!verdict.allowed) {
            // Not an arrival the pool is sized for: counted by its status only.
            record_.front_only = true;
            retry_after_s_ = verdict.retry_after_s;
            has_body_ = has_body_ || !parser_.is_done();
            co_return Fault{Failure::rate_limited, {}};
        }
    }
    if (!cfg_.statics.empty()) {
        const std::string_view target = req.target();
        if ((static_ = cfg_.statics.match(target.substr(0, target.find('?'))))) {
            // The front answers it: not an arrival the pool is sized for.
            record_.front_only = true;
            has_body_ = has_body_ || !parser_.is_done();
            co_return std::nullopt;
        }
    }
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
    // Behind a trusted proxy, the client is the one it forwarded: counted per address here,
    // per request (a direct client was counted per connection when accepted).
    if (peer_trusted && cfg_.max_connections_per_address > 0) {
        auto address = client.to_string();
        if (!core_.take_address(address, cfg_.max_connections_per_address)) {
            has_body_ = has_body_ || !parser_.is_done();
            co_return Fault{Failure::too_many_connections, {}};
        }
        client_place_ = AddressPlace(s_.core_, std::move(address));
    }
    // What the worker gets: one hop's headers removed, the forwarding headers set, HTTP/1.1.
    expect_continue_ = boost::beast::iequals(req[http::field::expect], "100-continue");
    req.erase(http::field::expect);
    strip_hop_by_hop(req);
    set_forwarding_headers(req, s_.client_address_, peer_trusted);
    req.version(11);
    // A buffered body gets its Content-Length once read whole; a relayed one keeps the length
    // the client gave, or is chunked.
    if (has_body_ && !parser_.content_length() && !cfg_.request_buffering) req.chunked(true);
    co_return std::nullopt;
}

template <class Client, class Connector>
Duration Session<Client, Connector>::Exchange::body_read_timeout(Clock::time_point started,
                                                                 std::uint64_t received) const {
    if (cfg_.min_body_rate_bytes == 0) return cfg_.header_timeout;
    const auto earned = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(
        static_cast<double>(received) / static_cast<double>(cfg_.min_body_rate_bytes)));
    const auto left = std::chrono::duration_cast<Duration>(cfg_.header_timeout + earned -
                                                           (Clock::now() - started));
    return std::clamp<Duration>(left, std::chrono::milliseconds(1), cfg_.header_timeout);
}

template <class Client, class Connector>
boost::asio::awaitable<void> Session<Client, Connector>::Exchange::send_continue(
    boost::system::error_code& ec) {
    namespace asio = exchange_detail::asio;
    if (!expect_continue_ || sent_continue_) co_return;
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    s_.client_deadline_.arm(cfg_.header_timeout);
    co_await asio::async_write(s_.client_, asio::buffer(kContinue.data(), kContinue.size()),
                               asio::redirect_error(asio::use_awaitable, ec));
    s_.client_deadline_.settle(ec);
    sent_continue_ = true;
}

template <class Client, class Connector>
auto Session<Client, Connector>::Exchange::spool_full() -> Fault {
    if (core_.spool_budget.warnings.due())
        spdlog::warn(
            "event=spool_full held_bytes={} max_bytes={} refused={} (request bodies larger than "
            "server.body_buffer_size held on disk reached server.spool_max_size; more get 503 "
            "until some finish; logged at most once a minute)",
            core_.spool_budget.used(), cfg_.spool_max_size_bytes, core_.spool_budget.refused());
    return Fault{Failure::spool_full, {}};
}

template <class Client, class Connector>
auto Session<Client, Connector>::Exchange::buffer_body() -> boost::asio::awaitable<Step> {
    namespace asio = exchange_detail::asio;
    namespace http = exchange_detail::http;
    boost::system::error_code ec;
    // A declared length the spool cannot take now is refused before the client sends it (and
    // before a 100 Continue); the budget taken while the body arrives is what decides.
    const auto declared = parser_.content_length();
    if (declared && *declared > cfg_.body_buffer_size_bytes &&
        !core_.spool_budget.fits(*declared, cfg_.spool_max_size_bytes)) {
        core_.spool_budget.count_refusal();
        co_return spool_full();
    }
    co_await send_continue(ec);
    if (ec) co_return Fault{Failure::client_gone, ec};
    body_.emplace(cfg_.body_buffer_size_bytes, core_.spool_dir, &core_.spool_budget,
                  cfg_.spool_max_size_bytes);
    // Beast adds a chunked body's trailer fields to the header: they are dropped, so that no
    // trailer reaches the worker as a header (an X-Forwarded-For after ours, say).
    http::fields& fields = parser_.get();
    std::optional<http::fields> header;
    if (parser_.chunked()) header = fields;
    std::array<char, kRelayBufferSize> buf;
    const auto started = Clock::now();
    while (!parser_.is_done()) {
        auto& body = parser_.get().body();
        body.data = buf.data();
        body.size = buf.size();
        s_.client_deadline_.arm(body_read_timeout(started, body_->size()));
        co_await http::async_read(s_.client_, s_.client_buffer_, parser_,
                                  asio::redirect_error(asio::use_awaitable, ec));
        s_.client_deadline_.settle(ec);
        if (ec == http::error::need_buffer) ec = {};
        if (is_timeout(ec)) co_return Fault{Failure::body_timeout, ec};
        if (ec) co_return Fault{classify_body_error(ec), ec};
        const std::size_t n = buf.size() - body.size;
        if (auto st = body_->append({buf.data(), n}); !st) {
            if (st.error().code == kSpoolFull) co_return spool_full();
            spdlog::error(
                "event=spool_failed dir={} error=\"{}\" (a request body larger than "
                "server.body_buffer_size could not be held; the client gets 503)",
                core_.spool_dir, st.error().what);
            co_return Fault{Failure::spool_failed,
                            {st.error().code, boost::system::system_category()}};
        }
    }
    // The worker gets the body with its length, however the client framed it (trailers end
    // here, as in nginx). The wait for a worker starts now: the upload was the client's time.
    if (header) fields = std::move(*header);
    parser_.get().content_length(body_->size());
    record_.arrived = record_.dispatched = Clock::now();
    co_return std::nullopt;
}

template <class Client, class Connector>
std::shared_ptr<AheadTicket> Session<Client, Connector>::Exchange::ahead_ticket() {
    // Only a request that can be sent again may wait in a busy worker's backlog: if that worker
    // dies before taking it, it goes to another (may_retry).
    if (dispatcher()->backlog() == 0 || has_body_ || body_ || retried_ ||
        !is_retryable_method(method_))
        return nullptr;
    if (!ahead_) ahead_ = std::make_shared<AheadTicket>();
    return ahead_;
}

template <class Client, class Connector>
bool Session<Client, Connector>::Exchange::slot_now(Step& step) {
    if (core_.aborting || !dispatcher()) {
        step = Fault{Failure::shutting_down, {}};
        return true;
    }
    std::shared_ptr<AheadTicket> ahead = ahead_ticket();
    BackendPtr backend = dispatcher()->try_acquire(avoid_, Clock::now(), ahead);
    if (!backend) return false;
    take_slot(std::move(backend), std::move(ahead));
    step = std::nullopt;
    return true;
}

template <class Client, class Connector>
void Session<Client, Connector>::Exchange::take_slot(BackendPtr backend,
                                                     std::shared_ptr<AheadTicket> ahead) {
    slot_ = SlotGuard(s_.core_, std::move(backend), std::move(ahead));
    worker_id_ = slot_.backend()->id;
    record_.dispatched = Clock::now();
    record_.reached_worker = true;
}

template <class Client, class Connector>
auto Session<Client, Connector>::Exchange::acquire_slot() -> boost::asio::awaitable<Step> {
    namespace asio = exchange_detail::asio;
    if (core_.aborting || !dispatcher()) co_return Fault{Failure::shutting_down, {}};
    Dispatcher& d = *dispatcher();
    std::shared_ptr<AheadTicket> ahead = ahead_ticket();
    BackendPtr backend;
    auto wait = std::make_shared<FrontCore::WaitState>(s_.client_.get_executor());
    Waiter waiter;
    waiter.id = core_.next_waiter_id++;
    waiter.avoid = avoid_;
    waiter.ahead = ahead;
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
    take_slot(std::move(backend), std::move(ahead));
    co_return std::nullopt;
}

template <class Client, class Connector>
void Session<Client, Connector>::Exchange::adopt(std::unique_ptr<Connection> conn, bool reused) {
    conn_ = std::move(conn);
    if (!reused) conn_->local = !slot_.backend()->address.tcp_port;
    s_.upstream_ = &conn_->stream;
    reused_ = reused;
}

template <class Client, class Connector>
bool Session<Client, Connector>::Exchange::reuse_parked() {
    while (auto idle = dispatcher()->take_idle(slot_.backend())) {
        std::unique_ptr<Connection> candidate(static_cast<Connection*>(idle.release()));
        if (candidate->still_usable()) {
            adopt(std::move(candidate), true);
            return true;
        }
    }
    return false;
}

template <class Client, class Connector>
bool Session<Client, Connector>::Exchange::connect_now() {
    if constexpr (requires(Connector & c, Upstream & u, const Backend& b,
                           boost::system::error_code& e) {
                      { c.connect_now(u, b, e) } -> std::same_as<bool>;
                  }) {
        auto conn = std::make_unique<Connection>(s_.connector_.make(s_.client_.get_executor()));
        boost::system::error_code ec;
        // Anything but a connection made in the call (a full listen backlog, a refusal) is left
        // to connect(), which waits, or fails and says so.
        if (!s_.connector_.connect_now(conn->stream, *slot_.backend(), ec) || ec) return false;
        adopt(std::move(conn), false);
        return true;
    } else {
        return false;
    }
}

template <class Client, class Connector>
auto Session<Client, Connector>::Exchange::connect() -> boost::asio::awaitable<Step> {
    adopt(std::make_unique<Connection>(s_.connector_.make(s_.client_.get_executor())), false);
    s_.upstream_deadline_.arm(kConnectTimeout);
    boost::system::error_code ec = co_await s_.connector_.connect(conn_->stream, *slot_.backend());
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
    bool header_written = false;
    if (body_) {
        s_.upstream_deadline_.arm(cfg_.request_timeout);
        co_await send_buffered(header_written, out_ec);
        s_.upstream_deadline_.settle(out_ec);
    } else if (!has_body_) {
        req.body().data = nullptr;
        req.body().size = 0;
        req.body().more = false;
        // One contiguous buffer, one system call with one segment, made at once when the
        // socket takes it (it does, but for a worker that stopped reading).
        exchange_detail::serialize(req, s_.out_, out_ec);
        if (!out_ec) {
            co_await exchange_detail::write_all(up, asio::buffer(s_.out_), s_.upstream_deadline_,
                                                cfg_.request_timeout, out_ec);
        }
        s_.release_out();
    } else {
        co_await send_streamed(header_written, in_ec, out_ec);
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
boost::asio::awaitable<void> Session<Client, Connector>::Exchange::send_streamed(
    bool& header_written, boost::system::error_code& in_ec, boost::system::error_code& out_ec) {
    namespace asio = exchange_detail::asio;
    namespace http = exchange_detail::http;
    auto& up = conn_->stream;
    http::request_serializer<http::buffer_body> sr{parser_.get()};
    s_.upstream_deadline_.arm(cfg_.request_timeout);
    co_await http::async_write_header(up, sr, asio::redirect_error(asio::use_awaitable, out_ec));
    s_.upstream_deadline_.settle(out_ec);
    header_written = !out_ec;
    if (!out_ec) co_await send_continue(in_ec);
    if (!out_ec && !in_ec) {
        co_await exchange_detail::relay_body(
            s_.client_, s_.client_deadline_, s_.client_buffer_, parser_, up, s_.upstream_deadline_,
            sr, cfg_.header_timeout, cfg_.request_timeout, in_ec, out_ec);
    }
}

template <class Client, class Connector>
boost::asio::awaitable<void> Session<Client, Connector>::Exchange::send_buffered(
    bool& header_written, boost::system::error_code& ec) {
    namespace asio = exchange_detail::asio;
    namespace http = exchange_detail::http;
    auto& req = parser_.get();
    req.body().data = nullptr;
    req.body().size = 0;
    req.body().more = false;
    exchange_detail::serialize(req, s_.out_, ec, true);
    if (ec) co_return;
    auto& up = conn_->stream;
    // (Under the upstream deadline send_request armed.)
    if (!body_->spooled()) {
        // One system call: the header and the body as two segments, at once if the socket
        // takes them.
        const auto memory = body_->memory();
        const std::array<asio::const_buffer, 2> message{asio::buffer(s_.out_),
                                                        asio::buffer(memory.data(), memory.size())};
        const std::size_t n = StreamOps<Upstream>::write_now(up, message, ec);
        if (!ec && n < asio::buffer_size(message)) {
            boost::beast::buffers_suffix<std::array<asio::const_buffer, 2>> rest(message);
            rest.consume(n);
            co_await asio::async_write(up, rest, asio::redirect_error(asio::use_awaitable, ec));
        }
        s_.release_out();
        co_return;
    }
    co_await asio::async_write(up, asio::buffer(s_.out_),
                               asio::redirect_error(asio::use_awaitable, ec));
    s_.release_out();
    if (ec) co_return;
    header_written = true;
    std::array<char, kRelayBufferSize> buf;
    for (std::uint64_t offset = 0; offset < body_->size();) {
        const auto n = body_->read_at(offset, buf);
        if (!n || *n == 0) {
            spdlog::error("event=spool_failed dir={} error=\"{}\"", core_.spool_dir,
                          n ? "the spool file is shorter than the body" : n.error().what);
            ec = n ? make_error_code(boost::system::errc::io_error)
                   : boost::system::error_code(n.error().code, boost::system::system_category());
            co_return;
        }
        co_await asio::async_write(up, asio::buffer(buf.data(), *n),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        offset += *n;
    }
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
    if (cache_stale_ && cache::is_error_status(record_.status)) {
        // The app failed and an expired entry may answer instead (RFC 5861 stale-if-error;
        // nginx's proxy_cache_use_stale http_500 ...): the worker's answer goes unread, with
        // its connection.
        release_worker(false);
        co_return co_await serve_cached(cache_stale_, cache::Status::stale, false)
            ? Outcome::keep_alive
            : Outcome::close;
    }
    const bool upstream_keep_alive = res_parser_->keep_alive();
    const bool bodyless = method_ == http::verb::head || res.result_int() == 204 ||
                          res.result_int() == 304 || res.result_int() < 200;
    const auto length = res_parser_->content_length();
    const bool whole =
        bodyless || res_parser_->is_done() || (length && *length <= kWholeResponseMax);
    boost::system::error_code client_ec, upstream_ec;

    // A small response: read it whole, then header and body go out in one write. Its body is
    // most often in the buffer already, with the header.
    char* body = nullptr;
    std::size_t body_size = 0;
    if (whole && !res_parser_->is_done()) {
        body_size = static_cast<std::size_t>(length.value_or(0));
        body = s_.whole_body(body_size);
        res.body().data = body;
        res.body().size = body_size;
        res_parser_->eager(true);
        const auto done = [](const Response& p) { return p.is_done(); };
        if (!exchange_detail::parse_buffered(*res_parser_, conn_->buffer, upstream_ec, done) &&
            !upstream_ec) {
            s_.upstream_deadline_.arm(cfg_.request_timeout);
            while (!res_parser_->is_done() && !upstream_ec) {
                co_await http::async_read(conn_->stream, conn_->buffer, *res_parser_,
                                          asio::redirect_error(asio::use_awaitable, upstream_ec));
                if (upstream_ec == http::error::need_buffer) upstream_ec = {};
            }
            s_.upstream_deadline_.settle(upstream_ec);
        }
        if (upstream_ec) {
            s_.release_whole_body();
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

    // No retry from here on: a buffered body is not needed again, and its spool bytes go back
    // to server.spool_max_size now, not after a long response has been relayed.
    body_.reset();
    strip_hop_by_hop(res);
    if (cache_status_)
        cache_response_header(res, length ? std::optional<std::uint64_t>(*length) : std::nullopt);
    // A response the micro-cache stores keeps the worker's own header and body (the identity
    // representation): each hit is compressed for its own client, as this one is below.
    std::optional<http::fields> stored_fields;
    if (cache_storing_) stored_fields.emplace(static_cast<const http::fields&>(res));
    // [compression] (compression_relay.hpp): the coding of this response, its header set.
    std::unique_ptr<Encoder> encoder = start_compression(
        cfg_.compression, core_.tuned_compression_level(), core_.compression, parser_.get(), res,
        method_ == http::verb::head, length ? std::optional<std::uint64_t>(*length) : std::nullopt);
    if (!bodyless && (!length || encoder) && !res_parser_->is_done()) {
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
        // Stored before the client is written to: waiters on this fill are answered sooner.
        if (cache_storing_) cache_finish(*stored_fields, std::string(body ? body : "", body_size));
        res.body().data = body;
        res.body().size = body_size;
        res.body().more = false;
        std::string compressed;
        if (encoder) {
            if (!co_await compress_whole(*encoder, {body, body_size}, compressed,
                                         s_.client_.get_executor()))
                client_ec = make_error_code(boost::system::errc::io_error);
            res.body().data = compressed.data();
            res.body().size = compressed.size();
            res.content_length(compressed.size());
        }
        exchange_detail::serialize(res, s_.out_, client_ec);
        s_.release_whole_body();
        if (!client_ec) {
            // At once when the socket takes it, as it does but for a client that stopped reading.
            bytes_sent_ += co_await exchange_detail::write_all(s_.client_, asio::buffer(s_.out_),
                                                               s_.client_deadline_,
                                                               cfg_.request_timeout, client_ec);
        }
        s_.release_out();
    } else {
        co_await relay_streamed(encoder.get(), stored_fields ? &*stored_fields : nullptr,
                                upstream_ec, client_ec);
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
boost::asio::awaitable<void> Session<Client, Connector>::Exchange::relay_streamed(
    Encoder* encoder, const exchange_detail::http::fields* stored_fields,
    boost::system::error_code& upstream_ec, boost::system::error_code& client_ec) {
    namespace asio = exchange_detail::asio;
    namespace http = exchange_detail::http;
    http::response_serializer<http::buffer_body> sr{res_parser_->get()};
    s_.client_deadline_.arm(cfg_.request_timeout);
    bytes_sent_ += co_await http::async_write_header(
        s_.client_, sr, asio::redirect_error(asio::use_awaitable, client_ec));
    s_.client_deadline_.settle(client_ec);
    std::optional<exchange_detail::Tee> tee;
    if (stored_fields) tee.emplace(exchange_detail::Tee{{}, cfg_.cache.max_entry_size_bytes});
    if (!client_ec && encoder) {
        co_await relay_compressed(conn_->stream, s_.upstream_deadline_, conn_->buffer, *res_parser_,
                                  s_.client_, s_.client_deadline_, sr, cfg_.request_timeout,
                                  cfg_.request_timeout, *encoder, upstream_ec, client_ec,
                                  &bytes_sent_, tee ? &*tee : nullptr);
    } else if (!client_ec) {
        co_await exchange_detail::relay_body(
            conn_->stream, s_.upstream_deadline_, conn_->buffer, *res_parser_, s_.client_,
            s_.client_deadline_, sr, cfg_.request_timeout, cfg_.request_timeout, upstream_ec,
            client_ec, tee ? &*tee : nullptr, &bytes_sent_);
    }
    if (tee && !tee->overflow && !upstream_ec && !client_ec && res_parser_->is_done())
        cache_finish(*stored_fields, std::move(tee->data));
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
            // A buffered body is still here to send again.
            return (!has_body_ || body_) && is_retryable_method(method_);
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
    if (const auto started = slot_.ahead() ? slot_.ahead()->started_at() : std::nullopt) {
        // It waited in the worker's backlog until a thread freed up: queued until then.
        service_start_ = std::max(service_start_, *started);
        record_.dispatched = std::max(record_.dispatched, *started);
    }
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
    if (cache_stale_ && stale_answers(fault.failure))
        co_return co_await serve_cached(cache_stale_, cache::Status::stale, false);
    const Refusal refusal = refusal_for(fault.failure, fault.ec, cfg_);
    if (!refusal.answers()) {
        record_now(0);
        co_return false;
    }
    // A body still in the socket cannot be skipped safely: close after answering.
    const bool keep = keep_alive_ && !body_unread && !core_.shutting_down;
    auto res = front_error(refusal.status, version_, refusal.message, keep);
    if (retry_after_s_ != 0) res.set(http::field::retry_after, std::to_string(retry_after_s_));
    if (cache_status_) {
        res.set(cache::kStatusHeader, cache::to_string(*cache_status_));
        count_cache(*cache_status_);
    }
    // A response to HEAD has no content (RFC 9110 §9.3.2): the client reads none, so a body sent
    // on a kept-alive connection would be read as the start of the next response. The
    // Content-Length stays, as for a GET.
    if (method_ == http::verb::head) res.body().clear();
    boost::system::error_code ec;
    s_.client_deadline_.arm(cfg_.request_timeout);
    bytes_sent_ +=
        co_await http::async_write(s_.client_, res, asio::redirect_error(asio::use_awaitable, ec));
    s_.client_deadline_.settle(ec);
    record_now(ec ? 0 : static_cast<int>(res.result_int()));
    co_return keep && !ec;
}

template <class Client, class Connector>
boost::asio::awaitable<bool> Session<Client, Connector>::Exchange::serve_static() {
    boost::system::error_code ec;
    auto reply =
        answer_static(*static_, parser_.get().base(), has_body_, keep_alive_ && !has_body_);
    const bool keep = reply.head.keep_alive();
    const int status = reply.status();
    std::uint64_t sent = 0;
    co_await send_static(s_.client_, s_.client_deadline_, cfg_.request_timeout, reply, sent, ec);
    bytes_sent_ += sent;
    core_.static_counters.count(status, sent);
    record_now(ec ? 0 : status);
    co_return keep && !ec;
}

template <class Client, class Connector>
boost::asio::awaitable<bool> Session<Client, Connector>::Exchange::serve_health() {
    namespace asio = exchange_detail::asio;
    namespace http = exchange_detail::http;
    const bool ready = !core_.shutting_down && dispatcher() && dispatcher()->counts().ready > 0;
    // A body would have to be read first: the connection closes after the answer instead.
    const bool keep = keep_alive_ && !has_body_ && ready;
    http::response<http::string_body> res{
        ready ? http::status::ok : http::status::service_unavailable, version_};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.set(http::field::cache_control, "no-store");
    res.body() = ready ? "ok\n" : "unavailable\n";
    res.prepare_payload();
    if (method_ == http::verb::head) res.body().clear();
    res.keep_alive(keep);
    boost::system::error_code ec;
    s_.client_deadline_.arm(cfg_.request_timeout);
    http::response_serializer<http::string_body> sr{res};
    if (method_ == http::verb::head) sr.split(true);
    bytes_sent_ += method_ == http::verb::head
                       ? co_await http::async_write_header(
                             s_.client_, sr, asio::redirect_error(asio::use_awaitable, ec))
                       : co_await http::async_write(s_.client_, sr,
                                                    asio::redirect_error(asio::use_awaitable, ec));
    s_.client_deadline_.settle(ec);
    record_now(ec ? 0 : res.result_int());
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
    if (core_.access_log.enabled()) log_access();
}

template <class Client, class Connector>
void Session<Client, Connector>::Exchange::log_access() {
    namespace http = exchange_detail::http;
    const auto& req = parser_.get();
    AccessEntry e;
    e.time = WallClock::now();
    e.client = clip(client_ ? client_->to_string() : s_.client_address_, kMaxLoggedShort);
    e.method = method_ == http::verb::unknown ? std::string("-")
                                              : clip(req.method_string(), kMaxLoggedShort);
    e.target = clip(req.target(), kMaxLoggedTarget);
    e.version = version_;
    e.status = record_.status;
    e.bytes = bytes_sent_;
    e.referer = clip(req[http::field::referer], kMaxLoggedHeader);
    e.user_agent = clip(req[http::field::user_agent], kMaxLoggedHeader);
    e.worker = worker_id_;
    e.queue_usec = record_.reached_worker ? usec_between(record_.arrived, record_.dispatched) : 0;
    e.service_usec = record_.service_usec;
    e.total_usec = usec_between(record_.arrived, record_.completed);
    e.cache = cache_status_ ? std::string(cache::to_string(*cache_status_)) : std::string("-");
    core_.access_log.submit(std::move(e));
}

template <class Client, class Connector>
void Session<Client, Connector>::Exchange::note_arrival() {
    if (arrival_noted_) return;
    arrival_noted_ = true;
    if (dispatcher()) dispatcher()->note_arrival(record_.arrived);
}

// ---- [cache] ---------------------------------------------------------------------------------

template <class Client, class Connector>
auto Session<Client, Connector>::Exchange::cache_lookup()
    -> boost::asio::awaitable<std::optional<bool>> {
    namespace http = exchange_detail::http;
    auto& req = parser_.get();
    const auto policy = cache::request_policy(req, method_, has_body_);
    if (!policy.cacheable) {
        cache_status_ = cache::Status::bypass;
        co_return std::nullopt;
    }
    cache_credentials_ = policy.credentials;
    cache_may_store_ = policy.store;
    // The X-Forwarded-Proto the worker gets: a trusted proxy's, else the front's own "http".
    cache_primary_ =
        cache::primary_key(req[http::field::host], req.target(), req["X-Forwarded-Proto"]);
    auto found = core_.cache.lookup(cache_primary_, req, policy, Clock::now());
    cache_status_ = found.status;
    if (found.entry)
        co_return co_await serve_cached(std::move(found.entry), cache::Status::hit, true);
    cache_stale_ = std::move(found.stale);
    cache_fill_ = std::move(found.fill);
    if (found.wait) {
        // Another request fills this key: its entry answers this one too (nginx's
        // proxy_cache_lock); without one, this request goes to a worker and stores nothing.
        cache_may_store_ = false;
        auto entry = co_await wait_for_fill(std::move(found.wait));
        if (entry && MicroCache::matches(*entry, req) && (!cache_credentials_ || entry->is_public))
            co_return co_await serve_cached(std::move(entry), cache::Status::hit, true, true);
    }
    co_return std::nullopt;
}

template <class Client, class Connector>
boost::asio::awaitable<MicroCache::EntryPtr> Session<Client, Connector>::Exchange::wait_for_fill(
    std::shared_ptr<MicroCache::Waiter> waiter) {
    namespace asio = exchange_detail::asio;
    // Woken on this session's own executor, as a grant of the dispatcher wakes its waiter.
    auto timer = std::make_shared<asio::steady_timer>(s_.client_.get_executor());
    timer->expires_after(cfg_.request_timeout);
    const bool wait = core_.cache.arm(
        waiter, [timer] { asio::post(timer->get_executor(), [timer] { timer->cancel(); }); });
    if (wait) {
        boost::system::error_code ec;
        co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return core_.cache.finish_wait(waiter);
}

template <class Client, class Connector>
boost::asio::awaitable<bool> Session<Client, Connector>::Exchange::serve_cached(
    MicroCache::EntryPtr entry, cache::Status status, bool front_only, bool collapsed) {
    namespace asio = exchange_detail::asio;
    namespace http = exchange_detail::http;
    const bool keep = keep_alive_ && !core_.shutting_down;
    const bool head = method_ == http::verb::head;
    // [compression]: the entry holds the identity representation; the client gets it as a
    // worker's response would reach it (compression_relay.hpp: the same rules, Vary and
    // encoders), compressed per its Accept-Encoding.
    std::optional<std::string> fields;  // the header as compression set it
    std::string compressed;
    std::string_view body = entry->body;
    if (cached_compressible(*entry)) {
        http::response_header<> res;
        res.result(static_cast<unsigned>(entry->status));
        cache::parse_fields(entry->fields, res);
        auto encoder = start_compression(cfg_.compression, core_.tuned_compression_level(),
                                         core_.compression, parser_.get(), res, head,
                                         static_cast<std::uint64_t>(entry->body.size()));
        if (!encoder) {
            fields = cache::fields_text(res);
        } else if (co_await compress_whole(*encoder, {entry->body.data(), entry->body.size()},
                                           compressed, s_.client_.get_executor())) {
            res.set(http::field::content_length, std::to_string(compressed.size()));
            fields = cache::fields_text(res);
            body = compressed;
        }
        // (An encoder that failed: the identity body with the entry's own header.)
    }
    s_.out_ = cache::response_head(*entry, status, version_, keep, Clock::now(), fields);
    // A HEAD gets the GET's header, Content-Length included, and no body.
    const std::size_t body_size = head ? 0 : body.size();
    const std::array<asio::const_buffer, 2> message{asio::buffer(s_.out_),
                                                    asio::buffer(body.data(), body_size)};
    boost::system::error_code ec;
    bytes_sent_ += co_await exchange_detail::write_all(s_.client_, message, s_.client_deadline_,
                                                       cfg_.request_timeout, ec);
    s_.release_out();
    cache_status_ = status;
    count_cache(status, collapsed);
    // A hit is the front's own answer: not an arrival, no latency the controller sizes from.
    if (front_only) record_.front_only = true;
    record_now(ec ? 0 : entry->status);
    co_return keep && !ec;
}

template <class Client, class Connector>
bool Session<Client, Connector>::Exchange::cached_compressible(
    const MicroCache::Entry& entry) const {
    // plan_compression's rules over the entry's own fields, without building a header: only a
    // response they let vary is parsed and handed to start_compression.
    if (!cfg_.compression.enabled) return false;
    const auto type = cache::field_value(entry.fields, "Content-Type");
    const auto coding = cache::field_value(entry.fields, "Content-Encoding");
    const auto cache_control = cache::field_value(entry.fields, "Cache-Control");
    ResponseFacts facts;
    facts.status = entry.status;
    facts.content_length = entry.body.size();
    facts.content_type = type ? std::string_view(*type) : std::string_view{};
    facts.content_encoding = coding ? std::string_view(*coding) : std::string_view{};
    facts.content_range = cache::field_value(entry.fields, "Content-Range").has_value();
    facts.cache_control = cache_control ? std::string_view(*cache_control) : std::string_view{};
    return plan_compression(cfg_.compression, facts, Coding::identity).vary;
}

template <class Client, class Connector>
void Session<Client, Connector>::Exchange::cache_response_header(
    exchange_detail::http::fields& res, std::optional<std::uint64_t> length) {
    namespace http = exchange_detail::http;
    cache_storing_.reset();
    const int status = static_cast<int>(res_parser_->get().result_int());
    if (cache_may_store_ && method_ == http::verb::get) {
        const auto target = parser_.get().target();
        const auto path = target.substr(0, target.find('?'));
        const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
        auto how =
            cache::response_storability(status, res, path, cache_credentials_, cfg_.cache, now_s);
        if (how.store && (!length || *length <= cfg_.cache.max_entry_size_bytes)) {
            cache_storing_ = std::move(how);
        } else if (!how.store && !cache::is_error_status(status)) {
            // The app's answer now is not storable: an older entry of the key goes with it.
            cache_fill_.complete(nullptr, true);
        }
    }
    res.set(cache::kStatusHeader, cache::to_string(*cache_status_));
    count_cache(*cache_status_);
}

template <class Client, class Connector>
void Session<Client, Connector>::Exchange::cache_finish(const exchange_detail::http::fields& res,
                                                        std::string body) {
    if (!cache_storing_) return;
    const cache::Storability how = std::move(*cache_storing_);
    cache_storing_.reset();
    auto entry =
        cache::make_entry(cache::variant_key(cache_primary_, how.vary, parser_.get()),
                          cache_primary_, record_.status, res, std::move(body), how, Clock::now());
    if (cache_fill_) {
        cache_fill_.complete(std::move(entry), false);
    } else {
        core_.cache.store(std::move(entry));
    }
}

template <class Client, class Connector>
void Session<Client, Connector>::Exchange::count_cache(cache::Status status, bool collapsed) {
    if (cache_counted_) return;
    cache_counted_ = true;
    core_.cache.count(status, collapsed);
}

template <class Client, class Connector>
bool Session<Client, Connector>::Exchange::stale_answers(Failure failure) {
    switch (failure) {
        case Failure::worker_unreachable:
        case Failure::worker_failed:
        case Failure::worker_bad_response:
        case Failure::worker_late:
        case Failure::queue_full:
        case Failure::queue_timeout:
            return true;
        default:
            return false;
    }
}

}  // namespace tuner::server
