// The public HTTP front (see front.hpp). One coroutine per client connection; one exchange per
// request: read the header, wait for a worker slot, stream the request to the worker and the
// response back, retry once on another worker when an idempotent request got no answer.
#include "server/front.hpp"

#include <poll.h>

#include <optional>
#include <sstream>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "server/guarded.hpp"
#include "server/http_util.hpp"
#include "server/listener.hpp"

namespace tuner::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
using UpstreamProtocol = asio::generic::stream_protocol;
using UpstreamStream = beast::basic_stream<UpstreamProtocol>;

namespace {

constexpr std::size_t kRelayBufferSize = 16 * 1024;
// Beast keeps a header field in at most 64 KiB (a longer one throws std::length_error), and
// parses chunk extensions and trailers without its header limit: every read buffer is bounded
// so that no field longer than this can ever be collected, and a client that sends an endless
// chunk extension gets an error instead of growing the buffer.
constexpr std::size_t kMaxReadBuffer = 64 * 1024;
// A connection's read buffer that grew (a large header) is given back between requests.
constexpr std::size_t kShrinkBufferAbove = 16 * 1024;
// The worker's response header: 50 Set-Cookie lines must pass.
constexpr std::uint32_t kResponseHeaderLimit = 64 * 1024;
constexpr auto kConnectTimeout = std::chrono::seconds(5);
// A parked upstream connection is reused only within this idle time: app servers close idle
// keep-alive connections on their own timer (gunicorn after 2 s), and a request written just as
// the close arrives fails; only idempotent requests could be retried. A new connection to a Unix
// socket costs microseconds.
constexpr auto kMaxParkedIdle = std::chrono::seconds(1);

std::uint64_t usec_since(Clock::time_point from, Clock::time_point to) {
    return to > from ? static_cast<std::uint64_t>(
                           std::chrono::duration_cast<std::chrono::microseconds>(to - from).count())
                     : 0;
}

// A connection to one worker, parked in the dispatcher between requests. While parked it
// watches its socket: a worker that closes an idle keep-alive connection (gunicorn does after
// its keep-alive timeout) is noticed and the connection dropped before a request could use it.
class UpstreamConnection final : public IdleConnection {
public:
    explicit UpstreamConnection(asio::any_io_executor ex) : stream(ex) {}

    void watch_while_idle(Dispatcher& dispatcher, const BackendPtr& backend) {
        parked_at = Clock::now();
        std::weak_ptr<Backend> weak = backend;
        Dispatcher* d = &dispatcher;
        const UpstreamConnection* self = this;
        stream.socket().async_wait(UpstreamProtocol::socket::wait_read,
                                   [d, weak, self](beast::error_code ec) {
                                       if (ec == asio::error::operation_aborted) return;
                                       if (auto b = weak.lock()) d->drop_idle(b, self);
                                   });
    }

    // Taken for a request: stop watching; false if the peer already closed it, or if it sat
    // parked so long that the worker may be closing it right now (see kMaxParkedIdle).
    bool still_usable() {
        beast::error_code ec;
        stream.socket().cancel(ec);
        if (Clock::now() - parked_at > kMaxParkedIdle) return false;
        pollfd pfd{stream.socket().native_handle(), POLLIN | POLLRDHUP, 0};
        const int n = ::poll(&pfd, 1, 0);
        return n == 0 && buffer.size() == 0;
    }

    UpstreamStream stream;
    beast::flat_buffer buffer{kMaxReadBuffer};
    Clock::time_point parked_at{};
};

// A parked connection to this worker that is still open and fresh, or null (connect anew).
std::unique_ptr<UpstreamConnection> take_parked(Dispatcher& dispatcher, const BackendPtr& backend) {
    while (auto idle = dispatcher.take_idle(backend)) {
        std::unique_ptr<UpstreamConnection> candidate(
            static_cast<UpstreamConnection*>(idle.release()));
        if (candidate->still_usable()) return candidate;
    }
    return nullptr;
}

// Frees the request's slot on its worker, parking the connection for the next request when it
// can serve one (the response was read whole and the worker keeps the connection alive).
void release_slot(Dispatcher& dispatcher, const BackendPtr& backend,
                  std::unique_ptr<UpstreamConnection> conn, bool reusable, bool served) {
    std::unique_ptr<IdleConnection> park;
    if (conn && reusable) {
        conn->watch_while_idle(dispatcher, backend);
        park = std::move(conn);
    }
    dispatcher.release(backend, std::move(park), served);
}

UpstreamProtocol::endpoint upstream_endpoint(const UpstreamAddress& address) {
    if (address.tcp_port) {
        return UpstreamProtocol::endpoint(
            tcp::endpoint(asio::ip::address_v4::loopback(), *address.tcp_port));
    }
    return UpstreamProtocol::endpoint(asio::local::stream_protocol::endpoint(address.unix_path));
}

bool is_timeout(const beast::error_code& ec) {
    return ec == beast::error::timeout || ec == asio::error::timed_out;
}

// Stream the body of the message in parser `p` from `in` to `out` through serializer `sr`,
// whose header is already written (the relay of the Beast documentation, asynchronous).
// in_ec / out_ec tell which side failed.
template <class InStream, class OutStream, bool isRequest>
awaitable<void> relay_body(InStream& in, beast::flat_buffer& in_buffer,
                           http::parser<isRequest, http::buffer_body>& p, OutStream& out,
                           http::serializer<isRequest, http::buffer_body>& sr, Duration in_timeout,
                           Duration out_timeout, beast::error_code& in_ec,
                           beast::error_code& out_ec) {
    std::array<char, kRelayBufferSize> buf;
    do {
        if (!p.is_done()) {
            p.get().body().data = buf.data();
            p.get().body().size = buf.size();
            in.expires_after(in_timeout);
            co_await http::async_read(in, in_buffer, p, asio::redirect_error(use_awaitable, in_ec));
            if (in_ec == http::error::need_buffer) in_ec = {};
            if (in_ec) co_return;
            p.get().body().size = buf.size() - p.get().body().size;
            p.get().body().data = buf.data();
            p.get().body().more = !p.is_done();
        } else {
            p.get().body().data = nullptr;
            p.get().body().size = 0;
            p.get().body().more = false;
        }
        out.expires_after(out_timeout);
        co_await http::async_write(out, sr, asio::redirect_error(use_awaitable, out_ec));
        if (out_ec == http::error::need_buffer) out_ec = {};
        if (out_ec) co_return;
    } while (!p.is_done() || !sr.is_done());
}

}  // namespace

struct Front::Session {
    explicit Session(tcp::socket socket) : stream(std::move(socket)) {}
    beast::tcp_stream stream;
    bool idle = true;  // between requests (shutdown closes idle sessions at once)
};

struct Front::LateAnswer {
    explicit LateAnswer(asio::any_io_executor ex) : timer(ex) {}
    asio::steady_timer timer;
    bool settled = false;   // the worker's response header arrived (or its connection failed)
    bool answered = false;  // the client got 504 from answer_late
};

asio::awaitable<void> Front::answer_late(std::shared_ptr<LateAnswer> late,
                                         std::shared_ptr<Session> session, unsigned version,
                                         Duration request_timeout, RequestRecord record) {
    beast::error_code ec;
    co_await late->timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (late->settled) co_return;
    late->answered = true;
    auto res =
        front_error(http::status::gateway_timeout, version,
                    "worker did not answer within " + format_duration(request_timeout), false);
    session->stream.expires_after(request_timeout);
    co_await http::async_write(session->stream, res, asio::redirect_error(use_awaitable, ec));
    record.completed = Clock::now();
    record.service_usec = usec_since(record.dispatched, record.completed);
    record.status = ec ? 0 : res.result_int();
    dispatcher_.record(record);
    session->stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

struct Front::WaitState {
    explicit WaitState(asio::any_io_executor ex) : timer(ex) {}
    asio::steady_timer timer;
    BackendPtr backend;  // set by the dispatcher (under its lock) when granted
};

Front::Front(asio::io_context& ioc, const ServerConfig& config, Dispatcher& dispatcher,
             FrontHooks hooks)
    : ioc_(ioc),
      config_(std::make_shared<const ServerConfig>(config)),
      dispatcher_(dispatcher),
      hooks_(std::move(hooks)),
      acceptor_(ioc) {}

Front::~Front() {
    beast::error_code ec;
    acceptor_.close(ec);
    stop_threads();
}

std::shared_ptr<const ServerConfig> Front::config() const {
    std::lock_guard lock(config_mutex_);
    return config_;
}

void Front::update_config(const ServerConfig& config) {
    {
        std::lock_guard lock(config_mutex_);
        config_ = std::make_shared<const ServerConfig>(config);
    }
    dispatcher_.set_max_queue(config.max_queue);
}

asio::io_context& Front::next_context() {
    // Called only from the accept loop, on ioc_'s thread.
    const std::size_t n = extra_contexts_.size() + 1;
    const std::size_t i = next_context_++ % n;
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

void Front::start() {
    const unsigned threads = std::max(1u, config()->io_threads);
    for (unsigned i = 1; i < threads; ++i) {
        auto& ctx = *extra_contexts_.emplace_back(std::make_unique<asio::io_context>(1));
        extra_threads_.emplace_back([&ctx, i] {
            auto work = asio::make_work_guard(ctx);
            run_guarded(ctx, "io" + std::to_string(i));
        });
    }
    spawn_guarded(ioc_, accept_loop(), "front_accept");
}

awaitable<void> Front::accept_loop() {
    while (!shutting_down_) {
        beast::error_code ec;
        tcp::socket socket = co_await acceptor_.async_accept(
            next_context(), asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
            // EMFILE and friends: back off briefly instead of spinning.
            spdlog::warn("event=accept_failed error=\"{}\"", ec.message());
            asio::steady_timer t(ioc_, std::chrono::milliseconds(100));
            co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
        }
        socket.set_option(tcp::no_delay(true), ec);
        auto executor = socket.get_executor();
        spawn_guarded(executor, run_session(std::move(socket)), "front_session");
    }
}

void Front::begin_shutdown() {
    shutting_down_ = true;
    asio::post(ioc_, [this] {
        beast::error_code ec;
        acceptor_.close(ec);
    });
    close_idle_sessions();
}

void Front::abort_remaining() {
    aborting_ = true;
    {
        std::lock_guard lock(registry_->mutex);
        // On the thread that runs each: timers and sockets are not shared between threads.
        for (const auto& w : registry_->waits) {
            asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
        }
    }
    close_idle_sessions();
}

void Front::close_idle_sessions() {
    std::lock_guard lock(registry_->mutex);
    for (const auto& s : registry_->sessions) {
        asio::post(s->stream.get_executor(), [s] {
            beast::error_code ec;
            if (s->idle) s->stream.socket().close(ec);
        });
    }
}

awaitable<void> Front::run_session(tcp::socket socket) {
    auto session = std::make_shared<Session>(std::move(socket));
    const auto registry = registry_;
    {
        std::lock_guard lock(registry->mutex);
        registry->sessions.insert(session);
    }
    ++registry->open_connections;
    struct Unregister {
        std::shared_ptr<Registry> registry;
        std::shared_ptr<Session> session;
        ~Unregister() {
            std::lock_guard lock(registry->mutex);
            registry->sessions.erase(session);
            --registry->open_connections;
        }
    } unregister{registry, session};

    beast::error_code ec;
    auto& client = session->stream;
    const auto remote = client.socket().remote_endpoint(ec);
    const std::string client_address = ec ? std::string("unknown") : remote.address().to_string();
    beast::flat_buffer client_buffer(kMaxReadBuffer);
    bool first = true;

    for (;;) {
        session->idle = true;
        if (shutting_down_ && !first) break;
        // This request's settings: a reload replaces them for later requests, not this one.
        const auto cfg_holder = config();
        const ServerConfig& cfg = *cfg_holder;
        // Wait for the next request: header_timeout for the first, keepalive_timeout between.
        if (client_buffer.size() == 0) {
            if (client_buffer.capacity() > kShrinkBufferAbove) client_buffer.shrink_to_fit();
            client.expires_after(first ? cfg.header_timeout : cfg.keepalive_timeout);
            const std::size_t n = co_await client.async_read_some(
                client_buffer.prepare(4096), asio::redirect_error(use_awaitable, ec));
            if (ec) break;  // closed, idle timeout, or shutdown
            client_buffer.commit(n);
        }
        first = false;
        session->idle = false;

        http::request_parser<http::buffer_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(
            std::min<std::uint64_t>(cfg.max_header_size_bytes, kMaxHeaderSizeBytes)));
        parser.body_limit(cfg.max_body_size_bytes);
        client.expires_after(cfg.header_timeout);
        co_await http::async_read_header(client, client_buffer, parser,
                                         asio::redirect_error(use_awaitable, ec));
        if (ec) {
            http::status status = http::status::bad_request;
            std::string message = "malformed request: " + ec.message();
            if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
                status = http::status::request_header_fields_too_large;
                message = "request header larger than " + format_size(cfg.max_header_size_bytes);
            } else if (ec == http::error::body_limit) {  // Content-Length above max_body_size
                status = http::status::payload_too_large;
                message = "request body larger than " + format_size(cfg.max_body_size_bytes);
            } else if (is_timeout(ec)) {
                status = http::status::request_timeout;
                message =
                    "request header not received within " + format_duration(cfg.header_timeout);
            } else if (ec == http::error::end_of_stream || ec == asio::error::eof ||
                       ec == asio::error::connection_reset ||
                       ec == asio::error::operation_aborted) {
                break;
            }
            auto res = front_error(status, 11, message, false);
            RequestRecord refused;
            refused.arrived = refused.dispatched = refused.completed = Clock::now();
            refused.status = static_cast<int>(res.result_int());
            dispatcher_.record(refused);
            client.expires_after(cfg.header_timeout);
            co_await http::async_write(client, res, asio::redirect_error(use_awaitable, ec));
            break;
        }

        ++registry->requests_in_progress;
        struct InProgress {
            std::atomic<std::size_t>& n;
            ~InProgress() { --n; }
        } in_progress{registry->requests_in_progress};

        auto& req = parser.get();
        const unsigned version = req.version();
        const http::verb method = req.method();
        bool keep_alive = req.keep_alive() && !shutting_down_;
        const bool has_body = !parser.is_done();
        RequestRecord record;
        record.arrived = Clock::now();
        record.dispatched = record.arrived;
        dispatcher_.note_arrival(record.arrived);

        // Sends a response made by the front itself and records it. Callers pass the message as
        // a named local, moved: GCC 12 destroys a temporary made in a branch of ?: inside a
        // co_await expression twice (ASan: double free), so no temporary is built in the call.
        auto reply = [&](http::status status, std::string message,
                         bool body_unread) -> awaitable<bool> {
            // A body still in the socket cannot be skipped safely: close after answering.
            const bool keep = keep_alive && !body_unread && !shutting_down_;
            auto res = front_error(status, version, message, keep);
            beast::error_code wec;
            client.expires_after(cfg.request_timeout);
            co_await http::async_write(client, res, asio::redirect_error(use_awaitable, wec));
            record.completed = Clock::now();
            record.status = wec ? 0 : res.result_int();
            dispatcher_.record(record);
            co_return keep && !wec;
        };

        if (parser.content_length() && *parser.content_length() > cfg.max_body_size_bytes) {
            std::string why = "request body larger than " + format_size(cfg.max_body_size_bytes);
            co_await reply(http::status::payload_too_large, std::move(why), true);
            break;
        }

        // What the worker gets: one hop's headers removed, the client's address added, HTTP/1.1.
        const bool expect_continue = beast::iequals(req[http::field::expect], "100-continue");
        req.erase(http::field::expect);
        strip_hop_by_hop(req);
        add_forwarded_for(req, client_address);
        req.version(11);
        if (has_body && !parser.content_length()) req.chunked(true);
        bool sent_continue = false;

        unsigned avoid = 0;
        bool retried = false;
        bool continue_session = false;
        for (;;) {
            // ---- wait for a worker slot ------------------------------------------------------
            auto wait = std::make_shared<WaitState>(client.get_executor());
            Waiter waiter;
            waiter.id = next_waiter_id_++;
            waiter.avoid = avoid;
            waiter.grant = [wait](BackendPtr b) {
                wait->backend = std::move(b);
                asio::post(wait->timer.get_executor(), [wait] { wait->timer.cancel(); });
            };
            BackendPtr backend;
            const auto status = aborting_ ? AcquireStatus::queue_full
                                          : dispatcher_.acquire(std::move(waiter), backend);
            if (status == AcquireStatus::queue_full) {
                if (!aborting_) dispatcher_.note_rejected();
                std::string why = aborting_ ? "tunerd is shutting down"
                                            : "all workers busy and the queue is full";
                continue_session =
                    co_await reply(http::status::service_unavailable, std::move(why), has_body);
                break;
            }
            if (status == AcquireStatus::queued) {
                {
                    std::lock_guard lock(registry->mutex);
                    registry->waits.insert(wait);
                }
                wait->timer.expires_after(cfg.queue_timeout);
                beast::error_code wec;
                co_await wait->timer.async_wait(asio::redirect_error(use_awaitable, wec));
                {
                    std::lock_guard lock(registry->mutex);
                    registry->waits.erase(wait);
                }
                if (!dispatcher_.cancel(waiter.id)) {
                    backend = wait->backend;  // granted (possibly just as the timer fired)
                }
                if (!backend) {
                    record.queue_timeout = !aborting_;
                    std::string why = aborting_ ? "tunerd is shutting down"
                                                : "no worker became free within " +
                                                      format_duration(cfg.queue_timeout);
                    continue_session =
                        co_await reply(http::status::service_unavailable, std::move(why), has_body);
                    break;
                }
            }
            record.dispatched = Clock::now();
            record.reached_worker = true;

            // ---- a connection to that worker ---------------------------------------------------
            std::unique_ptr<UpstreamConnection> conn = take_parked(dispatcher_, backend);
            if (!conn) {
                conn = std::make_unique<UpstreamConnection>(client.get_executor());
                conn->stream.expires_after(kConnectTimeout);
                beast::error_code cec;
                co_await conn->stream.async_connect(upstream_endpoint(backend->address),
                                                    asio::redirect_error(use_awaitable, cec));
                if (cec) {
                    // Nothing was sent: safe to retry any method once.
                    if (hooks_.upstream_failed)
                        hooks_.upstream_failed(backend->id, "connect: " + cec.message());
                    dispatcher_.release(backend, nullptr, false);
                    if (!retried && !aborting_) {
                        retried = true;
                        avoid = backend->id;
                        dispatcher_.note_retry();
                        continue;
                    }
                    std::string why = "worker unreachable: " + cec.message();
                    continue_session =
                        co_await reply(http::status::bad_gateway, std::move(why), has_body);
                    break;
                }
            }

            // ---- send the request --------------------------------------------
            const auto service_start = Clock::now();
            beast::error_code in_ec, out_ec;
            auto& up = conn->stream;
            http::request_serializer<http::buffer_body> req_sr{req};
            if (!has_body) {
                req.body().data = nullptr;
                req.body().size = 0;
                req.body().more = false;
                up.expires_after(cfg.request_timeout);
                co_await http::async_write(up, req_sr, asio::redirect_error(use_awaitable, out_ec));
            } else {
                up.expires_after(cfg.request_timeout);
                co_await http::async_write_header(up, req_sr,
                                                  asio::redirect_error(use_awaitable, out_ec));
                if (!out_ec && expect_continue && !sent_continue) {
                    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
                    client.expires_after(cfg.header_timeout);
                    co_await asio::async_write(client,
                                               asio::buffer(kContinue.data(), kContinue.size()),
                                               asio::redirect_error(use_awaitable, in_ec));
                    sent_continue = true;
                }
                if (!out_ec && !in_ec) {
                    co_await relay_body(client, client_buffer, parser, up, req_sr,
                                        cfg.header_timeout, cfg.request_timeout, in_ec, out_ec);
                }
            }
            if (in_ec) {
                // The client failed while sending its body: the worker's connection is mid-message.
                dispatcher_.release(backend, nullptr, false);
                if (in_ec == http::error::body_limit) {
                    std::string why =
                        "request body larger than " + format_size(cfg.max_body_size_bytes);
                    co_await reply(http::status::payload_too_large, std::move(why), true);
                } else if (in_ec != asio::error::eof && in_ec != http::error::end_of_stream &&
                           in_ec != asio::error::connection_reset && !is_timeout(in_ec)) {
                    std::string why = "malformed request body: " + in_ec.message();
                    co_await reply(http::status::bad_request, std::move(why), true);
                } else {
                    record.completed = Clock::now();
                    record.status = 0;
                    dispatcher_.record(record);
                }
                break;
            }

            // ---- read the response header ------------------------------------
            std::optional<http::response_parser<http::buffer_body>> res_parser;
            auto fresh_parser = [&] {
                res_parser.emplace();
                // Beast 1.74 compares against an empty optional wrongly: "unlimited" must be a
                // number.
                res_parser->body_limit(std::numeric_limits<std::uint64_t>::max());
                res_parser->header_limit(kResponseHeaderLimit);
                if (method == http::verb::head) res_parser->skip(true);
            };
            fresh_parser();
            auto late = std::make_shared<LateAnswer>(client.get_executor());
            if (!out_ec) {
                // After request_timeout the client gets 504 (from answer_late); the worker keeps
                // its slot until it answers, because it is still busy with this request, or until a
                // second request_timeout passes and it counts as stuck.
                late->timer.expires_after(cfg.request_timeout);
                spawn_guarded(client.get_executor(),
                              answer_late(late, session, version, cfg.request_timeout, record),
                              "front_late_answer");
                up.expires_after(cfg.request_timeout * 2);
                for (;;) {
                    co_await http::async_read_header(up, conn->buffer, *res_parser,
                                                     asio::redirect_error(use_awaitable, out_ec));
                    // Interim 1xx responses are not for the client (we never forward Expect or
                    // Upgrade): read on to the final response.
                    if (out_ec || res_parser->get().result_int() >= 200) break;
                    fresh_parser();
                }
                late->settled = true;
                late->timer.cancel();
            }
            if (late->answered) {
                // The client already has its 504. Let the worker finish, then give its slot back.
                bool reusable = false;
                if (!out_ec) {
                    std::array<char, kRelayBufferSize> scratch;
                    while (!res_parser->is_done() && !out_ec) {
                        res_parser->get().body().data = scratch.data();
                        res_parser->get().body().size = scratch.size();
                        co_await http::async_read(up, conn->buffer, *res_parser,
                                                  asio::redirect_error(use_awaitable, out_ec));
                        if (out_ec == http::error::need_buffer) out_ec = {};
                    }
                    reusable = !out_ec && res_parser->keep_alive();
                }
                release_slot(dispatcher_, backend, std::move(conn), reusable, !out_ec);
                if (out_ec && hooks_.worker_stuck) {
                    hooks_.worker_stuck(backend->id, "no response within " +
                                                         format_duration(cfg.request_timeout * 2) +
                                                         ": " + out_ec.message());
                }
                continue_session = false;
                break;
            }
            if (out_ec) {
                // A timeout here means the client is gone too (answer_late could not write).
                if (is_timeout(out_ec)) {
                    dispatcher_.release(backend, nullptr, false);
                    break;
                }
                // The pool first: a dead worker must leave dispatch before its slot is freed,
                // or the slot goes to the next queued request and the retry may follow it.
                if (hooks_.upstream_failed) hooks_.upstream_failed(backend->id, out_ec.message());
                dispatcher_.release(backend, nullptr, false);
                // No response byte came back: an idempotent request without a body is safe to
                // send again, once, to another worker. Once the worker answered anything (a
                // header too large, a malformed one) it has run the request: no second time.
                const bool answered_something = res_parser->got_some() || conn->buffer.size() > 0;
                if (!retried && !has_body && is_retryable_method(method) && !aborting_ &&
                    !answered_something) {
                    retried = true;
                    avoid = backend->id;
                    dispatcher_.note_retry();
                    continue;
                }
                std::string why = "worker failed before answering: " + out_ec.message();
                continue_session = co_await reply(http::status::bad_gateway, std::move(why), false);
                break;
            }

            // ---- stream the response back ------------------------------------
            auto& res = res_parser->get();
            record.status = res.result_int();
            const bool upstream_keep_alive = res_parser->keep_alive();
            strip_hop_by_hop(res);
            const bool bodyless = method == http::verb::head || res.result_int() == 204 ||
                                  res.result_int() == 304 || res.result_int() < 200;
            if (!bodyless && !res_parser->content_length() && !res_parser->is_done()) {
                // The worker's framing (chunked or close-delimited) is per hop: re-frame.
                if (version >= 11) {
                    res.chunked(true);
                } else {
                    keep_alive = false;
                }
            }
            if (shutting_down_) keep_alive = false;
            res.keep_alive(keep_alive);
            res.version(version);
            http::response_serializer<http::buffer_body> res_sr{res};
            beast::error_code client_ec, upstream_ec;
            client.expires_after(cfg.request_timeout);
            co_await http::async_write_header(client, res_sr,
                                              asio::redirect_error(use_awaitable, client_ec));
            if (!client_ec) {
                co_await relay_body(up, conn->buffer, *res_parser, client, res_sr,
                                    cfg.request_timeout, cfg.request_timeout, upstream_ec,
                                    client_ec);
            }
            const auto service_end = Clock::now();
            record.service_usec = usec_since(service_start, service_end);
            const bool upstream_clean = !upstream_ec && res_parser->is_done();
            const bool reusable = upstream_clean && upstream_keep_alive && !client_ec;
            if (upstream_ec) {
                // The headers are with the client already: nothing to retry, the client sees
                // its connection close. Said, so a worker dying mid-response is not silent.
                spdlog::warn(
                    "event=response_cut worker={} status={} error=\"{}\" (the worker failed "
                    "after the response began; the client's connection is closed)",
                    backend->id, record.status, upstream_ec.message());
                if (hooks_.upstream_failed)
                    hooks_.upstream_failed(backend->id, upstream_ec.message());
            }
            release_slot(dispatcher_, backend, std::move(conn), reusable, true);
            record.completed = Clock::now();
            if (client_ec) record.status = 0;
            dispatcher_.record(record);
            // A response cut short cannot be repaired: the client sees the connection close.
            continue_session = !client_ec && upstream_clean && keep_alive;
            break;
        }
        if (!continue_session) break;
    }
    session->idle = true;
    // Lingering close: after our FIN, read and drop what the client still sends (a body we
    // refused, say) for a moment, so closing does not reset the connection before the client
    // has read our answer.
    client.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (!ec) {
        std::array<char, 4096> discard;
        std::size_t drained = 0;
        client.expires_after(std::chrono::seconds(2));
        while (drained < 1024 * 1024) {
            const std::size_t n = co_await client.async_read_some(
                asio::buffer(discard), asio::redirect_error(use_awaitable, ec));
            if (ec) break;
            drained += n;
        }
    }
    client.close();
}

}  // namespace tuner::server
