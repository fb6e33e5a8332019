// The built-in demo app: its command line, CPU burning by thread CPU time, and its routes served
// over a Unix socket by a real demo worker running in a forked child.
#include "server/demo/demo_worker.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <time.h>

#include "server_test_support.hpp"

namespace tuner::demo {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

// ---- command line --------------------------------------------------------------------------

Result<DemoOptions> parse(std::vector<std::string> args) {
    args.insert(args.begin(), "demo-worker");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return parse_demo_args(static_cast<int>(args.size()), argv.data());
}

void expect_options(const Result<DemoOptions>& actual, const DemoOptions& expected) {
    ASSERT_TRUE(actual.ok()) << actual.error().to_string();
    EXPECT_EQ(actual->socket_path, expected.socket_path);
    EXPECT_EQ(actual->port, expected.port);
    EXPECT_EQ(actual->threads, expected.threads);
    EXPECT_EQ(actual->cpu_ms, expected.cpu_ms);
    EXPECT_EQ(actual->io_ms, expected.io_ms);
    EXPECT_EQ(actual->rss_mb, expected.rss_mb);
    EXPECT_EQ(actual->worker_id, expected.worker_id);
}

TEST(ParseDemoArgs, DefaultsEverythingButWhereToListen) {
    DemoOptions expected;  // threads 1, cpu_ms 5, io_ms 50, rss_mb 20, worker 0
    expected.socket_path = "/run/w.sock";
    expect_options(parse({"--socket", "/run/w.sock"}), expected);
    EXPECT_EQ(expected.threads, 1u);
    EXPECT_EQ(expected.cpu_ms, 5u);
    EXPECT_EQ(expected.io_ms, 50u);
    EXPECT_EQ(expected.rss_mb, 20u);
}

TEST(ParseDemoArgs, ReadsEveryOption) {
    const DemoOptions expected{"", std::uint16_t{20001}, 4, 0, 7, 64, 12};
    expect_options(parse({"--port", "20001", "--threads", "4", "--cpu-ms", "0", "--io-ms", "7",
                          "--rss-mb", "64", "--worker-id", "12"}),
                   expected);
}

TEST(ParseDemoArgs, ZeroThreadsMeansOne) {
    const auto opt = parse({"--socket", "/s", "--threads", "0"});
    ASSERT_TRUE(opt.ok());
    EXPECT_EQ(opt->threads, 1u);
}

void expect_error(std::vector<std::string> args, const std::string& where,
                  const std::string& what_part) {
    const auto opt = parse(args);
    ASSERT_FALSE(opt.ok()) << "accepted: " << ::testing::PrintToString(args);
    EXPECT_EQ(opt.error().where, where) << opt.error().to_string();
    EXPECT_NE(opt.error().what.find(what_part), std::string::npos) << opt.error().to_string();
}

TEST(ParseDemoArgs, NamesTheOptionThatIsWrong) {
    expect_error({"--socket", "/s", "--threads"}, "--threads", "missing value");
    expect_error({"--socket", "/s", "--cpu-ms", "abc"}, "--cpu-ms", "\"abc\"");
    expect_error({"--socket", "/s", "--io-ms", "-5"}, "--io-ms", "\"-5\"");
    expect_error({"--socket", "/s", "--rss-mb", "12MB"}, "--rss-mb", "\"12MB\"");
    expect_error({"--port", "0"}, "--port", "out of range");
    expect_error({"--port", "65536"}, "--port", "out of range");
    expect_error({"--socket", "/s", "--bogus", "1"}, "--bogus", "unknown demo-worker option");
}

TEST(ParseDemoArgs, AnUnknownOptionIsReportedAsUnknownWhateverItsValue) {
    expect_error({"--socket", "/s", "--verbose", "yes"}, "--verbose", "unknown demo-worker option");
    expect_error({"--socket", "/s", "--verbose"}, "--verbose", "unknown demo-worker option");
}

TEST(ParseDemoArgs, NeedsExactlyOneOfSocketAndPort) {
    expect_error({}, "demo-worker", "exactly one of --socket PATH or --port N");
    expect_error({"--socket", "/s", "--port", "20001"}, "demo-worker", "exactly one");
}

// ---- CPU burning --------------------------------------------------------------------------

double thread_cpu_ms() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

TEST(BurnCpu, SpendsAtLeastTheRequestedThreadCpuTime) {
    const double before = thread_cpu_ms();
    burn_cpu_ms(30);
    EXPECT_GE(thread_cpu_ms() - before, 30.0);
}

// ---- serving -------------------------------------------------------------------------------

TEST(RunDemoWorker, ReturnsAnErrorStatusWhenItCannotListen) {
    DemoOptions opt;
    opt.rss_mb = 0;
    opt.socket_path = "/nonexistent/tunerd-test/demo.sock";
    EXPECT_EQ(run_demo_worker(opt), 71);
    opt.socket_path = "/tmp/" + std::string(200, 'x') + ".sock";  // longer than sun_path
    EXPECT_EQ(run_demo_worker(opt), 64);
}

struct Reply {
    int status = 0;
    std::string body;
    std::string content_type;
    std::string worker_id;
    std::string worker_pid;
    bool keep_alive = false;
};

// A tiny HTTP/1.1 client on one Unix-socket connection. Each step runs with a 30 s deadline,
// so a worker that never answers fails the test instead of hanging it.
class DemoClient {
public:
    explicit DemoClient(const std::string& socket_path) : socket_(ioc_) {
        const auto ec = run([&](auto done) {
            socket_.async_connect(asio::local::stream_protocol::endpoint(socket_path),
                                  [done](beast::error_code e) mutable { done(e, 0); });
        });
        if (ec) ADD_FAILURE() << "connect " << socket_path << ": " << ec.message();
    }

    std::optional<Reply> send(http::verb method, const std::string& target,
                              const std::string& body = "", const std::string& content_type = "",
                              bool keep_alive = true) {
        http::request<http::string_body> req{method, target, 11};
        req.set(http::field::host, "demo.test");
        if (!content_type.empty()) req.set(http::field::content_type, content_type);
        req.body() = body;
        req.keep_alive(keep_alive);
        req.prepare_payload();
        auto ec = run([&](auto done) { http::async_write(socket_, req, done); });
        if (ec) {
            ADD_FAILURE() << "write " << target << ": " << ec.message();
            return std::nullopt;
        }
        http::response<http::string_body> res;
        ec = run([&](auto done) { http::async_read(socket_, buffer_, res, done); });
        if (ec) {
            ADD_FAILURE() << "read " << target << ": " << ec.message();
            return std::nullopt;
        }
        Reply r;
        r.status = static_cast<int>(res.result_int());
        r.body = res.body();
        r.content_type = std::string(res[http::field::content_type]);
        r.worker_id = std::string(res["X-Worker-Id"]);
        r.worker_pid = std::string(res["X-Worker-Pid"]);
        r.keep_alive = res.keep_alive();
        return r;
    }

    std::optional<Reply> get(const std::string& target) { return send(http::verb::get, target); }

    // True when the worker closed the connection (end of stream on the next read).
    bool closed_by_peer() {
        char byte;
        const auto ec =
            run([&](auto done) { socket_.async_read_some(asio::buffer(&byte, 1), done); });
        return ec == asio::error::eof;
    }

private:
    // Starts one asynchronous operation with a completion handler and runs it to its end or
    // the deadline (then the socket is closed and the result is timed_out).
    template <typename Start>
    beast::error_code run(Start start) {
        beast::error_code result;
        bool finished = false;
        start([&result, &finished](beast::error_code ec, std::size_t) {
            result = ec;
            finished = true;
        });
        ioc_.restart();
        ioc_.run_for(std::chrono::seconds(30));
        if (finished) return result;
        beast::error_code ignored;
        socket_.close(ignored);
        ioc_.restart();
        ioc_.run();  // the cancelled operation completes
        return asio::error::timed_out;
    }

    asio::io_context ioc_;
    asio::local::stream_protocol::socket socket_;
    beast::flat_buffer buffer_;
};

// One demo worker (2 threads, 1 ms CPU and 2 ms I/O by default, worker id 7) in a forked child
// for the whole suite; it dies with the test process.
class DemoWorker : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new server::testing::ScratchDir;
        socket_path_ = dir_->path() + "/demo.sock";
        int log[2];
        ASSERT_EQ(::pipe2(log, O_CLOEXEC), 0);
        const pid_t parent = ::getpid();
        pid_ = ::fork();
        ASSERT_GE(pid_, 0);
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(0);
            ::dup2(log[1], 2);
            DemoOptions opt;
            opt.socket_path = socket_path_;
            opt.threads = 2;
            opt.cpu_ms = 1;
            opt.io_ms = 2;
            opt.rss_mb = 0;
            opt.worker_id = 7;
            ::_exit(run_demo_worker(opt));
        }
        ::close(log[1]);
        log_fd_ = log[0];
        // The worker says so once it listens: no polling for the socket.
        startup_line_ = server::testing::read_line(log_fd_);
    }

    static void TearDownTestSuite() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status;
            ::waitpid(pid_, &status, 0);
        }
        if (log_fd_ >= 0) ::close(log_fd_);
        delete dir_;
        dir_ = nullptr;
    }

    void SetUp() override {
        ASSERT_NE(startup_line_.find("listening on unix:" + socket_path_), std::string::npos)
            << "demo worker did not start: " << startup_line_;
    }

    static std::uint64_t rss_kb() {
        std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
        std::string key;
        while (status >> key) {
            if (key == "VmRSS:") {
                std::uint64_t kb = 0;
                status >> kb;
                return kb;
            }
        }
        return 0;
    }

    static inline server::testing::ScratchDir* dir_ = nullptr;
    static inline std::string socket_path_;
    static inline pid_t pid_ = -1;
    static inline int log_fd_ = -1;
    static inline std::string startup_line_;
};

TEST_F(DemoWorker, AnnouncesItsSettingsWhenListening) {
    EXPECT_NE(startup_line_.find("demo worker 7 pid " + std::to_string(pid_)), std::string::npos)
        << startup_line_;
    EXPECT_NE(startup_line_.find("threads=2 cpu_ms=1 io_ms=2 rss_mb=0"), std::string::npos)
        << startup_line_;
}

TEST_F(DemoWorker, TheRootDoesTheDefaultWork) {
    DemoClient client(socket_path_);
    const auto r = client.get("/");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body,
              "{\"worker\":7,\"pid\":" + std::to_string(pid_) + ",\"cpu_ms\":1,\"io_ms\":2}\n");
    EXPECT_EQ(r->content_type, "application/json");
    EXPECT_EQ(r->worker_id, "7");
    EXPECT_EQ(r->worker_pid, std::to_string(pid_));
}

TEST_F(DemoWorker, WorkTakesCpuAndIoFromTheQuery) {
    DemoClient client(socket_path_);
    auto r = client.get("/work?cpu_ms=3&io_ms=4");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_NE(r->body.find("\"cpu_ms\":3,\"io_ms\":4"), std::string::npos) << r->body;
    r = client.get("/work?io_ms=0&cpu_ms=nope");  // a bad value falls back to the default
    ASSERT_TRUE(r);
    EXPECT_NE(r->body.find("\"cpu_ms\":1,\"io_ms\":0"), std::string::npos) << r->body;
}

TEST_F(DemoWorker, RefusesMoreCpuOrMemoryThanTheCapsWith400) {
    // It serves the public port: anyone could ask for a minute of CPU or 64 GB of memory.
    DemoClient client(socket_path_);
    const std::uint64_t baseline_kb = rss_kb();
    for (const char* target : {"/work?cpu_ms=60000", "/work?cpu_ms=1001", "/?cpu_ms=5000",
                               "/work?cpu_ms=99999999999999999999"}) {
        const auto started = std::chrono::steady_clock::now();
        const auto r = client.get(target);
        ASSERT_TRUE(r) << target;
        EXPECT_EQ(r->status, 400) << target;
        EXPECT_EQ(r->body, "{\"error\":\"cpu_ms must be at most 1000\"}\n") << target;
        EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(500))
            << target << " burnt CPU before refusing";
    }
    for (const char* target : {"/rss?mb=65536", "/rss?mb=257", "/rss?mb=99999999999999999999"}) {
        const auto r = client.get(target);
        ASSERT_TRUE(r) << target;
        EXPECT_EQ(r->status, 400) << target;
        EXPECT_EQ(r->body, "{\"error\":\"mb must be at most 256\"}\n") << target;
    }
    EXPECT_LT(rss_kb(), baseline_kb + 16 * 1024);
    // The caps themselves are allowed.
    auto r = client.get("/work?cpu_ms=1000&io_ms=0");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    r = client.get("/rss?mb=256");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "{\"rss_mb\":256}\n");
    r = client.get("/rss?mb=0");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "{\"rss_mb\":0}\n");
}

TEST_F(DemoWorker, HealthAnswersOk) {
    DemoClient client(socket_path_);
    const auto r = client.get("/health");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "{\"status\":\"ok\"}\n");
}

TEST_F(DemoWorker, EchoReturnsTheBodyAndItsContentType) {
    DemoClient client(socket_path_);
    auto r = client.send(http::verb::post, "/echo", "hello, worker", "text/plain");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "hello, worker");
    EXPECT_EQ(r->content_type, "text/plain");
    r = client.send(http::verb::post, "/echo", std::string(100'000, 'z'));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, std::string(100'000, 'z'));
    EXPECT_EQ(r->content_type, "application/octet-stream");
}

TEST_F(DemoWorker, StatusAnswersWithTheCodeAsked) {
    DemoClient client(socket_path_);
    auto r = client.get("/status/418");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 418);
    EXPECT_EQ(r->body, "{\"status\":418}\n");
    r = client.get("/status/503");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);
    for (const char* bad : {"/status/abc", "/status/999", "/status/100"}) {
        r = client.get(bad);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 400) << bad;
    }
}

TEST_F(DemoWorker, RssGrowsAndShrinksTheResidentMemory) {
    DemoClient client(socket_path_);
    const std::uint64_t baseline_kb = rss_kb();
    ASSERT_GT(baseline_kb, 0u);
    auto r = client.get("/rss?mb=32");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "{\"rss_mb\":32}\n");
    // Every page is written, so all of it is resident at once.
    EXPECT_GE(rss_kb(), baseline_kb + 31 * 1024);
    r = client.get("/rss");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "{\"rss_mb\":32}\n");
    r = client.get("/rss?mb=0");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "{\"rss_mb\":0}\n");
    EXPECT_LT(rss_kb(), baseline_kb + 16 * 1024);
}

TEST_F(DemoWorker, AnUnknownPathIsNotFoundAndListsTheRoutes) {
    DemoClient client(socket_path_);
    const auto r = client.get("/nope");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
    EXPECT_NE(r->body.find("/work?cpu_ms=&io_ms="), std::string::npos) << r->body;
}

TEST_F(DemoWorker, KeepsTheConnectionAliveUntilTheClientClosesIt) {
    DemoClient client(socket_path_);
    for (int i = 0; i < 3; ++i) {
        const auto r = client.get("/health");
        ASSERT_TRUE(r);
        EXPECT_TRUE(r->keep_alive);
    }
    const auto last = client.send(http::verb::get, "/health", "", "", false);
    ASSERT_TRUE(last);
    EXPECT_FALSE(last->keep_alive);
    EXPECT_TRUE(client.closed_by_peer());
}

TEST_F(DemoWorker, ServesAsManyConnectionsAtOnceAsItHasThreads) {
    // Each thread serves one connection until it closes: with 2 threads, a second kept-alive
    // connection is served while the first is still open.
    DemoClient first(socket_path_);
    DemoClient second(socket_path_);
    const auto a = first.get("/health");
    const auto b = second.get("/health");
    ASSERT_TRUE(a);
    ASSERT_TRUE(b);
    EXPECT_EQ(a->status, 200);
    EXPECT_EQ(b->status, 200);
}

}  // namespace
}  // namespace tuner::demo
