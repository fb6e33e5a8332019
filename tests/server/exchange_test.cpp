// The front's session steps (server/exchange.hpp) over beast::test::stream: a scripted client on
// one side, scripted workers on the other, failures injected at every step. Each test checks
// what the client received and that the worker slot came back (nothing in flight at the end).
#include "server/exchange.hpp"

#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/demo/demo_worker.hpp"
#include "tests/server/test_stream_ops.hpp"
#include "tests/support/decode.hpp"

namespace tuner::server {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using TestStream = beast::test::stream;
using namespace std::chrono_literals;

// What a scripted worker does with one connection.
enum class Worker {
    answer_200,          // reads the request, answers 200 "hello" (keep-alive)
    answer_then_close,   // answers 200 (keep-alive), then closes the idle connection
    close_at_once,       // closes without reading or answering (reset before the first byte)
    close_after_header,  // reads the request, sends a header promising 10 bytes, sends 3, closes
    big_then_close,      // reads the request, promises 200 KiB, sends 1 KiB, closes
    answer_late,         // reads the request, answers 200 after late_after
    never_answers,       // reads the request and keeps the connection open, silent
    refuse_connect,      // the connect fails (ECONNREFUSED)
    empty_chunked,       // reads the request, answers 200 with an empty chunked body (keep-alive)
    cacheable,           // answers 200 "hello" with Cache-Control: max-age=60 (keep-alive)
    cacheable_big,       // answers 200 with 100 KiB, chunked, Cache-Control: max-age=60
    server_error,        // answers 500 (keep-alive)
    custom,              // reads the request, answers Script::custom_response (keep-alive)
};

struct Script {
    std::deque<Worker> workers;  // one per connection, in order; answer_200 when empty
    Duration late_after = 400ms;
    int connects = 0;
    int requests_seen = 0;
    std::vector<std::string> bodies_seen;
    std::vector<std::string> headers_seen;
    std::vector<std::string> read_errors;  // requests that did not parse (not a closed connection)
    std::string custom_response;           // Worker::custom's answer, raw
    std::size_t upstream_write_size = 0;   // the most the front's worker connections take per write
};

asio::awaitable<void> play_worker(std::shared_ptr<TestStream> end, Worker what,
                                  std::shared_ptr<Script> script) {
    beast::flat_buffer buffer;
    beast::error_code ec;
    if (what == Worker::close_at_once) {
        end->close();
        co_return;
    }
    for (;;) {
        http::request<http::string_body> req;
        co_await http::async_read(*end, buffer, req, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
            ec == asio::error::eof || ec == asio::error::operation_aborted)
            co_return;
        if (ec) {
            script->read_errors.push_back(ec.message());
            co_return;
        }
        ++script->requests_seen;
        script->bodies_seen.push_back(req.body());
        std::ostringstream header;
        header << req.base();
        script->headers_seen.push_back(header.str());
        if (what == Worker::never_answers) {
            asio::steady_timer forever(end->get_executor(), 1h);
            co_await forever.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            co_return;
        }
        if (what == Worker::answer_late) {
            asio::steady_timer t(end->get_executor(), script->late_after);
            co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        std::string raw;
        if (what == Worker::close_after_header) {
            raw = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        } else if (what == Worker::empty_chunked) {
            raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        } else if (what == Worker::cacheable) {
            raw = "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nhello";
        } else if (what == Worker::cacheable_big) {
            raw =
                "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: "
                "chunked\r\n\r\n";
            for (int i = 0; i < 100; ++i)
                raw += "400\r\n" + std::string(1024, 'a' + i % 26) + "\r\n";
            raw += "0\r\n\r\n";
        } else if (what == Worker::server_error) {
            raw = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail";
        } else if (what == Worker::custom) {
            raw = script->custom_response;
        } else if (what == Worker::big_then_close) {
            raw = "HTTP/1.1 200 OK\r\nContent-Length: 204800\r\n\r\n" + std::string(1024, 'x');
        } else {
            raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        }
        co_await asio::async_write(*end, asio::buffer(raw),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (what == Worker::close_after_header || what == Worker::big_then_close ||
            what == Worker::answer_then_close) {
            end->close();
            co_return;
        }
        if (ec) co_return;
    }
}

// Connects each upstream stream to a scripted worker.
struct ScriptedConnector {
    using Stream = TestStream;
    std::shared_ptr<Script> script;

    static Stream make(const asio::io_context::executor_type& ex) { return Stream(ex.context()); }
    static Stream make(const asio::any_io_executor& ex) {
        return Stream(static_cast<asio::io_context&>(asio::query(ex, asio::execution::context)));
    }

    asio::awaitable<beast::error_code> connect(Stream& stream, const Backend&) const {
        ++script->connects;
        Worker what = Worker::answer_200;
        if (!script->workers.empty()) {
            what = script->workers.front();
            script->workers.pop_front();
        }
        if (what == Worker::refuse_connect) co_return asio::error::connection_refused;
        auto end = std::make_shared<TestStream>(stream.get_executor().context());
        stream.connect(*end);
        if (script->upstream_write_size) stream.write_size(script->upstream_write_size);
        asio::co_spawn(stream.get_executor(), play_worker(end, what, script), asio::detached);
        co_return beast::error_code{};
    }
};

using TestSession = Session<TestStream, ScriptedConnector>;

class ExchangeTest : public ::testing::Test {
protected:
    ExchangeTest() {
        config.header_timeout = 300ms;
        config.request_timeout = 300ms;
        config.queue_timeout = 300ms;
        config.keepalive_timeout = 2s;
        config.max_body_size_bytes = 1000;
        config.max_header_size_bytes = 2048;
        config.min_body_rate_bytes = 0;
        backend->id = 1;
        backend->capacity = 1;
        backend->address.unix_path = "unused";
        dispatcher.add(backend);
        hooks.upstream_failed = [this](unsigned id, const std::string& e) {
            failed.push_back(std::to_string(id) + ": " + e);
        };
        hooks.worker_stuck = [this](unsigned id, const std::string& why) {
            stuck.push_back(std::to_string(id) + ": " + why);
        };
    }

    // As the Front does when it goes: the io_context (declared first, destroyed last) destroys
    // the sessions still suspended, and their slot guards must not reach the dispatcher.
    ~ExchangeTest() override {
        if (core) core->dispatcher = nullptr;
    }

    // A client connection whose session runs until the client side closes.
    struct Client {
        std::shared_ptr<TestStream> end;  // the client's side
        std::shared_ptr<TestSession> session;
    };
    // `write_size`: the most the session's side takes per write (0: no limit).
    Client connect(std::size_t write_size = 0) {
        if (!core)
            core = std::make_shared<FrontCore>(dispatcher, config, hooks, ::testing::TempDir());
        Client c;
        c.end = std::make_shared<TestStream>(ioc);
        TestStream server_side(ioc);
        c.end->connect(server_side);
        if (write_size) server_side.write_size(write_size);
        c.session = std::make_shared<TestSession>(core, watchdog, std::move(server_side),
                                                  ScriptedConnector{script}, "192.0.2.7");
        asio::co_spawn(ioc, TestSession::run(c.session), asio::detached);
        return c;
    }

    // Runs the loop until `done` holds (or 5 s pass: the test then fails on its checks).
    void run_until(const std::function<bool()>& done) {
        const auto until = Clock::now() + 5s;
        while (!done() && Clock::now() < until) {
            ioc.run_for(10ms);
            if (ioc.stopped()) ioc.restart();
        }
    }

    // Everything the client received until a full response (or the connection closed).
    struct Answer {
        int status = 0;
        std::string body;
        bool closed = false;  // the connection ended without (the rest of) a response
        std::string raw;
    };
    static void send(Client& c, const std::string& bytes) {
        asio::write(*c.end, asio::buffer(bytes));
    }
    Answer exchange(Client& c, const std::string& request) {
        send(c, request);
        return read_answer(c);
    }
    Answer read_answer(Client& c) {
        Answer a;
        bool finished = false;
        auto parser = std::make_shared<http::response_parser<http::string_body>>();
        auto buffer = std::make_shared<beast::flat_buffer>();
        http::async_read(*c.end, *buffer, *parser, [&](beast::error_code ec, std::size_t) {
            if (!ec) {
                a.status = parser->get().result_int();
                a.body = parser->get().body();
            } else {
                a.closed = true;
            }
            finished = true;
        });
        run_until([&] { return finished; });
        return a;
    }
    // Reads one response into `parser` through `buffer`, which keeps what arrived beyond it for
    // the next read (read_answer drops it): a stray byte after a response fails the next read.
    template <class Parser>
    beast::error_code read_into(Client& c, beast::flat_buffer& buffer, Parser& parser) {
        bool done = false;
        beast::error_code result;
        http::async_read(*c.end, buffer, parser, [&](beast::error_code ec, std::size_t) {
            result = ec;
            done = true;
        });
        run_until([&] { return done; });
        return result;
    }
    unsigned inflight() const { return dispatcher.counts().inflight; }

    asio::io_context ioc;
    ServerConfig config;
    Dispatcher dispatcher{2};
    BackendPtr backend = std::make_shared<Backend>();
    FrontHooks hooks;
    std::vector<std::string> failed, stuck;
    std::shared_ptr<Script> script = std::make_shared<Script>();
    std::shared_ptr<FrontCore> core;
    std::shared_ptr<Watchdog> watchdog = std::make_shared<Watchdog>(ioc.get_executor());
};

const std::string kGet = "GET /x HTTP/1.1\r\nHost: t\r\n\r\n";
const std::string kPost = "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody";

TEST_F(ExchangeTest, AnsweredRequestReleasesTheSlotAndParksTheConnection) {
    auto c = connect();
    auto a = exchange(c, kGet);
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(a.body, "hello");
    EXPECT_EQ(inflight(), 0u);
    EXPECT_EQ(backend->idle.size(), 1u);
    // The next request on the same client connection reuses the parked worker connection.
    a = exchange(c, kGet);
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(script->connects, 1);
    EXPECT_EQ(script->requests_seen, 2);
    EXPECT_EQ(dispatcher.cumulative().codes.at(200), 2u);
}

TEST_F(ExchangeTest, PostOnAParkedConnectionTheWorkerClosedGoesOutOnANewOne) {
    script->workers = {Worker::answer_then_close};
    auto c = connect();
    EXPECT_EQ(exchange(c, kGet).status, 200);
    run_until([&] { return script->requests_seen == 1; });
    ASSERT_EQ(backend->idle.size(), 1u);
    const auto a = exchange(c, kPost);
    EXPECT_EQ(a.status, 200) << a.body;
    EXPECT_EQ(script->connects, 2);
    EXPECT_EQ(script->bodies_seen.back(), "body");
    EXPECT_EQ(dispatcher.cumulative().retries, 0u) << "a stale connection costs no retry";
    EXPECT_TRUE(failed.empty()) << "nor is it the worker's failure";
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(ExchangeTest, GetRetriedWhenTheWorkerResetsBeforeTheFirstByte) {
    script->workers = {Worker::close_at_once};
    auto c = connect();
    const auto a = exchange(c, kGet);
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(script->connects, 2);
    EXPECT_EQ(dispatcher.cumulative().retries, 1u);
    EXPECT_EQ(failed.size(), 1u) << "the pool hears of the failed worker";
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(ExchangeTest, PostNotRetriedAfterAResetGets502) {
    script->workers = {Worker::close_at_once};
    auto c = connect();
    const auto a = exchange(c, kPost);
    EXPECT_EQ(a.status, 502);
    EXPECT_NE(a.body.find("worker failed before answering"), std::string::npos) << a.body;
    EXPECT_EQ(script->connects, 1);
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(ExchangeTest, RefusalOfAHeadRequestHasNoBodySoTheNextResponseStaysInStep) {
    // Found by the front_response fuzz target: the 502's body went out after the header, and the
    // client, which reads no body after HEAD, took it for the next response.
    script->workers = {Worker::close_at_once, Worker::close_at_once};
    auto c = connect();
    send(c, "HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n" + kGet);
    beast::flat_buffer buffer;
    http::response_parser<http::empty_body> head;
    head.skip(true);
    ASSERT_FALSE(read_into(c, buffer, head));
    EXPECT_EQ(head.get().result_int(), 502);
    http::response_parser<http::string_body> next;
    const auto ec = read_into(c, buffer, next);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(next.get().result_int(), 200);
    EXPECT_EQ(next.get().body(), "hello");
    EXPECT_EQ(inflight(), 0u);
}

// Found by the front_response fuzz target: a read that only ended a relayed body (its last
// chunk, or the end of a close-delimited one) gave Beast's chunked serializer an empty buffer,
// and it wrote an empty chunk, itself a last chunk, before the last chunk.
TEST_F(ExchangeTest, EmptyChunkedResponseReachesTheClientWithOneLastChunk) {
    script->workers = {Worker::empty_chunked};
    auto c = connect();
    send(c, kGet + kGet);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> first;
    ASSERT_FALSE(read_into(c, buffer, first));
    EXPECT_EQ(first.get().result_int(), 200);
    EXPECT_EQ(first.get().body(), "");
    http::response_parser<http::string_body> second;
    const auto ec = read_into(c, buffer, second);
    ASSERT_FALSE(ec) << ec.message() << " (a stray last chunk before the second response)";
    EXPECT_EQ(second.get().result_int(), 200);
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(ExchangeTest, EmptyChunkedRequestBodyReachesTheWorkerWithOneLastChunk) {
    auto c = connect();
    const auto a = exchange(c,
                            "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "0\r\n\r\n");
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(exchange(c, kGet).status, 200);
    EXPECT_EQ(script->requests_seen, 2);
    EXPECT_TRUE(script->read_errors.empty()) << script->read_errors.front();
    EXPECT_EQ(script->connects, 1) << "the worker's connection stayed in step and was reused";
}

TEST_F(ExchangeTest, SmallResponseCutMidBodyIsRetriedBeforeTheClientSeesAByte) {
    script->workers = {Worker::close_after_header};
    auto c = connect();
    const auto a = exchange(c, kGet);
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(a.body, "hello") << "the second worker's whole answer, nothing of the first";
    EXPECT_EQ(script->requests_seen, 2);
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(ExchangeTest, SmallResponseCutMidBodyOfAPostGets502) {
    script->workers = {Worker::close_after_header};
    auto c = connect();
    const auto a = exchange(c, kPost);
    EXPECT_EQ(a.status, 502);
    EXPECT_EQ(script->requests_seen, 1);
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(ExchangeTest, LargeResponseCutAfterItsHeaderClosesTheClientConnection) {
    script->workers = {Worker::big_then_close};
    auto c = connect();
    const auto a = exchange(c, kGet);
    EXPECT_TRUE(a.closed) << "the client cannot get a whole response";
    EXPECT_EQ(script->requests_seen, 1) << "nothing to retry once bytes reached the client";
    EXPECT_EQ(failed.size(), 1u);
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(ExchangeTest, ConnectRefusedOnceIsRetriedAndTwiceGets502) {
    script->workers = {Worker::refuse_connect};
    auto c = connect();
    EXPECT_EQ(exchange(c, kPost).status, 200) << "nothing was sent: any method may go again";
    script->workers = {Worker::refuse_connect, Worker::refuse_connect};
    backend->idle.clear();
    auto c2 = connect();
    const auto a = exchange(c2, kGet);
    EXPECT_EQ(a.status, 502);
    EXPECT_NE(a.body.find("worker unreachable"), std::string::npos) << a.body;
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(ExchangeTest, LateWorkerGets504AndKeepsItsSlotUntilItAnswers) {
    script->workers = {Worker::answer_late};
    script->late_after = 450ms;  // after the 504 (300 ms), before it counts as stuck (600 ms)
    auto c = connect();
    const auto a = exchange(c, kGet);
    EXPECT_EQ(a.status, 504);
    EXPECT_EQ(inflight(), 1u) << "the worker is still busy with the request";
    run_until([&] { return inflight() == 0; });
    EXPECT_EQ(inflight(), 0u);
    EXPECT_TRUE(stuck.empty());
    EXPECT_EQ(backend->idle.size(), 1u) << "its answer was read whole: the connection is reusable";
}

TEST_F(ExchangeTest, WorkerSilentForTwiceTheTimeoutIsReportedStuck) {
    script->workers = {Worker::never_answers};
    auto c = connect();
    EXPECT_EQ(exchange(c, kGet).status, 504);
    run_until([&] { return !stuck.empty(); });
    ASSERT_EQ(stuck.size(), 1u);
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(ExchangeTest, SlowHeaderGets408) {
    auto c = connect();
    const auto a = exchange(c, "GET / HTTP/1.1\r\nHost: t\r\n");
    EXPECT_EQ(a.status, 408);
    EXPECT_EQ(script->connects, 0);
}

TEST_F(ExchangeTest, MalformedOversizedAndTooLargeRequestsGet400_431_413) {
    auto c1 = connect();
    EXPECT_EQ(exchange(c1, "GET / HTTP/9\r\n\r\n").status, 400);
    auto c2 = connect();
    EXPECT_EQ(exchange(c2, "GET / HTTP/1.1\r\nX: " + std::string(4000, 'a') + "\r\n\r\n").status,
              431);
    auto c3 = connect();
    EXPECT_EQ(exchange(c3, "POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n").status, 413);
    auto c4 = connect();
    const auto chunked =
        exchange(c4, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" +
                         std::string(2048, 'a') + "\r\n0\r\n\r\n");
    EXPECT_EQ(chunked.status, 413) << "a chunked body over max_body_size, found while relaying";
    EXPECT_EQ(inflight(), 0u);
    EXPECT_EQ(dispatcher.cumulative().codes.at(413), 2u);
}

TEST_F(ExchangeTest, TransferEncodingOtherThanChunkedGets400AndNothingReachesTheWorker) {
    auto c = connect();
    // Were "gzip" taken as "no body", the body would be read as a second request.
    const auto a = exchange(c,
                            "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n"
                            "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(a.status, 400);
    EXPECT_NE(a.body.find("Transfer-Encoding"), std::string::npos) << a.body;
    EXPECT_EQ(script->connects, 0);
    EXPECT_EQ(script->requests_seen, 0);
}

TEST_F(ExchangeTest, RepeatedIdenticalContentLengthReachesTheWorkerOnce) {
    auto c = connect();
    const auto a = exchange(c,
                            "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                            "Content-Length: 4\r\n\r\nbody");
    EXPECT_EQ(a.status, 200);
    ASSERT_EQ(script->headers_seen.size(), 1u);
    const std::string& h = script->headers_seen[0];
    EXPECT_EQ(h.find("Content-Length"), h.rfind("Content-Length")) << h;
    EXPECT_EQ(script->bodies_seen[0], "body");
}

TEST_F(ExchangeTest, ClientGoneMidBodyReleasesTheSlotAndAnswersNothing) {
    config.request_buffering = false;  // the body is relayed as it arrives: the slot is taken
    auto c = connect();
    send(c, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly part");
    run_until([&] { return script->connects == 1 && inflight() == 1; });
    c.end->close();
    run_until([&] { return inflight() == 0; });
    EXPECT_EQ(inflight(), 0u);
    EXPECT_EQ(script->requests_seen, 0) << "the worker never got a whole request";
}

TEST_F(ExchangeTest, FullQueueGets503AndAWaitOverQueueTimeoutToo) {
    config.max_queue = 1;
    dispatcher.set_max_queue(1);
    script->workers = {Worker::never_answers};
    auto busy = connect();
    send(busy, kGet);
    run_until([&] { return inflight() == 1; });
    auto waiting = connect();
    send(waiting, kGet);
    run_until([&] { return dispatcher.counts().queued == 1; });
    auto refused = connect();
    const auto full = exchange(refused, kGet);
    EXPECT_EQ(full.status, 503);
    EXPECT_NE(full.body.find("queue is full"), std::string::npos);
    const auto timed_out = read_answer(waiting);
    EXPECT_EQ(timed_out.status, 503);
    EXPECT_NE(timed_out.body.find("no worker became free within"), std::string::npos);
    EXPECT_EQ(dispatcher.counts().queued, 0u);
}

TEST_F(ExchangeTest, ForwardsTheClientAddressAndStripsHopByHopHeaders) {
    auto c = connect();
    const auto a = exchange(c,
                            "POST /x HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, X-Hop\r\n"
                            "X-Hop: 1\r\nContent-Length: 4\r\n\r\nbody");
    EXPECT_EQ(a.status, 200);
    ASSERT_EQ(script->bodies_seen.size(), 1u);
    EXPECT_EQ(script->bodies_seen[0], "body");
    const std::string& h = script->headers_seen[0];
    EXPECT_NE(h.find("X-Forwarded-For: 192.0.2.7\r\n"), std::string::npos) << h;
    EXPECT_EQ(h.find("X-Hop"), std::string::npos) << h;
    EXPECT_EQ(h.find("Connection"), std::string::npos) << h;
}

// The front writes headers itself (exchange_detail::append_header); they must be Beast's bytes.
TEST(AppendHeader, WritesWhatBeastsSerializerWrites) {
    const auto beast_bytes = [](const auto& header) {
        std::ostringstream os;
        os << header;
        return os.str();
    };
    http::request<http::empty_body> get{http::verb::get, "/a?b=c", 11};
    get.set(http::field::host, "example");
    get.insert("X-Custom", "1");
    get.insert("X-Custom", "2");
    http::request<http::empty_body> odd{http::verb::unknown, "*", 10};
    odd.method_string("PURGE");
    http::response<http::empty_body> ok{http::status::ok, 11};
    ok.set(http::field::content_length, "5");
    http::response<http::empty_body> custom{http::status::not_found, 11};
    custom.reason("Gone Fishing");
    http::response<http::empty_body> unknown{static_cast<http::status>(599), 10};
    std::string out;
    exchange_detail::append_header(get, out);
    EXPECT_EQ(out, beast_bytes(get.base()));
    for (const auto* r : {&ok, &custom, &unknown}) {
        out.clear();
        exchange_detail::append_header(*r, out);
        EXPECT_EQ(out, beast_bytes(r->base()));
    }
    out.clear();
    exchange_detail::append_header(odd, out);
    EXPECT_EQ(out, beast_bytes(odd.base()));
    EXPECT_EQ(out.substr(0, 16), "PURGE * HTTP/1.0");
}

// A write goes out at once as far as the socket takes it, and the rest asynchronously: here
// every write of the front takes several rounds, on both sides, for a request without a body,
// one with a buffered body, and their small responses.
TEST_F(ExchangeTest, WritesTheSocketTakesOnlyInPartsArriveWhole) {
    script->upstream_write_size = 5;
    auto c = connect(7);
    auto a = exchange(c, kGet);
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(a.body, "hello");
    a = exchange(c, kPost);
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(a.body, "hello");
    ASSERT_EQ(script->bodies_seen.size(), 2u);
    EXPECT_EQ(script->bodies_seen[1], "body");
    EXPECT_NE(script->headers_seen[0].find("X-Forwarded-For: 192.0.2.7\r\n"), std::string::npos)
        << script->headers_seen[0];
    EXPECT_TRUE(script->read_errors.empty());
    EXPECT_EQ(script->connects, 1) << "the worker connection stayed in step";
    EXPECT_EQ(inflight(), 0u);
}

// ---- request buffering -----------------------------------------------------------------------

TEST_F(ExchangeTest, BufferedBodyTakesNoWorkerUntilWholeAndArrivesWithItsLength) {
    auto c = connect();
    send(c, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf-");
    for (int i = 0; i < 10; ++i) ioc.run_for(10ms);
    EXPECT_EQ(script->connects, 0) << "no worker is asked for while the body arrives";
    EXPECT_EQ(inflight(), 0u);
    send(c, "body!");
    const auto a = read_answer(c);
    EXPECT_EQ(a.status, 200);
    ASSERT_EQ(script->bodies_seen.size(), 1u);
    EXPECT_EQ(script->bodies_seen[0], "half-body!");
    EXPECT_NE(script->headers_seen[0].find("Content-Length: 10\r\n"), std::string::npos);
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(ExchangeTest, ChunkedUploadReachesTheWorkerWithAContentLengthAndNoTrailers) {
    auto c = connect();
    const auto a = exchange(c,
                            "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "4\r\nbody\r\n3\r\n123\r\n0\r\nX-Trailer: t\r\n"
                            "X-Forwarded-For: 10.6.6.6\r\n\r\n");
    EXPECT_EQ(a.status, 200);
    ASSERT_EQ(script->bodies_seen.size(), 1u);
    EXPECT_EQ(script->bodies_seen[0], "body123");
    const std::string& h = script->headers_seen[0];
    EXPECT_NE(h.find("Content-Length: 7\r\n"), std::string::npos) << h;
    EXPECT_EQ(h.find("chunked"), std::string::npos) << h;
    EXPECT_EQ(h.find("X-Trailer"), std::string::npos) << h;
    EXPECT_EQ(h.find("10.6.6.6"), std::string::npos) << "a trailer never becomes a header\n" << h;
}

TEST_F(ExchangeTest, BodyLargerThanTheMemoryBufferIsSpooledAndArrivesWhole) {
    config.body_buffer_size_bytes = 1024;
    config.max_body_size_bytes = 1 << 20;
    std::string body;
    for (int i = 0; body.size() < 200'000; ++i) body += std::to_string(i) + ",";
    auto c = connect();
    const auto a = exchange(c, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                                   std::to_string(body.size()) + "\r\n\r\n" + body);
    EXPECT_EQ(a.status, 200);
    ASSERT_EQ(script->bodies_seen.size(), 1u);
    EXPECT_TRUE(script->bodies_seen[0] == body) << "a spooled body arrives byte for byte";
}

TEST_F(ExchangeTest, SpoolThatCannotBeWrittenGets503AndNoWorkerIsAsked) {
    config.body_buffer_size_bytes = 16;
    core = std::make_shared<FrontCore>(dispatcher, config, hooks, "/nonexistent/spool");
    auto c = connect();
    const auto a = exchange(
        c, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'b'));
    EXPECT_EQ(a.status, 503);
    EXPECT_NE(a.body.find("cannot hold the request body"), std::string::npos) << a.body;
    EXPECT_EQ(script->connects, 0);
    EXPECT_EQ(inflight(), 0u);
}

// server.spool_max_size: the bytes of all bodies on disk at once are bounded.
TEST_F(ExchangeTest, DeclaredBodyTheSpoolCannotTakeGets503BeforeAContinueOrAWorker) {
    config.body_buffer_size_bytes = 1024;
    config.max_body_size_bytes = 1 << 20;
    config.spool_max_size_bytes = 64 * 1024;
    auto c = connect();
    const auto a = exchange(c,
                            "POST /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                            "Content-Length: 100000\r\n\r\n");
    EXPECT_EQ(a.status, 503) << "no 100 Continue: the client is not asked for what cannot be held";
    EXPECT_NE(a.body.find("too many large request bodies in progress (at most 64KB"),
              std::string::npos)
        << a.body;
    EXPECT_EQ(script->connects, 0);
    EXPECT_EQ(core->spool_budget.refused(), 1u);
    EXPECT_EQ(core->spool_budget.used(), 0u);
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(ExchangeTest, ChunkedBodyThatOutgrowsTheSpoolGets503AndGivesItsBytesBack) {
    config.body_buffer_size_bytes = 1024;
    config.max_body_size_bytes = 1 << 20;
    config.spool_max_size_bytes = 4096;
    std::string chunked;
    for (int i = 0; i < 10; ++i) chunked += "3e8\r\n" + std::string(1000, 'x') + "\r\n";
    chunked += "0\r\n\r\n";
    auto c = connect();
    const auto a =
        exchange(c, "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked);
    EXPECT_EQ(a.status, 503);
    EXPECT_EQ(script->connects, 0);
    EXPECT_EQ(core->spool_budget.used(), 0u) << "a refused body's spool bytes are given back";
    // What fits afterwards is served: nothing of the refused body is still counted.
    auto d = connect();
    const std::string body(3000, 'y');
    const auto b =
        exchange(d, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3000\r\n\r\n" + body);
    EXPECT_EQ(b.status, 200);
    ASSERT_EQ(script->bodies_seen.size(), 1u);
    EXPECT_TRUE(script->bodies_seen[0] == body);
    EXPECT_EQ(core->spool_budget.used(), 0u);
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(ExchangeTest, UploadsInProgressShareTheSpoolAndTheOneThatDoesNotFitIsRefused) {
    config.body_buffer_size_bytes = 1024;
    config.max_body_size_bytes = 1 << 20;
    config.spool_max_size_bytes = 48 * 1024;
    const auto post = [](const std::string& path, std::size_t length) {
        return "POST " + path +
               " HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
    };
    // The first upload stops after 34 000 of its 40 000 bytes: two reads of the relay buffer
    // (2 × 16 KB) are on disk, the rest waits in the buffer.
    auto first = connect();
    send(first, post("/a", 40000) + std::string(34000, 'a'));
    run_until([&] { return core->spool_budget.used() >= 2 * kRelayBufferSize; });
    EXPECT_EQ(core->spool_budget.used(), 2 * kRelayBufferSize) << "the upload holds what it wrote";
    auto second = connect();
    const auto refused = exchange(second, post("/b", 20000) + std::string(20000, 'b'));
    EXPECT_EQ(refused.status, 503) << "16 KB left, 20 000 bytes declared";
    send(first, std::string(6000, 'a'));
    const auto a = read_answer(first);
    EXPECT_EQ(a.status, 200);
    ASSERT_EQ(script->bodies_seen.size(), 1u);
    EXPECT_TRUE(script->bodies_seen[0] == std::string(40000, 'a'));
    auto third = connect();
    const auto c = exchange(third, post("/c", 20000) + std::string(20000, 'c'));
    EXPECT_EQ(c.status, 200) << "the first body's bytes were given back once it was sent";
    EXPECT_EQ(core->spool_budget.used(), 0u);
    EXPECT_EQ(core->spool_budget.refused(), 1u);
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(ExchangeTest, BodySlowerThanTheMinimumRateGets408AndNeverReachesAWorker) {
    config.min_body_rate_bytes = 1000;  // header_timeout is 300 ms: 10 bytes earn 10 ms more
    auto c = connect();
    send(c, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 500\r\n\r\n0123456789");
    const auto started = Clock::now();
    const auto a = read_answer(c);
    EXPECT_EQ(a.status, 408);
    EXPECT_NE(a.body.find("request body slower than"), std::string::npos) << a.body;
    EXPECT_LT(Clock::now() - started, 3s);
    EXPECT_EQ(script->connects, 0);
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(ExchangeTest, ExpectContinueIsAnsweredBeforeTheBodyIsBuffered) {
    auto c = connect();
    send(c, "POST /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    std::string got;
    bool done = false;
    auto buf = std::make_shared<std::array<char, 64>>();
    c.end->async_read_some(asio::buffer(*buf), [&](beast::error_code ec, std::size_t n) {
        if (!ec) got.assign(buf->data(), n);
        done = true;
    });
    run_until([&] { return done; });
    EXPECT_EQ(got, "HTTP/1.1 100 Continue\r\n\r\n");
    EXPECT_EQ(script->connects, 0);
    const auto a = exchange(c, "body");
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(script->bodies_seen.at(0), "body");
    EXPECT_EQ(script->headers_seen.at(0).find("Expect"), std::string::npos);
}

TEST_F(ExchangeTest, GetWithABufferedBodyIsRetriedWithItsBodyAfterAReset) {
    script->workers = {Worker::close_at_once};
    auto c = connect();
    const auto a = exchange(c, "GET /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(script->connects, 2);
    EXPECT_EQ(script->bodies_seen.at(0), "abc");
}

TEST_F(ExchangeTest, ClientGoneMidBufferedBodyTakesNoSlotAtAll) {
    auto c = connect();
    send(c, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly part");
    for (int i = 0; i < 10; ++i) ioc.run_for(10ms);
    c.end->close();
    for (int i = 0; i < 10; ++i) ioc.run_for(10ms);
    EXPECT_EQ(script->connects, 0);
    EXPECT_EQ(inflight(), 0u);
    EXPECT_EQ(dispatcher.cumulative().codes.count(200), 0u);
}

// ---- who the client is -----------------------------------------------------------------------

TEST_F(ExchangeTest, ForwardingHeadersFromAnUntrustedClientAreReplaced) {
    auto c = connect();  // 192.0.2.7 is not in the default trusted_proxies (loopback)
    const auto a = exchange(c,
                            "GET /x HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 10.9.9.9\r\n"
                            "X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n"
                            "X-Real-IP: 10.1.1.1\r\nForwarded: for=10.2.2.2;proto=https\r\n\r\n");
    EXPECT_EQ(a.status, 200);
    const std::string& h = script->headers_seen.at(0);
    EXPECT_NE(h.find("X-Forwarded-For: 192.0.2.7\r\n"), std::string::npos) << h;
    EXPECT_NE(h.find("X-Forwarded-Proto: http\r\n"), std::string::npos) << h;
    for (const char* lie : {"10.9.9.9", "https", "evil.example", "X-Real-IP", "Forwarded:"})
        EXPECT_EQ(h.find(lie), std::string::npos) << lie << " in\n" << h;
}

TEST_F(ExchangeTest, ForwardingHeadersFromATrustedProxyAreKeptAndExtended) {
    config.trusted_proxies = {"192.0.2.0/24"};
    auto c = connect();
    const auto a = exchange(c,
                            "GET /x HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.5\r\n"
                            "X-Forwarded-Proto: https\r\n\r\n");
    EXPECT_EQ(a.status, 200);
    const std::string& h = script->headers_seen.at(0);
    EXPECT_NE(h.find("X-Forwarded-For: 203.0.113.5, 192.0.2.7\r\n"), std::string::npos) << h;
    EXPECT_NE(h.find("X-Forwarded-Proto: https\r\n"), std::string::npos) << h;
}

TEST_F(ExchangeTest, PerAddressCapCountsTheClientBehindATrustedProxy) {
    config.trusted_proxies = {"192.0.2.7"};
    config.max_connections_per_address = 1;
    script->workers = {Worker::never_answers};
    auto first = connect();
    send(first, "GET /x HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.1\r\n\r\n");
    run_until([&] { return inflight() == 1; });
    auto same = connect();
    const auto refused =
        exchange(same, "GET /x HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.1\r\n\r\n");
    EXPECT_EQ(refused.status, 429);
    EXPECT_NE(refused.body.find("too many connections from your address"), std::string::npos);
    // Another client behind the same proxy is not counted against the first: it waits for the
    // busy worker like any request (and times out in the queue).
    auto other = connect();
    const auto queued =
        exchange(other, "GET /x HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.2\r\n\r\n");
    EXPECT_EQ(queued.status, 503);
}

// ---- rate limit --------------------------------------------------------------------------------

TEST_F(ExchangeTest, RateLimitedRequestsGet429WithRetryAfterAndAreNoArrivals) {
    config.rate_limit.rate = 0.5;  // one every 2 s
    config.rate_limit.burst = 1;
    auto c = connect();
    EXPECT_EQ(exchange(c, kGet).status, 200);
    EXPECT_EQ(exchange(c, kGet).status, 200);
    const auto before = dispatcher.cumulative();
    send(c, kGet);
    bool done = false;
    auto parser = std::make_shared<http::response_parser<http::string_body>>();
    auto buffer = std::make_shared<beast::flat_buffer>();
    http::async_read(*c.end, *buffer, *parser,
                     [&](beast::error_code, std::size_t) { done = true; });
    run_until([&] { return done; });
    const auto& res = parser->get();
    EXPECT_EQ(res.result_int(), 429);
    EXPECT_EQ(res[http::field::retry_after], "2");
    EXPECT_NE(res.body().find("rate limit: 0.5 requests/s per client, bursts of 2"),
              std::string::npos)
        << res.body();
    EXPECT_EQ(script->requests_seen, 2);
    const auto after = dispatcher.cumulative();
    EXPECT_EQ(after.accepted, before.accepted) << "a 429 is not an arrival the pool is sized for";
    EXPECT_EQ(after.codes.at(429), 1u);
    // Another client is not limited by the first one's bucket; an allowed network never is.
    config.rate_limit.allow = {"192.0.2.0/24"};
    core->set_config(config);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(exchange(c, kGet).status, 200) << i;
}

// ---- [cache] ---------------------------------------------------------------------------------

TEST_F(ExchangeTest, ACacheHitTakesNoWorkerAndIsNoArrival) {
    config.cache.size_bytes = 1 << 20;
    script->workers = {Worker::cacheable};
    auto c = connect();
    send(c, kGet);
    http::response_parser<http::string_body> first;
    beast::flat_buffer buffer;
    ASSERT_FALSE(read_into(c, buffer, first));
    EXPECT_EQ(first.get()["X-Cache-Status"], "MISS");
    EXPECT_EQ(first.get().body(), "hello");
    const auto before = dispatcher.cumulative();
    send(c, kGet);
    http::response_parser<http::string_body> second;
    ASSERT_FALSE(read_into(c, buffer, second));
    EXPECT_EQ(second.get().result_int(), 200);
    EXPECT_EQ(second.get()["X-Cache-Status"], "HIT");
    EXPECT_EQ(second.get()["Age"], "0");
    EXPECT_EQ(second.get()[http::field::cache_control], "max-age=60");
    EXPECT_EQ(second.get().body(), "hello");
    EXPECT_TRUE(second.get().keep_alive());
    EXPECT_EQ(script->requests_seen, 1);
    const auto after = dispatcher.cumulative();
    EXPECT_EQ(after.accepted, before.accepted) << "a hit is not an arrival the pool is sized for";
    EXPECT_EQ(after.total.count, before.total.count) << "nor a latency";
    EXPECT_EQ(after.codes.at(200), 2u);
    EXPECT_EQ(inflight(), 0u);
    // A HEAD is answered from the GET's entry, without a body; the connection stays in step.
    send(c, "HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n");
    http::response_parser<http::empty_body> head;
    head.skip(true);
    ASSERT_FALSE(read_into(c, buffer, head));
    EXPECT_EQ(head.get()["X-Cache-Status"], "HIT");
    EXPECT_EQ(head.get()[http::field::content_length], "5");
    send(c, kGet);
    http::response_parser<http::string_body> third;
    ASSERT_FALSE(read_into(c, buffer, third));
    EXPECT_EQ(third.get().body(), "hello");
    EXPECT_EQ(core->cache.stats().hits, 3u);
    EXPECT_EQ(core->cache.stats().misses, 1u);
}

TEST_F(ExchangeTest, AStreamedResponseIsStoredWhileItIsRelayed) {
    config.cache.size_bytes = 1 << 20;
    script->workers = {Worker::cacheable_big};
    auto c = connect();
    const auto first = exchange(c, kGet);
    ASSERT_EQ(first.status, 200);
    ASSERT_EQ(first.body.size(), 100u * 1024);
    const auto second = exchange(c, kGet);
    EXPECT_EQ(second.status, 200);
    EXPECT_EQ(second.body, first.body);
    EXPECT_EQ(script->requests_seen, 1);
    EXPECT_EQ(core->cache.stats().entries, 1u);
}

TEST_F(ExchangeTest, AResponseOverMaxEntrySizeIsRelayedButNotStored) {
    config.cache.size_bytes = 1 << 20;
    config.cache.max_entry_size_bytes = 64 * 1024;
    script->workers = {Worker::cacheable_big, Worker::cacheable_big};
    auto c = connect();
    EXPECT_EQ(exchange(c, kGet).body.size(), 100u * 1024);
    EXPECT_EQ(exchange(c, kGet).body.size(), 100u * 1024);
    EXPECT_EQ(script->requests_seen, 2);
    EXPECT_EQ(core->cache.stats().entries, 0u);
}

TEST_F(ExchangeTest, WithTheCacheOnEveryResponseSaysItsCacheStatus) {
    config.cache.size_bytes = 1 << 20;
    script->workers = {Worker::server_error, Worker::answer_200};
    auto c = connect();
    beast::flat_buffer buffer;
    send(c, kGet);
    http::response_parser<http::string_body> error;
    ASSERT_FALSE(read_into(c, buffer, error));
    EXPECT_EQ(error.get().result_int(), 500);
    EXPECT_EQ(error.get()["X-Cache-Status"], "MISS");
    send(c, kPost);
    http::response_parser<http::string_body> post;
    ASSERT_FALSE(read_into(c, buffer, post));
    EXPECT_EQ(post.get()["X-Cache-Status"], "BYPASS");
    EXPECT_EQ(core->cache.stats().entries, 0u);
}

// ---- [[static]] ------------------------------------------------------------------------------

TEST_F(ExchangeTest, StaticRequestsAreAnsweredByTheFrontWithoutASlotOrAnArrival) {
    const std::string root = ::testing::TempDir() + "/exchange-static";
    std::filesystem::create_directories(root);
    std::ofstream(root + "/app.css") << "body{}";
    config.static_mounts = {{"/static/", root, std::chrono::hours(1), ""}};
    auto c = connect();
    const auto before = dispatcher.cumulative();
    auto a = exchange(c, "GET /static/app.css HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(a.body, "body{}");
    EXPECT_EQ(exchange(c, "GET /static/nope.css HTTP/1.1\r\nHost: t\r\n\r\n").status, 404);
    EXPECT_EQ(exchange(c, "GET /static/%2e%2e/x HTTP/1.1\r\nHost: t\r\n\r\n").status, 400);
    // The connection carried all three; the next request goes to the worker as before.
    EXPECT_EQ(exchange(c, kGet).status, 200);
    EXPECT_EQ(script->requests_seen, 1) << "only the last request reached the worker";
    const auto after = dispatcher.cumulative();
    EXPECT_EQ(after.accepted, before.accepted + 1) << "static answers are no arrivals";
    EXPECT_EQ(after.codes.at(404), 1u);
    const auto counted = core->static_counters.snapshot();
    EXPECT_EQ(counted.responses.at(200), 1u);
    EXPECT_EQ(counted.responses.at(400), 1u);
    EXPECT_GT(counted.bytes, 6u);
    EXPECT_EQ(inflight(), 0u);
    // A POST with a body: 405, and the connection closes (its body is never read).
    a = exchange(c, "POST /static/app.css HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    EXPECT_EQ(a.status, 405);
    EXPECT_EQ(script->requests_seen, 1);
}

// ---- server.health_path --------------------------------------------------------------------

TEST_F(ExchangeTest, TheHealthPathIsAnsweredByTheFrontBeforeTheRateLimitAndTheCache) {
    config.health_path = "/lb-health";
    config.rate_limit.rate = 0.001;  // one request, then 429 for a long time
    config.rate_limit.burst = 0;
    config.cache.size_bytes = 1 << 20;
    auto c = connect();
    const auto before = dispatcher.cumulative();
    for (int i = 0; i < 5; ++i) {
        const auto a = exchange(c, "GET /lb-health?probe=1 HTTP/1.1\r\nHost: t\r\n\r\n");
        EXPECT_EQ(a.status, 200) << "request " << i;
        EXPECT_EQ(a.body, "ok\n");
    }
    send(c, "HEAD /lb-health HTTP/1.1\r\nHost: t\r\n\r\n");
    http::response_parser<http::empty_body> head;
    head.skip(true);
    beast::flat_buffer buffer;
    ASSERT_FALSE(read_into(c, buffer, head));
    EXPECT_EQ(head.get().result_int(), 200);
    EXPECT_EQ(head.get()[http::field::content_length], "3");
    EXPECT_EQ(script->requests_seen, 0) << "the worker never sees the health path";
    EXPECT_EQ(dispatcher.cumulative().accepted, before.accepted) << "no arrivals";
    EXPECT_EQ(core->cache.stats().misses + core->cache.stats().hits, 0u);
    // Other paths still meet the rate limit: the first passes, the next is refused.
    EXPECT_EQ(exchange(c, kGet).status, 200);
    EXPECT_EQ(exchange(c, kGet).status, 429);
    // No worker ready: 503, and the connection closes.
    dispatcher.remove(backend->id);
    auto c2 = connect();
    const auto down = exchange(c2, "GET /lb-health HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(down.status, 503);
    EXPECT_EQ(down.body, "unavailable\n");
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(ExchangeTest, AccessLogGetsOneLinePerRequestWithTheWorkerAndTheBytesSent) {
    const std::string path = ::testing::TempDir() + "/exchange-access.log";
    std::filesystem::remove(path);
    config.access_log = {true, path, AccessLogFormat::json};
    auto c = connect();
    EXPECT_EQ(exchange(c, "GET /x?q=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: \xff\"x\r\n\r\n").status,
              200);
    EXPECT_EQ(exchange(c, "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n").status, 413);
    ASSERT_TRUE(core->access_log.flush(std::chrono::seconds(5)));
    std::ifstream in(path);
    std::vector<nlohmann::json> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0]["target"], "/x?q=1");
    EXPECT_EQ(lines[0]["status"], 200);
    EXPECT_EQ(lines[0]["worker"], 1);
    EXPECT_EQ(lines[0]["client"], "192.0.2.7");
    EXPECT_EQ(lines[0]["user_agent"], "\\xFF\"x");
    EXPECT_GT(lines[0]["bytes"].get<int>(), 5);
    EXPECT_EQ(lines[1]["status"], 413);
    EXPECT_TRUE(lines[1]["worker"].is_null());
    EXPECT_EQ(core->access_log.stats().written, 2u);
}

// ---- max_connections -------------------------------------------------------------------------

TEST_F(ExchangeTest, AnIdleConnectionIsEvictedForANewcomerAndABusyOneIsNot) {
    script->workers = {Worker::never_answers};
    auto busy = connect();
    send(busy, kGet);
    run_until([&] { return inflight() == 1; });
    auto idle = connect();
    for (int i = 0; i < 5; ++i) ioc.run_for(10ms);
    EXPECT_EQ(core->open_connections.load(), 2u);
    EXPECT_TRUE(core->evict_idle());
    EXPECT_EQ(core->open_connections.load(), 1u) << "the place is given up at once";
    const auto closed = read_answer(idle);
    EXPECT_TRUE(closed.closed);
    EXPECT_FALSE(core->evict_idle()) << "the only connection left is busy";
    EXPECT_EQ(inflight(), 1u);
}

// ---- [compression] (compression_relay.hpp) ---------------------------------------------------

std::string demo_json(std::size_t n) {
    std::string s(n, '\0');
    demo::demo_payload(0, s);
    return s;
}

// A worker's 200 with a body of known length.
std::string with_length(const std::string& body, const std::string& extra = {},
                        const std::string& type = "application/json") {
    return "HTTP/1.1 200 OK\r\nContent-Type: " + type + "\r\n" + extra +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// A worker's 200 with a chunked body in pieces of 10000 bytes.
std::string chunked(const std::string& body) {
    std::string raw =
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (std::size_t i = 0; i < body.size(); i += 10000) {
        const auto piece = body.substr(i, 10000);
        char size[16];
        std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
        raw += size + piece + "\r\n";
    }
    return raw + "0\r\n\r\n";
}

class CompressionExchangeTest : public ExchangeTest {
protected:
    // One request with this Accept-Encoding (none: nullopt) to a worker answering `raw`.
    http::response<http::string_body> fetch(Client& c, beast::flat_buffer& buffer,
                                            const std::string& raw,
                                            std::optional<std::string> accept_encoding,
                                            const std::string& method = "GET",
                                            const std::string& version = "1.1") {
        script->workers.push_back(Worker::custom);
        script->custom_response = raw;
        send(c, method + " /x HTTP/" + version + "\r\nHost: t\r\n" +
                    (accept_encoding ? "Accept-Encoding: " + *accept_encoding + "\r\n" : "") +
                    "\r\n");
        http::response_parser<http::string_body> parser;
        parser.body_limit(64 << 20);
        if (method == "HEAD") parser.skip(true);
        const auto ec = read_into(c, buffer, parser);
        EXPECT_FALSE(ec) << ec.message();
        return parser.release();
    }
    std::string decoded(const http::response<http::string_body>& res) {
        const auto coding = std::string(res[http::field::content_encoding]);
        auto body = test::decode_body(coding, res.body());
        EXPECT_TRUE(body) << coding << ": " << body.error().to_string();
        return body.value_or("");
    }
    // A request that no new worker connection answers (a cache hit, or a parked connection).
    http::response<http::string_body> again(Client& c, beast::flat_buffer& buffer,
                                            std::optional<std::string> accept_encoding,
                                            const std::string& method = "GET") {
        send(c, method + " /x HTTP/1.1\r\nHost: t\r\n" +
                    (accept_encoding ? "Accept-Encoding: " + *accept_encoding + "\r\n" : "") +
                    "\r\n");
        http::response_parser<http::string_body> parser;
        parser.body_limit(64 << 20);
        if (method == "HEAD") parser.skip(true);
        const auto ec = read_into(c, buffer, parser);
        EXPECT_FALSE(ec) << ec.message();
        return parser.release();
    }
};

TEST_F(CompressionExchangeTest, SmallResponseIsCompressedWholeWithItsLength) {
    const std::string body = demo_json(20000);
    auto c = connect();
    beast::flat_buffer buffer;
    const auto res =
        fetch(c, buffer, with_length(body, "ETag: \"v1\"\r\nAccept-Ranges: bytes\r\n"), "gzip");
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_EQ(res[http::field::content_encoding], "gzip");
    EXPECT_EQ(res[http::field::vary], "Accept-Encoding");
    EXPECT_EQ(res[http::field::etag], "W/\"v1\"") << "weakened, as nginx does";
    EXPECT_EQ(res.count(http::field::accept_ranges), 0u);
    EXPECT_EQ(res[http::field::content_length], std::to_string(res.body().size()))
        << "a whole response keeps a length: that of its compressed body";
    EXPECT_FALSE(res.chunked());
    EXPECT_LT(res.body().size(), body.size() / 4);
    EXPECT_TRUE(decoded(res) == body);
    // The connection stays in step for the next response.
    const auto next = fetch(c, buffer, with_length(body), "br");
    EXPECT_EQ(next[http::field::content_encoding], "br");
    EXPECT_TRUE(decoded(next) == body);
    EXPECT_EQ(script->connects, 1);
    EXPECT_EQ(inflight(), 0u);
    const auto stats = read_counters(core->compression);
    EXPECT_EQ(stats.gzip.responses, 1u);
    EXPECT_EQ(stats.br.responses, 1u);
    EXPECT_EQ(stats.gzip.bytes_in, body.size());
    EXPECT_EQ(stats.memory_bytes, 0) << "the encoders are gone with their responses";
}

TEST_F(CompressionExchangeTest, LongResponseIsStreamedChunkedAndDecodesWhole) {
    const std::string body = demo_json(300000);  // beyond kWholeResponseMax: relayed as it comes
    auto c = connect();
    beast::flat_buffer buffer;
    const auto res = fetch(c, buffer, with_length(body), "br;q=0.5, gzip;q=0.9");
    EXPECT_EQ(res[http::field::content_encoding], "gzip");
    EXPECT_TRUE(res.chunked());
    EXPECT_EQ(res.count(http::field::content_length), 0u);
    EXPECT_TRUE(decoded(res) == body);
    const auto streamed = fetch(c, buffer, chunked(body), "br");
    EXPECT_EQ(streamed[http::field::content_encoding], "br");
    EXPECT_TRUE(streamed.chunked());
    EXPECT_TRUE(decoded(streamed) == body);
    EXPECT_EQ(inflight(), 0u);
}

TEST_F(CompressionExchangeTest, Http10ClientGetsACloseDelimitedCompressedBody) {
    const std::string body = demo_json(300000);
    auto c = connect();
    beast::flat_buffer buffer;
    const auto res = fetch(c, buffer, with_length(body), "gzip", "GET", "1.0");
    EXPECT_EQ(res[http::field::content_encoding], "gzip");
    EXPECT_FALSE(res.chunked());
    EXPECT_EQ(res.count(http::field::content_length), 0u);
    EXPECT_FALSE(res.keep_alive()) << "the end of the body is the end of the connection";
    EXPECT_TRUE(decoded(res) == body);
}

TEST_F(CompressionExchangeTest, ClientWithoutGzipOrBrGetsThePlainBodyAndVary) {
    const std::string body = demo_json(5000);
    auto c = connect();
    beast::flat_buffer buffer;
    for (const std::optional<std::string>& accept :
         {std::optional<std::string>("gzip;q=0"), std::optional<std::string>("identity"),
          std::optional<std::string>("deflate")}) {
        const auto res = fetch(c, buffer, with_length(body), accept);
        EXPECT_EQ(res.count(http::field::content_encoding), 0u) << *accept;
        EXPECT_EQ(res[http::field::vary], "Accept-Encoding") << *accept;
        EXPECT_TRUE(res.body() == body) << *accept;
    }
    const auto none = fetch(c, buffer, with_length(body), std::nullopt);
    EXPECT_EQ(none.count(http::field::content_encoding), 0u);
    EXPECT_TRUE(none.body() == body);
}

TEST_F(CompressionExchangeTest, HeadGetsTheHeaderOfTheCompressedGetAndNoBody) {
    auto c = connect();
    beast::flat_buffer buffer;
    const std::string head_answer =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20000\r\n\r\n";
    const auto res = fetch(c, buffer, head_answer, "gzip", "HEAD");
    EXPECT_EQ(res[http::field::content_encoding], "gzip");
    EXPECT_EQ(res[http::field::vary], "Accept-Encoding");
    EXPECT_EQ(res.count(http::field::content_length), 0u)
        << "the compressed length is not known without compressing";
    // No body followed: the next response parses.
    const auto next = fetch(c, buffer, with_length(demo_json(2000)), "gzip");
    EXPECT_TRUE(decoded(next) == demo_json(2000));
    EXPECT_EQ(read_counters(core->compression).gzip.responses, 1u) << "HEAD compressed nothing";
}

TEST_F(CompressionExchangeTest, EncodedRangedAndSmallResponsesPassThroughUntouched) {
    const std::string body = demo_json(5000);
    auto c = connect();
    beast::flat_buffer buffer;
    auto res = fetch(c, buffer, with_length(body, "Content-Encoding: gzip\r\n"), "gzip, br");
    EXPECT_EQ(res[http::field::content_encoding], "gzip");
    EXPECT_TRUE(res.body() == body) << "never compressed twice";
    EXPECT_EQ(res.count(http::field::vary), 0u);
    res = fetch(c, buffer,
                "HTTP/1.1 206 Partial Content\r\nContent-Type: application/json\r\n"
                "Content-Range: bytes 0-4999/9000\r\nContent-Length: 5000\r\n\r\n" +
                    body,
                "gzip");
    EXPECT_EQ(res.result_int(), 206);
    EXPECT_EQ(res.count(http::field::content_encoding), 0u);
    EXPECT_TRUE(res.body() == body);
    res = fetch(c, buffer, with_length(body.substr(0, 500)), "gzip");
    EXPECT_EQ(res.count(http::field::content_encoding), 0u) << "below min_size";
    res = fetch(c, buffer, with_length(body, "", "image/png"), "gzip");
    EXPECT_EQ(res.count(http::field::content_encoding), 0u) << "not a listed type";
    res = fetch(c, buffer, with_length(body, "Cache-Control: no-transform\r\n"), "gzip");
    EXPECT_EQ(res.count(http::field::content_encoding), 0u) << "no-transform";
    EXPECT_EQ(read_counters(core->compression).gzip.responses, 0u);
}

TEST_F(CompressionExchangeTest, CompressorsAtTheirMemoryBoundSendTheNextResponsePlain) {
    const std::string body = demo_json(20000);
    auto c = connect();
    beast::flat_buffer buffer;
    core->compression.memory_bytes = kMaxCompressionMemoryBytes;  // as if others held it all
    const auto plain = fetch(c, buffer, with_length(body), "br");
    EXPECT_EQ(plain.count(http::field::content_encoding), 0u);
    EXPECT_EQ(plain[http::field::vary], "Accept-Encoding");
    EXPECT_TRUE(plain.body() == body);
    EXPECT_EQ(read_counters(core->compression).over_memory, 1u);
    core->compression.memory_bytes = 0;
    EXPECT_EQ(fetch(c, buffer, with_length(body), "br")[http::field::content_encoding], "br");
}

TEST_F(CompressionExchangeTest, TheTunedLevelAppliesFromTheNextResponse) {
    const std::string body = demo_json(60000);
    auto c = connect();
    beast::flat_buffer buffer;
    const auto at6 = fetch(c, buffer, with_length(body), "gzip").body().size();
    core->compression_level = 1;
    const auto at1 = fetch(c, buffer, with_length(body), "gzip");
    EXPECT_TRUE(decoded(at1) == body);
    EXPECT_GT(at1.body().size(), at6) << "level 1 trades ratio for speed";
}

// ---- [cache] with [compression]: the entry is the identity body, each client gets its coding --

TEST_F(CompressionExchangeTest, ACacheHitIsCompressedPerTheRequestsAcceptEncoding) {
    config.cache.size_bytes = 1 << 20;
    const std::string body = demo_json(20000);
    auto c = connect();
    beast::flat_buffer buffer;
    const auto miss = fetch(
        c, buffer, with_length(body, "Cache-Control: max-age=60\r\nETag: \"v1\"\r\n"), "gzip");
    EXPECT_EQ(miss["X-Cache-Status"], "MISS");
    EXPECT_EQ(miss[http::field::content_encoding], "gzip") << "the filling response too";
    EXPECT_TRUE(decoded(miss) == body);
    EXPECT_GE(core->cache.stats().bytes, body.size()) << "the entry holds the identity body";

    const auto gzip = again(c, buffer, "gzip");
    EXPECT_EQ(gzip["X-Cache-Status"], "HIT");
    EXPECT_EQ(gzip[http::field::content_encoding], "gzip");
    EXPECT_EQ(gzip[http::field::vary], "Accept-Encoding");
    EXPECT_EQ(gzip[http::field::etag], "W/\"v1\"");
    EXPECT_EQ(gzip[http::field::cache_control], "max-age=60");
    EXPECT_EQ(gzip[http::field::content_length], std::to_string(gzip.body().size()));
    EXPECT_LT(gzip.body().size(), body.size() / 4);
    EXPECT_TRUE(decoded(gzip) == body);

    const auto br = again(c, buffer, "gzip;q=0.5, br");
    EXPECT_EQ(br["X-Cache-Status"], "HIT");
    EXPECT_EQ(br[http::field::content_encoding], "br");
    EXPECT_TRUE(decoded(br) == body);

    const auto plain = again(c, buffer, std::nullopt);
    EXPECT_EQ(plain["X-Cache-Status"], "HIT");
    EXPECT_EQ(plain.count(http::field::content_encoding), 0u);
    EXPECT_EQ(plain[http::field::vary], "Accept-Encoding");
    EXPECT_EQ(plain[http::field::etag], "\"v1\"") << "the identity keeps its strong ETag";
    EXPECT_EQ(plain[http::field::content_length], std::to_string(body.size()));
    EXPECT_TRUE(plain.body() == body);

    const auto head = again(c, buffer, "gzip", "HEAD");
    EXPECT_EQ(head["X-Cache-Status"], "HIT");
    EXPECT_EQ(head[http::field::content_encoding], "gzip");
    EXPECT_EQ(head.count(http::field::content_length), 0u) << "as the worker path answers HEAD";
    // No body followed the HEAD: the connection is in step.
    EXPECT_TRUE(decoded(again(c, buffer, "gzip")) == body);

    EXPECT_EQ(script->requests_seen, 1);
    EXPECT_EQ(core->cache.stats().hits, 5u);
    const auto stats = read_counters(core->compression);
    EXPECT_EQ(stats.gzip.responses, 3u) << "the miss and two GET hits";
    EXPECT_EQ(stats.br.responses, 1u);
    EXPECT_EQ(stats.memory_bytes, 0);
}

TEST_F(CompressionExchangeTest, AStreamedResponseIsStoredPlainWhileItGoesOutCompressed) {
    config.cache.size_bytes = 1 << 20;
    const std::string body = demo_json(150000);  // beyond kWholeResponseMax: relayed as it comes
    auto c = connect();
    beast::flat_buffer buffer;
    const auto miss = fetch(c, buffer, with_length(body, "Cache-Control: max-age=60\r\n"), "br");
    EXPECT_EQ(miss["X-Cache-Status"], "MISS");
    EXPECT_EQ(miss[http::field::content_encoding], "br");
    EXPECT_TRUE(miss.chunked());
    EXPECT_TRUE(decoded(miss) == body);
    ASSERT_EQ(core->cache.stats().entries, 1u);
    const auto gzip = again(c, buffer, "gzip");
    EXPECT_EQ(gzip["X-Cache-Status"], "HIT");
    EXPECT_EQ(gzip[http::field::content_encoding], "gzip");
    EXPECT_TRUE(decoded(gzip) == body);
    const auto plain = again(c, buffer, "identity");
    EXPECT_TRUE(plain.body() == body);
    EXPECT_EQ(script->requests_seen, 1);
}

TEST_F(CompressionExchangeTest, AHitTheRulesLeaveAloneGoesAsStored) {
    config.cache.size_bytes = 1 << 20;
    auto c = connect();
    beast::flat_buffer buffer;
    const std::string small = demo_json(500);  // below min_size
    fetch(c, buffer, with_length(small, "Cache-Control: max-age=60\r\n"), "gzip");
    const auto hit = again(c, buffer, "gzip");
    EXPECT_EQ(hit["X-Cache-Status"], "HIT");
    EXPECT_EQ(hit.count(http::field::content_encoding), 0u);
    EXPECT_EQ(hit.count(http::field::vary), 0u);
    EXPECT_TRUE(hit.body() == small);
}

}  // namespace
}  // namespace tuner::server
