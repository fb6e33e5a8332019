// The walking skeleton end to end: the real tunerd binary on port-0 listeners, the
// built-in demo app as workers, real HTTP traffic.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "tests/support/load_generator.hpp"
#include "tests/support/tunerd_process.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;

// A pool of a known size: fixed mode so the controller does not resize under the test.
std::string fixed_pool(unsigned workers, unsigned threads = 1,
                       const std::string& extra_workers = "") {
    return "[workers]\nmode = \"fixed\"\ncount = " + std::to_string(workers) +
           "\nthreads = " + std::to_string(threads) + "\n" + extra_workers + "\n";
}

TEST(Foundation, ServesTwoThousandRequestsAtConcurrency32AllOk) {
    // 4 workers of 8 threads: a slot for each of the 32 clients.
    TunerdProcess tunerd({.config = fixed_pool(4, 8) + "[demo]\ncpu_ms = 0\nio_ms = 5\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    auto result =
        run_load({.address = tunerd.public_address(), .target = "/", .connections = 32}, 2000);
    EXPECT_EQ(result.sent, 2000u) << result.summary();
    EXPECT_EQ(result.ok_2xx, 2000u) << result.summary();
    EXPECT_EQ(result.client_errors, 0u) << result.summary();
    // The front saw them all too: a control cycle now, so /performance holds the whole run.
    auto optimized = tunerd.admin_request(
        {"POST", "/performance/optimize", {}, {{"Content-Type", "application/json"}}});
    ASSERT_TRUE(optimized.ok());
    auto perf = tunerd.admin_json("/performance");
    ASSERT_TRUE(perf.ok());
    EXPECT_EQ((*perf)["latency"]["codes"].value("200", std::uint64_t{0}), 2000u)
        << (*perf)["latency"].dump(2);
}

TEST(Foundation, SeveralIoThreadsServeAllRequestsAndDrainCleanly) {
    // server.io_threads = 3: connections are spread over three I/O threads sharing one pool.
    TunerdProcess tunerd(
        {.config = fixed_pool(3) + "[server]\nio_threads = 3\n[demo]\ncpu_ms = 0\nio_ms = 2\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    auto result =
        run_load({.address = tunerd.public_address(), .target = "/", .connections = 32}, 3000);
    EXPECT_EQ(result.ok_2xx, 3000u) << result.summary();
    // A reload reaches every thread's next request; the pool still serves.
    tunerd.signal(SIGHUP);
    auto after =
        run_load({.address = tunerd.public_address(), .target = "/", .connections = 8}, 200);
    EXPECT_EQ(after.ok_2xx, 200u) << after.summary();
    // Under load, SIGTERM drains what each thread holds and exits 0.
    LoadGenerator load({.address = tunerd.public_address(),
                        .target = "/work?cpu_ms=0&io_ms=50",
                        .connections = 12,
                        .max_duration = 30s});
    load.start();
    std::this_thread::sleep_for(500ms);
    tunerd.signal(SIGTERM);
    const auto status = tunerd.wait_exit(30s);
    const auto drained = load.stop();
    ASSERT_TRUE(status.has_value()) << tunerd.log();
    EXPECT_EQ(*status, 0) << tunerd.log();
    EXPECT_GT(drained.ok_2xx, 0u);
    EXPECT_EQ(drained.non_2xx(), 0u) << drained.summary();
    EXPECT_TRUE(wait_no_marker_processes(tunerd.marker(), 5s).empty());
}

TEST(Foundation, KilledWorkerIsReplacedAndHealthShowsAllReady) {
    TunerdProcess tunerd({.config = fixed_pool(3)});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const auto pids = tunerd.ready_worker_pids();
    ASSERT_EQ(pids.size(), 3u);
    ASSERT_EQ(::kill(pids.front(), SIGKILL), 0);
    // The dead one leaves the ready set, then a new one joins (1 s backoff).
    const bool replaced = tunerd.wait_workers(
        [&](const nlohmann::json& w) {
            if (w["ready"] != 3) return false;
            for (const auto& worker : w["workers"]) {
                if (worker["pid"] == pids.front()) return false;
            }
            return true;
        },
        20s);
    ASSERT_TRUE(replaced) << tunerd.log();
    auto health = tunerd.admin_json("/health");
    ASSERT_TRUE(health.ok());
    EXPECT_EQ((*health)["workers"]["ready"], 3);
    EXPECT_EQ((*health)["workers"]["crashes_total"], 1);
    EXPECT_NE((*health)["workers"]["last_crash"]["exit"].get<std::string>().find("SIGKILL"),
              std::string::npos);
    // One crash is not a crash loop.
    EXPECT_EQ((*health)["status"], "ok") << health->dump(2);
}

TEST(Foundation, FullQueueAnswers503WithRetryAfter) {
    // One worker, one thread, one queue place: the third concurrent request has nowhere to go.
    TunerdProcess tunerd(
        {.config = fixed_pool(1) + "[server]\nmax_queue = 1\n[demo]\ncpu_ms = 0\nio_ms = 1500\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    std::vector<std::thread> slow;
    std::vector<int> statuses(2, 0);
    for (int i = 0; i < 2; ++i) {
        slow.emplace_back([&, i] {
            auto r = tunerd.get("/");
            statuses[i] = r ? r->status : -1;
        });
        std::this_thread::sleep_for(
            200ms);  // in order: the first takes the worker, the second queues
    }
    auto rejected = tunerd.get("/work?io_ms=0");
    for (auto& t : slow) t.join();
    ASSERT_TRUE(rejected.ok()) << rejected.error().to_string();
    EXPECT_EQ(rejected->status, 503);
    EXPECT_FALSE(rejected->header("retry-after").empty());
    EXPECT_EQ(statuses[0], 200);
    EXPECT_EQ(statuses[1], 200);
}

TEST(Foundation, QueueTimeoutAnswers503) {
    TunerdProcess tunerd({.config = fixed_pool(1) + "[server]\nqueue_timeout = \"300ms\"\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    std::thread busy([&] { (void)tunerd.get("/work?cpu_ms=0&io_ms=1500"); });
    std::this_thread::sleep_for(200ms);
    auto r = tunerd.get("/work?io_ms=0");
    busy.join();
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 503);
    EXPECT_NE(r->body.find("within 300ms"), std::string::npos) << r->body;
    EXPECT_FALSE(r->header("retry-after").empty());
}

TEST(Foundation, HangingWorkerGives504) {
    TunerdProcess tunerd({.config = fixed_pool(2) + "[server]\nrequest_timeout = \"1s\"\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const auto t0 = std::chrono::steady_clock::now();
    auto r = tunerd.get("/work?cpu_ms=0&io_ms=10000");
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->status, 504);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 8s);
    // The pool still serves.
    auto ok = tunerd.get("/work?cpu_ms=0&io_ms=0");
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(ok->status, 200);
}

TEST(Foundation, OversizedHeaderGives431AndMalformedGives400) {
    TunerdProcess tunerd({.config = fixed_pool(1)});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    // 64 KB of header, sent raw: the test client library itself refuses such fields.
    std::string request = "GET / HTTP/1.1\r\nHost: test\r\n";
    for (int i = 0; i < 4; ++i)
        request += "X-Big-" + std::to_string(i) + ": " + std::string(16 * 1024, 'a') + "\r\n";
    request += "\r\n";
    auto big = raw_exchange(tunerd.public_address(), request);
    ASSERT_TRUE(big.ok()) << big.error().to_string();
    EXPECT_EQ(big->rfind("HTTP/1.1 431", 0), 0u) << big->substr(0, 200);

    auto raw = raw_exchange(tunerd.public_address(), "THIS IS NOT HTTP\r\n\r\n");
    ASSERT_TRUE(raw.ok());
    EXPECT_EQ(raw->rfind("HTTP/1.1 400", 0), 0u) << *raw;
}

TEST(Foundation, OversizedBodyGives413) {
    TunerdProcess tunerd({.config = fixed_pool(1) + "[server]\nmax_body_size = \"1KB\"\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    auto r = http_request(tunerd.public_address(), {"POST", "/echo", std::string(4096, 'x'), {}});
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->status, 413);
    auto small =
        http_request(tunerd.public_address(), {"POST", "/echo", std::string(512, 'y'), {}});
    ASSERT_TRUE(small.ok());
    EXPECT_EQ(small->status, 200);
    EXPECT_EQ(small->body, std::string(512, 'y'));
}

TEST(Foundation, StreamsLargeBodiesBothWaysAndAddsForwardedFor) {
    TunerdProcess tunerd({.config = fixed_pool(1) + "[server]\nmax_body_size = \"32MB\"\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    std::string body(8 * 1024 * 1024, '\0');
    for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
    auto r = http_request(tunerd.public_address(),
                          {"POST", "/echo", body, {{"Content-Type", "text/plain"}}});
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body.size(), body.size());
    EXPECT_TRUE(r->body == body);
    // Hop-by-hop headers of the worker do not reach the client.
    EXPECT_EQ(r->header("keep-alive"), "");
}

TEST(Foundation, SigtermDrainsQueuedAndInFlightThenExitsCleanly) {
    TunerdProcess tunerd({.config = fixed_pool(2) + "[demo]\ncpu_ms = 0\nio_ms = 300\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    // 8 clients on 2 workers: 2 in flight, 6 queued when the signal comes.
    std::vector<std::thread> clients;
    std::vector<int> statuses(8, 0);
    for (int i = 0; i < 8; ++i) {
        clients.emplace_back([&, i] {
            auto r = tunerd.get("/");
            statuses[i] = r ? r->status : -1;
        });
    }
    std::this_thread::sleep_for(150ms);
    tunerd.signal(SIGTERM);
    for (auto& t : clients) t.join();
    for (int i = 0; i < 8; ++i)
        EXPECT_EQ(statuses[i], 200) << "client " << i << "\n" << tunerd.log();
    const auto status = tunerd.wait_exit(30s);
    ASSERT_TRUE(status.has_value()) << tunerd.log();
    EXPECT_EQ(*status, 0) << tunerd.log();
    EXPECT_TRUE(wait_no_marker_processes(tunerd.marker(), 5s).empty());
    // Once stopping, it no longer accepts.
    EXPECT_FALSE(http_get(tunerd.public_address(), "/", 2s).ok());
}

TEST(Foundation, KillNineOfTunerdLeavesNoWorkerBehind) {
    TunerdProcess tunerd({.config = fixed_pool(3)});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    ASSERT_GE(processes_with_marker(tunerd.marker()).size(), 4u);  // tunerd + 3 workers
    tunerd.signal(SIGKILL);
    ASSERT_TRUE(tunerd.wait_exit(10s).has_value());
    const auto left = wait_no_marker_processes(tunerd.marker(), 10s);
    EXPECT_TRUE(left.empty()) << left.size() << " processes survived tunerd";
}

TEST(Foundation, SecondSignalStopsAtOnce) {
    TunerdProcess tunerd(
        {.config = fixed_pool(1) +
                   "[demo]\ncpu_ms = 0\nio_ms = 20000\n[server]\nshutdown_timeout = \"60s\"\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    std::thread client([&] { (void)http_get(tunerd.public_address(), "/", 30s); });
    std::this_thread::sleep_for(300ms);
    tunerd.signal(SIGTERM);
    std::this_thread::sleep_for(300ms);
    tunerd.signal(SIGINT);
    const auto status = tunerd.wait_exit(10s);
    client.join();
    ASSERT_TRUE(status.has_value()) << tunerd.log();
    EXPECT_EQ(*status, 0) << tunerd.log();
    EXPECT_TRUE(wait_no_marker_processes(tunerd.marker(), 5s).empty());
}

TEST(Foundation, BadConfigExits78NamingKeyAndLine) {
    TempDir dir;
    const std::string path = dir.path() + "/bad.toml";
    {
        std::ofstream out(path);
        out << "[server]\nlisten = \"127.0.0.1:0\"\n\n[workers]\nmax_requets = "
               "5\nmemory_per_worker = \"12XB\"\n";
    }
    auto r = run_command({TUNERD_BINARY, "--config", path});
    EXPECT_EQ(r.exit_status, 78) << r.output;
    EXPECT_NE(r.output.find("bad.toml:5"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("workers.max_requets"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("bad.toml:6"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("workers.memory_per_worker"), std::string::npos) << r.output;

    auto check = run_command({TUNERD_BINARY, "--check-config", "--config", path});
    EXPECT_EQ(check.exit_status, 78);
}

TEST(Foundation, CheckConfigPrintsTheEffectiveConfig) {
    auto r = run_command(
        {TUNERD_BINARY, "--check-config", "--config", TUNER_SOURCE_DIR "/etc/tunerd.toml"});
    EXPECT_EQ(r.exit_status, 0) << r.output;
    EXPECT_NE(r.output.find("listen = \"127.0.0.1:8080\""), std::string::npos) << r.output;
    auto version = run_command({TUNERD_BINARY, "--version"});
    EXPECT_EQ(version.exit_status, 0);
    EXPECT_EQ(version.output.rfind("tunerd ", 0), 0u);
    auto usage = run_command({TUNERD_BINARY, "--no-such-flag"});
    EXPECT_EQ(usage.exit_status, 64);
}

TEST(Foundation, EveryExampleConfigIsValid) {
    // The files users copy (README, docs/operations.md): a key renamed or a range narrowed must
    // not leave them broken.
    int checked = 0;
    for (const auto& entry :
         std::filesystem::directory_iterator(TUNER_SOURCE_DIR "/etc/examples")) {
        if (entry.path().extension() != ".toml") continue;
        ++checked;
        auto r = run_command({TUNERD_BINARY, "--check-config", "--config", entry.path().string()});
        EXPECT_EQ(r.exit_status, 0) << entry.path() << ":\n" << r.output;
        EXPECT_NE(r.output.find(": valid"), std::string::npos) << r.output;
    }
    EXPECT_GE(checked, 2) << "etc/examples holds flask.toml and node.toml";
}

TEST(Foundation, VersionNamesTheRevisionTheBinaryWasBuiltFrom) {
    // make test builds before it tests: the binary is of the source tree's HEAD, whatever the
    // last configure saw.
    const auto head = run_command({"git", "-C", TUNER_SOURCE_DIR, "rev-parse", "--short", "HEAD"});
    if (head.exit_status != 0) GTEST_SKIP() << "not a git checkout: " << head.output;
    const std::string revision = head.output.substr(0, head.output.find_first_of("\r\n"));
    const auto version = run_command({TUNERD_BINARY, "--version"});
    EXPECT_NE(version.output.find("(" + revision + ","), std::string::npos)
        << version.output << " (HEAD is " << revision << ")";
}

TEST(Foundation, AddressInUseExits71) {
    // Hold a port, then ask tunerd to listen on it.
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor holder(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    const auto port = holder.local_endpoint().port();
    TempDir dir;
    const std::string path = dir.path() + "/busy.toml";
    {
        std::ofstream out(path);
        out << "[server]\nlisten = \"127.0.0.1:" << port
            << "\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[state]\ndir = \"" << dir.path()
            << "/state\"\n";
    }
    auto r = run_command({TUNERD_BINARY, "--config", path}, {}, std::chrono::seconds(30));
    EXPECT_EQ(r.exit_status, 71) << r.output;
    EXPECT_NE(r.output.find("in use"), std::string::npos) << r.output;
}

TEST(Foundation, WorkerThatNeverStartsExits69) {
    auto config =
        std::string("[workers]\nmode = \"fixed\"\ncount = 1\ncommand = [\"/bin/false\"]\n") +
        "startup_timeout = \"1s\"\n";
    TunerdProcess tunerd({.config = config, .wait_ready = false});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const auto status = tunerd.wait_exit(30s);
    ASSERT_TRUE(status.has_value()) << tunerd.log();
    EXPECT_EQ(*status, 69) << tunerd.log();
}

// The harness fails a test whose tunerd log holds a sanitizer report (tunerd's own stderr, or a
// worker's, which tunerd logs line by line): make test-asan must not pass over one.
TEST(Foundation, HarnessFailsTheTestOnASanitizerReportInTheLog) {
    EXPECT_NONFATAL_FAILURE(
        {
            const std::string config =
                "[workers]\nmode = \"fixed\"\ncount = 1\nstartup_timeout = \"30s\"\n"
                "command = [\"/bin/sh\", \"-c\", "
                "\"echo 'x.cpp:1:1: runtime error: made up for the test' >&2; exec sleep 30\"]\n";
            TunerdProcess tunerd({.config = config, .wait_ready = false});
            ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
            for (int i = 0; i < 200 && tunerd.log().find("made up") == std::string::npos; ++i)
                std::this_thread::sleep_for(50ms);
        },
        "sanitizer report in tunerd's log");
}

// The same for ThreadSanitizer (make test-tsan): with halt_on_error the process that raced is
// gone after its report, which a test of behaviour alone might not notice.
TEST(Foundation, HarnessFailsTheTestOnAThreadSanitizerReportInTheLog) {
    EXPECT_NONFATAL_FAILURE(
        {
            const std::string config =
                "[workers]\nmode = \"fixed\"\ncount = 1\nstartup_timeout = \"30s\"\n"
                "command = [\"/bin/sh\", \"-c\", "
                "\"echo 'WARNING: ThreadSanitizer: data race (made up for the test)' >&2; "
                "exec sleep 30\"]\n";
            TunerdProcess tunerd({.config = config, .wait_ready = false});
            ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
            for (int i = 0; i < 200 && tunerd.log().find("made up") == std::string::npos; ++i)
                std::this_thread::sleep_for(50ms);
        },
        "sanitizer report in tunerd's log");
}

TEST(Foundation, ListenFileNamesBoundAddressesAndHealthReportsLimits) {
    TunerdProcess tunerd({.config = fixed_pool(1)});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    EXPECT_NE(tunerd.public_address().find("127.0.0.1:"), std::string::npos);
    EXPECT_NE(tunerd.public_address(), "127.0.0.1:0");
    auto health = tunerd.admin_request({"GET", "/health", {}, {}});
    ASSERT_TRUE(health.ok());
    EXPECT_EQ(health->status, 200) << health->body;
    const auto j = nlohmann::json::parse(health->body);
    EXPECT_EQ(j["status"], "ok");
    EXPECT_GE(j["limits"]["cpu"]["effective_cores"].get<int>(), 1);
    EXPECT_GT(j["limits"]["memory"]["limit_bytes"].get<std::uint64_t>(), 0u);
    // Unknown admin paths and wrong methods get clear errors.
    auto missing = tunerd.admin_request({"GET", "/nope", {}, {}});
    ASSERT_TRUE(missing.ok());
    EXPECT_EQ(missing->status, 404);
    auto wrong = tunerd.admin_request({"PUT", "/health", {}, {}});
    ASSERT_TRUE(wrong.ok());
    EXPECT_EQ(wrong->status, 405);
}

}  // namespace
}  // namespace tuner::test
