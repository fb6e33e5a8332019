// The front's session (server/exchange.hpp) run to completion over in-memory streams, for the
// front fuzz targets: clients whose bytes are all there and whose sending side is closed, and
// scripted workers. The run needs no timer: every wait ends because a peer sent or closed; when
// nothing can move any more, the workers' connections are closed (a worker dying); a session
// that still does not finish waits for a timeout it should not need, which is reported.
//
// After the run, what must hold for any input:
// * no exception left a session;
// * every worker slot came back, nothing waits in the queue, no request or connection counted;
// * what each client received parses as HTTP responses to its requests, in order, with no stray
//   bytes (a response to HEAD has no body), and no more final responses than requests;
// * what the workers received parses as HTTP requests, no more of them than the client sent
//   (plus retries): a body is never read as a request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "server/exchange.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tests/server/test_stream_ops.hpp"

namespace tuner::fuzz {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using TestStream = beast::test::stream;

// A request as the client sent it, or as a worker received it.
struct RequestLine {
    std::string method;
    std::string target;
};

// The scripted workers: every connection the front opens gets one, which reads requests and
// answers each with answer(n, request) (n counts requests over all connections).
struct Workers {
    std::function<std::string(std::size_t n, const RequestLine& request)> answer;
    bool close_after_answer = false;  // close the connection after each answer
    unsigned refuse_connects = 0;     // the first connects fail (ECONNREFUSED)

    unsigned connects = 0;
    std::vector<RequestLine> seen;
    std::string malformed;  // how the first unparsable forwarded request failed
    // The workers' ends, to close them when the run is stuck. Weak: as in exchange_test, a
    // worker's stream goes when it returns, and the front's writes to it then fail.
    std::vector<std::weak_ptr<TestStream>> ends;
};

inline bool is_end_of_input(const beast::error_code& ec) {
    return ec == http::error::end_of_stream || ec == http::error::partial_message ||
           ec == asio::error::eof || ec == asio::error::connection_reset ||
           ec == asio::error::operation_aborted;
}

inline asio::awaitable<void> play_worker(std::shared_ptr<TestStream> end,
                                         std::shared_ptr<Workers> workers) {
    beast::flat_buffer buffer;
    for (;;) {
        beast::error_code ec;
        http::request_parser<http::string_body> parser;
        parser.header_limit(1024 * 1024);
        parser.body_limit(std::numeric_limits<std::uint64_t>::max());
        co_await http::async_read(*end, buffer, parser,
                                  asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            // A connection abandoned mid-request (the client failed) ends in a partial message;
            // anything else means the front sent bytes that are not HTTP.
            if (!is_end_of_input(ec) && workers->malformed.empty())
                workers->malformed = ec.message();
            co_return;
        }
        const auto& req = parser.get();
        workers->seen.push_back({std::string(req.method_string()), std::string(req.target())});
        const std::string raw = workers->answer(workers->seen.size() - 1, workers->seen.back());
        co_await asio::async_write(*end, asio::buffer(raw),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec || workers->close_after_answer) {
            end->close();
            co_return;
        }
    }
}

struct FuzzConnector {
    using Stream = TestStream;
    std::shared_ptr<Workers> workers;
    std::size_t read_size = 0;  // the front reads at most this much of a worker at a time (0: any)

    static Stream make(const asio::io_context::executor_type& ex) { return Stream(ex.context()); }
    static Stream make(const asio::any_io_executor& ex) {
        return Stream(static_cast<asio::io_context&>(asio::query(ex, asio::execution::context)));
    }

    asio::awaitable<beast::error_code> connect(Stream& stream, const server::Backend&) const {
        if (workers->connects++ < workers->refuse_connects)
            co_return asio::error::connection_refused;
        auto end = std::make_shared<TestStream>(stream.get_executor().context());
        stream.connect(*end);
        if (read_size > 0) stream.read_size(read_size);
        workers->ends.push_back(end);
        asio::co_spawn(stream.get_executor(), play_worker(end, workers), asio::detached);
        co_return beast::error_code{};
    }
};

using FuzzSession = server::Session<TestStream, FuzzConnector>;

// Feeds `bytes` to a fresh parser `p` (body_limit and header_limit set by the caller) until the
// message is done; returns the bytes it took, or npos when they end first or do not parse.
template <bool isRequest, class Body>
std::size_t parse_one(http::parser<isRequest, Body>& p, std::string_view bytes,
                      beast::error_code& ec) {
    p.eager(true);
    std::size_t used = 0;
    while (!p.is_done() && used < bytes.size()) {
        const std::size_t n = p.put(asio::buffer(bytes.data() + used, bytes.size() - used), ec);
        used += n;
        if (ec == http::error::need_more) {
            ec = {};
            if (n == 0) break;
            continue;
        }
        if (ec) return std::string_view::npos;
        if (n == 0) break;
    }
    if (!p.is_done() && p.need_eof() && used == bytes.size()) {
        p.put_eof(ec);
        if (ec) return std::string_view::npos;
    }
    return p.is_done() ? used : std::string_view::npos;
}

// The requests in `bytes` as the front reads them (the same Beast parser and limits), up to the
// first that is incomplete or malformed; that one counts too when its header was read (the
// front answers it: 413, 400).
inline std::vector<RequestLine> client_requests(std::string_view bytes,
                                                const ServerConfig& config) {
    std::vector<RequestLine> out;
    while (!bytes.empty()) {
        http::request_parser<http::string_body> p;
        p.header_limit(static_cast<std::uint32_t>(
            std::min<std::uint64_t>(config.max_header_size_bytes, kMaxHeaderSizeBytes)));
        p.body_limit(config.max_body_size_bytes);
        beast::error_code ec;
        const std::size_t used = parse_one(p, bytes, ec);
        if (p.is_header_done()) {
            out.push_back({std::string(p.get().method_string()), std::string(p.get().target())});
        }
        if (used == std::string_view::npos) break;
        bytes.remove_prefix(used);
    }
    return out;
}

// `all` (what a client received) is whole responses to `requests`, in order; interim 1xx responses
// may come between them. `may_end_cut`: the last response may stop early (the worker failed
// after it began).
inline void check_responses(std::string_view all, const std::vector<RequestLine>& requests,
                            bool may_end_cut) {
    std::size_t finals = 0;
    std::string_view received = all;
    while (!received.empty()) {
        http::response_parser<http::string_body> p;
        p.header_limit(std::numeric_limits<std::uint32_t>::max());
        p.body_limit(std::numeric_limits<std::uint64_t>::max());
        if (finals < requests.size() && requests[finals].method == "HEAD") p.skip(true);
        beast::error_code ec;
        const std::size_t used = parse_one(p, received, ec);
        if (used == std::string_view::npos) {
            FUZZ_CHECK(may_end_cut && !ec && p.is_header_done(),
                       "the client received bytes that are not a whole HTTP response (" +
                           ec.message() + ") after " + std::to_string(finals) +
                           " responses, at:\n" + std::string(received.substr(0, 400)) +
                           "\n---- all it received:\n" + std::string(all.substr(0, 2000)));
            return;
        }
        received.remove_prefix(used);
        if (p.get().result_int() >= 200) ++finals;
        FUZZ_CHECK(finals <= requests.size() + 1,
                   "more responses than requests: " + std::to_string(finals) + " for " +
                       std::to_string(requests.size()));
    }
}

struct Client {
    std::string bytes;
    std::size_t read_size = 0;  // the front reads at most this much at a time (0: any)
};

struct FrontRun {
    ServerConfig config;
    unsigned capacity = 1;               // the worker's threads
    std::size_t upstream_read_size = 0;  // as Client::read_size, for the worker connections
    std::shared_ptr<Workers> workers = std::make_shared<Workers>();
};

struct FrontResult {
    std::vector<std::string> received;  // per client
    unsigned upstream_failures = 0;     // FrontHooks::upstream_failed calls
    std::uint64_t retries = 0;
};

// Runs one session per client to its end and checks the invariants above.
inline FrontResult run_front(const FrontRun& run, const std::vector<Client>& clients,
                             bool may_end_cut = false) {
    static const bool quiet = [] {
        spdlog::set_level(spdlog::level::off);  // the front's warnings: one per input is noise
        return true;
    }();
    (void)quiet;
    FrontResult result;
    asio::io_context ioc;  // first: destroyed last, after everything that holds a stream
    // A short statistics window: its ring of per-second buckets is allocated per run.
    server::Dispatcher dispatcher{16, std::chrono::seconds(1)};
    auto backend = std::make_shared<server::Backend>();
    backend->id = 1;
    backend->capacity = run.capacity;
    backend->address.unix_path = "fuzz";
    dispatcher.add(backend);
    server::FrontHooks hooks;
    hooks.upstream_failed = [&](unsigned, const std::string&) { ++result.upstream_failures; };
    hooks.worker_stuck = [&](unsigned, const std::string& why) {
        FUZZ_CHECK(false, "a worker was reported stuck without any timeout passing: " + why);
    };
    auto core = std::make_shared<server::FrontCore>(
        dispatcher, run.config, hooks, std::filesystem::temp_directory_path().string());
    auto watchdog = std::make_shared<server::Watchdog>(ioc.get_executor());

    std::vector<std::shared_ptr<TestStream>> ends;
    std::size_t finished = 0;
    std::exception_ptr escaped;
    for (const Client& c : clients) {
        auto end = std::make_shared<TestStream>(ioc);
        TestStream server_side(ioc);
        end->connect(server_side);
        if (c.read_size > 0) server_side.read_size(c.read_size);
        auto session = std::make_shared<FuzzSession>(
            core, watchdog, std::move(server_side),
            FuzzConnector{run.workers, run.upstream_read_size}, "192.0.2.7");
        asio::co_spawn(ioc, FuzzSession::run(session), [&](std::exception_ptr e) {
            ++finished;
            if (e && !escaped) escaped = e;
        });
        if (!c.bytes.empty()) asio::write(*end, asio::buffer(c.bytes));
        end->close();  // all sent: the front reads the bytes, then the end of the stream
        ends.push_back(end);
    }

    // Runs what is ready; false when nothing is and some session has not finished.
    const auto progress = [&] {
        for (int round = 0; round < 1'000'000 && finished < clients.size(); ++round) {
            if (ioc.stopped()) ioc.restart();
            if (ioc.poll() == 0) return false;
        }
        return finished == clients.size();
    };
    // Stuck: the workers die (every connection the front opened so far closes), until nothing
    // is left to close.
    for (std::size_t closed = 0; !progress() && closed < run.workers->ends.size();) {
        for (; closed < run.workers->ends.size(); ++closed) {
            if (auto end = run.workers->ends[closed].lock()) end->close();
        }
    }
    if (escaped) {
        try {
            std::rethrow_exception(escaped);
        } catch (const std::exception& e) {
            FUZZ_CHECK(false, std::string("an exception left the session: ") + e.what());
        } catch (...) {
            FUZZ_CHECK(false, "an exception left the session");
        }
    }
    FUZZ_CHECK(finished == clients.size(),
               "a session waits for a timeout although its client and workers are gone");
    const auto counts = dispatcher.counts();
    FUZZ_CHECK(counts.inflight == 0, "a worker slot was not given back");
    FUZZ_CHECK(counts.queued == 0, "a request still waits in the queue");
    FUZZ_CHECK(core->requests_in_progress == 0, "a request is still counted in progress");
    FUZZ_CHECK(core->open_connections == 0, "a connection is still counted open");
    FUZZ_CHECK(run.workers->malformed.empty(),
               "a worker received bytes that are not HTTP: " + run.workers->malformed);

    result.retries = dispatcher.cumulative().retries;
    result.received.reserve(clients.size());
    std::size_t requests_sent = 0;
    std::vector<RequestLine> only_client;
    for (std::size_t i = 0; i < clients.size(); ++i) {
        const auto requests = client_requests(clients[i].bytes, run.config);
        requests_sent += requests.size();
        if (clients.size() == 1) only_client = requests;
        result.received.emplace_back(ends[i]->str());
        check_responses(result.received.back(), requests,
                        may_end_cut && result.upstream_failures > 0);
    }
    const auto& seen = run.workers->seen;
    FUZZ_CHECK(seen.size() <= requests_sent + result.retries,
               "the workers got " + std::to_string(seen.size()) + " requests of " +
                   std::to_string(requests_sent) + " sent");
    if (clients.size() == 1 && result.retries == 0) {
        // Each request the workers got is one the client sent, in the client's order (some
        // may be missing: refused, or lost with a worker).
        std::size_t next = 0;
        for (const auto& got : seen) {
            while (next < only_client.size() && (only_client[next].method != got.method ||
                                                 only_client[next].target != got.target)) {
                ++next;
            }
            FUZZ_CHECK(next < only_client.size(), "a worker got " + got.method + " " + got.target +
                                                      ", which the client did not send there");
            ++next;
        }
    }
    // As the Front does when it goes: frames the io_context destroys find no dispatcher.
    core->dispatcher = nullptr;
    return result;
}

// A ServerConfig whose timeouts never pass during a run (the run needs none).
inline ServerConfig untimed_config() {
    ServerConfig config;
    config.header_timeout = std::chrono::seconds(60);
    config.request_timeout = std::chrono::seconds(60);
    config.queue_timeout = std::chrono::seconds(60);
    config.keepalive_timeout = std::chrono::seconds(60);
    return config;
}

}  // namespace tuner::fuzz
