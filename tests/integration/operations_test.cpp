// Operations over the real binary, with the test in systemd's place:
// * socket activation: the test opens the listening socket, passes it as fd 3 (LISTEN_PID,
//   LISTEN_FDS, LISTEN_FDNAMES), restarts tunerd on it under a client loop and counts what the
//   clients saw (no refused connection, a delay of about the new pool's start); a socket bound
//   elsewhere than its listener's address stops the start (78);
// * $NOTIFY_SOCKET: the test binds the manager's datagram socket (a path, and an abstract
//   address) and checks READY=1 after the first ready worker, STATUS=, RELOADING=1 with
//   MONOTONIC_USEC on SIGHUP then READY=1, STOPPING=1 on SIGTERM, and WATCHDOG=1 every
//   WATCHDOG_USEC/2 that stops while the control thread is stalled (the test hook) and resumes;
// * the status page: GET / without a token, its headers, no external asset, and every endpoint
//   it reads answering with the token. (The page rendered by headless Chromium under load:
//   status_page_browser_test.cpp.)
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <time.h>

#include "tests/support/tunerd_process.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// ---- a listening socket, as systemd's socket unit opens it ----------------------------------

int listening_socket(const char* address) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in in{};
    in.sin_family = AF_INET;
    ::inet_pton(AF_INET, address, &in.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&in), sizeof in) != 0 || ::listen(fd, 128) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

std::uint16_t port_of(int fd) {
    sockaddr_in in{};
    socklen_t len = sizeof in;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&in), &len);
    return ntohs(in.sin_port);
}

// One request on a fresh connection (Connection: close), as a client that does not reuse
// connections sees it.
struct Outcome {
    bool refused = false;     // ECONNREFUSED: nothing listened
    bool unanswered = false;  // connected, then closed without a byte of answer
    int status = 0;           // 0: an error (reset, timeout)
    Clock::time_point started, ended;
};

Outcome one_request(std::uint16_t port) {
    Outcome out;
    out.started = Clock::now();
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    const timeval timeout{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&in), sizeof in) != 0) {
        out.refused = errno == ECONNREFUSED;
        ::close(fd);
        out.ended = Clock::now();
        return out;
    }
    const std::string request =
        "GET /work?cpu_ms=1&io_ms=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    std::string got;
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
        char buf[4096];
        for (;;) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            got.append(buf, static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
    out.ended = Clock::now();
    out.unanswered = got.empty();
    if (got.rfind("HTTP/1.1 ", 0) == 0 && got.size() >= 12)
        out.status = std::stoi(got.substr(9, 3));
    return out;
}

TunerdOptions activated(int fd, const std::string& name) {
    TunerdOptions options;
    // Two I/O threads: the one acceptor hands adopted connections to both, as bound ones.
    options.config =
        "[server]\nio_threads = 2\n[workers]\nmode = \"fixed\"\ncount = 2\n[demo]\ncpu_ms = "
        "1\nio_ms = 5\n";
    options.env = {{"LISTEN_FDS", "1"}, {"LISTEN_FDNAMES", name}};
    options.passed_fds = {fd};
    options.pid_env = {"LISTEN_PID"};
    return options;
}

TEST(SocketActivation, RestartOnThePassedSocketRefusesNoConnection) {
    const int listener = listening_socket("127.0.0.1");
    ASSERT_GE(listener, 0) << std::strerror(errno);
    const std::uint16_t port = port_of(listener);
    auto first = std::make_unique<TunerdProcess>(activated(listener, "public"));
    ASSERT_TRUE(first->start().ok()) << first->log();
    EXPECT_EQ(first->public_address(), "127.0.0.1:" + std::to_string(port));
    EXPECT_NE(first->log().find("passed_by_systemd=public"), std::string::npos) << first->log();

    // Four clients, a fresh connection per request, until told to stop. A connection closed
    // before any answer is retried once, as a client (or nginx's proxy_next_upstream) does for
    // a request the server never read; those are counted apart.
    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::vector<Outcome> outcomes;
    int retried = 0;
    std::vector<std::thread> clients;
    for (int i = 0; i < 4; ++i) {
        clients.emplace_back([&] {
            while (!stop) {
                Outcome o = one_request(port);
                bool again = false;
                if (o.unanswered && !o.refused) {
                    const auto started = o.started;
                    o = one_request(port);
                    o.started = started;
                    again = true;
                }
                std::lock_guard lock(mutex);
                outcomes.push_back(o);
                retried += again;
            }
        });
    }
    std::this_thread::sleep_for(300ms);
    // systemctl restart: SIGTERM, wait for the exit, start again on the same sockets.
    const auto term_at = Clock::now();
    first->signal(SIGTERM);
    const auto first_exit = first->wait_exit(20s);
    const auto exited_at = Clock::now();
    auto second = std::make_unique<TunerdProcess>(activated(listener, "public"));
    const Status started = second->start();  // returns once a worker is ready
    const auto ready_at = Clock::now();
    std::this_thread::sleep_for(300ms);
    stop = true;
    for (auto& c : clients) c.join();
    ASSERT_TRUE(started.ok()) << second->log();
    EXPECT_EQ(first_exit, 0) << first->log();
    EXPECT_EQ(second->public_address(), "127.0.0.1:" + std::to_string(port));
    // The workers got neither the listening socket nor the variables that would claim it.
    struct stat st {};
    ASSERT_EQ(::fstat(listener, &st), 0);
    const std::string socket_link = "socket:[" + std::to_string(st.st_ino) + "]";
    const auto workers = second->ready_worker_pids();
    EXPECT_FALSE(workers.empty());
    for (const pid_t worker : workers) {
        std::ifstream environ("/proc/" + std::to_string(worker) + "/environ");
        const std::string env((std::istreambuf_iterator<char>(environ)), {});
        EXPECT_EQ(env.find("LISTEN_"), std::string::npos) << "worker " << worker;
        EXPECT_NE(env.find("TUNER_TEST_MARKER"), std::string::npos) << "worker " << worker;
        for (const auto& fd :
             std::filesystem::directory_iterator("/proc/" + std::to_string(worker) + "/fd")) {
            std::error_code ec;
            EXPECT_NE(std::filesystem::read_symlink(fd.path(), ec).string(), socket_link)
                << "worker " << worker << " holds the listener as " << fd.path();
        }
    }

    int refused = 0, failed = 0, ok = 0, after_restart = 0;
    double worst_ms = 0;
    for (const auto& o : outcomes) {
        refused += o.refused;
        if (!o.refused && o.status != 200) ++failed;
        if (o.status == 200) ++ok;
        if (o.status == 200 && o.started > exited_at) ++after_restart;
        worst_ms = std::max(worst_ms, ms_between(o.started, o.ended));
    }
    const double outage_ms = ms_between(term_at, ready_at);
    std::cout << "socket-activated restart: " << outcomes.size() << " requests, " << ok << " ok, "
              << refused << " refused, " << failed << " failed, " << retried
              << " retried after a close without answer; old tunerd exited after "
              << ms_between(term_at, exited_at) << " ms, new one ready "
              << ms_between(exited_at, ready_at) << " ms later; slowest request " << worst_ms
              << " ms\n";
    RecordProperty("restart_requests", static_cast<int>(outcomes.size()));
    RecordProperty("restart_worst_ms", static_cast<int>(worst_ms));
    RecordProperty("restart_outage_ms", static_cast<int>(outage_ms));
    EXPECT_EQ(refused, 0);
    EXPECT_EQ(failed, 0);
    EXPECT_GT(after_restart, 0) << "no request was served by the second tunerd";
    // A request waits at most for the old tunerd to finish and the new pool to start.
    EXPECT_LE(worst_ms, outage_ms + 500) << "outage " << outage_ms << " ms";
    ::close(listener);
}

TEST(SocketActivation, ASocketBoundElsewhereThanItsListenerStopsTheStart) {
    // admin.listen is 127.0.0.1:0; the socket named "admin" is on 127.0.0.2.
    const int elsewhere = listening_socket("127.0.0.2");
    ASSERT_GE(elsewhere, 0) << std::strerror(errno);
    {
        TunerdProcess tunerd(activated(elsewhere, "admin"));
        EXPECT_FALSE(tunerd.start().ok());
        EXPECT_EQ(tunerd.wait_exit(10s), 78);
        EXPECT_NE(tunerd.log().find("admin.listen"), std::string::npos) << tunerd.log();
        EXPECT_NE(tunerd.log().find("127.0.0.2:" + std::to_string(port_of(elsewhere))),
                  std::string::npos)
            << tunerd.log();
    }
    {
        // Named after its socket unit (systemd's default), and on neither address.
        TunerdProcess tunerd(activated(elsewhere, "tunerd.socket"));
        EXPECT_FALSE(tunerd.start().ok());
        EXPECT_EQ(tunerd.wait_exit(10s), 78);
        EXPECT_NE(tunerd.log().find("FileDescriptorName=public"), std::string::npos)
            << tunerd.log();
    }
    ::close(elsewhere);
}

// ---- the manager's side of $NOTIFY_SOCKET ---------------------------------------------------

struct Message {
    Clock::time_point at;
    std::string text;
    [[nodiscard]] bool has(std::string_view field) const {
        std::istringstream lines(text);
        for (std::string line; std::getline(lines, line);) {
            if (line == field || line.rfind(std::string(field), 0) == 0) return true;
        }
        return false;
    }
};

class NotifyListener {
public:
    // `address`: a path, or "@name" for an abstract address. `on_message` is called on the
    // receiving thread as each message arrives (before it is stored).
    explicit NotifyListener(const std::string& address,
                            std::function<void(const Message&)> on_message = {})
        : on_message_(std::move(on_message)) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un un{};
        un.sun_family = AF_UNIX;
        std::memcpy(un.sun_path, address.data(), address.size());
        if (address.front() == '@') un.sun_path[0] = '\0';
        const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() +
                                                (address.front() == '@' ? 0 : 1));
        bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&un), len) == 0;
        thread_ = std::thread([this] { receive(); });
    }
    ~NotifyListener() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    [[nodiscard]] bool bound() const { return bound_; }

    // The first message at or after `from` with `field`; its index, or -1 after `timeout`.
    int wait_for(std::string_view field, std::size_t from, std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        int found = -1;
        cv_.wait_for(lock, timeout, [&] {
            for (std::size_t i = from; i < messages_.size(); ++i) {
                if (messages_[i].has(field)) {
                    found = static_cast<int>(i);
                    return true;
                }
            }
            return false;
        });
        return found;
    }
    std::vector<Message> messages() const {
        std::lock_guard lock(mutex_);
        return messages_;
    }
    std::string dump() const {
        std::string out;
        for (const auto& m : messages()) out += "[" + m.text + "] ";
        return out;
    }

private:
    void receive() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 20) <= 0) continue;
            char buf[4096];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) continue;
            Message m{Clock::now(), std::string(buf, static_cast<std::size_t>(n))};
            if (on_message_) on_message_(m);
            {
                std::lock_guard lock(mutex_);
                messages_.push_back(std::move(m));
            }
            cv_.notify_all();
        }
    }

    std::function<void(const Message&)> on_message_;
    int fd_ = -1;
    bool bound_ = false;
    std::atomic<bool> stop_{false};
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<Message> messages_;
    std::thread thread_;
};

std::string admin_address_from(const std::string& state_dir) {
    std::ifstream in(state_dir + "/listen.json");
    std::stringstream ss;
    ss << in.rdbuf();
    const auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    return j.is_object() && j.contains("admin") ? j["admin"].get<std::string>() : "";
}

std::vector<Clock::time_point> pings(const NotifyListener& listener, Clock::time_point from,
                                     Clock::time_point to) {
    std::vector<Clock::time_point> out;
    for (const auto& m : listener.messages()) {
        if (m.has("WATCHDOG=1") && m.at >= from && m.at < to) out.push_back(m.at);
    }
    return out;
}

double longest_gap_ms(const std::vector<Clock::time_point>& times) {
    double gap = 0;
    for (std::size_t i = 1; i < times.size(); ++i)
        gap = std::max(gap, ms_between(times[i - 1], times[i]));
    return gap;
}

std::uint64_t monotonic_usec() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

// Workers that take 300 ms to start: READY=1 sent at start, not at the first ready worker,
// would find none ready.
std::string slow_demo_workers() {
    return std::string("[workers]\nmode = \"fixed\"\ncount = 2\ncommand = [\"/bin/sh\", \"-c\", ") +
           "\"sleep 0.3; exec \\\"$0\\\" demo-worker --socket \\\"$1\\\" --worker-id 1\", \"" +
           TUNERD_BINARY + "\", \"{socket}\"]\n";
}

TEST(Notify, ReadyStatusReloadStopAndAWatchdogFedOnlyWhileTheControlLoopTurns) {
    TempDir dir("tunerd-notify");
    const std::string socket_path = dir.path() + "/notify.sock";
    constexpr auto kWatchdog = 400ms;  // pings every 200 ms
    constexpr auto kStall = 1000ms;
    TunerdOptions options;
    options.config = slow_demo_workers();
    options.env = {{"NOTIFY_SOCKET", socket_path},
                   {"WATCHDOG_USEC", std::to_string(kWatchdog.count() * 1000)},
                   {"TUNERD_TEST_HOOKS", "1"},
                   {"TUNERD_TEST_STALL_CONTROL_MS", std::to_string(kStall.count())}};
    options.pid_env = {"WATCHDOG_PID"};
    options.wait_ready = false;
    TunerdProcess tunerd(options);
    // What the pool looked like at the moment READY=1 arrived.
    std::atomic<int> ready_at_ready{-1};
    const std::string state_dir = tunerd.state_dir();
    NotifyListener manager(socket_path, [&](const Message& m) {
        if (!m.has("READY=1") || ready_at_ready >= 0) return;
        auto workers = http_get(admin_address_from(state_dir), "/workers", 5s);
        const auto j =
            workers ? nlohmann::json::parse(workers->body, nullptr, false) : nlohmann::json();
        ready_at_ready = j.is_object() && j["ready"].is_number() ? j["ready"].get<int>() : -2;
    });
    ASSERT_TRUE(manager.bound()) << std::strerror(errno);
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();

    const int ready = manager.wait_for("READY=1", 0, 10s);
    ASSERT_GE(ready, 0) << manager.dump() << tunerd.log();
    const auto messages = manager.messages();
    EXPECT_GE(ready_at_ready.load(), 1) << "READY=1 before a worker was ready";
    EXPECT_TRUE(messages[ready].has("STATUS=serving: ")) << messages[ready].text;
    EXPECT_GE(manager.wait_for("STATUS=starting 2 workers", 0, 0ms), 0) << manager.dump();
    const auto ready_time = messages[ready].at;

    // Pings at about WATCHDOG_USEC / 2.
    std::this_thread::sleep_for(500ms);
    const auto before = pings(manager, ready_time, Clock::now());
    EXPECT_GE(before.size(), 2u) << manager.dump();
    EXPECT_LT(longest_gap_ms(before), 450) << manager.dump();  // one late tick at most

    // The control thread stalls (the test hook, on an on-demand cycle): the I/O thread still
    // turns, but the pings stop until the control thread is back.
    const auto stall_start = Clock::now();
    auto optimize = std::async(std::launch::async, [&] {
        return tunerd.admin_request(
            {"POST", "/performance/optimize", "{}", {{"Content-Type", "application/json"}}});
    });
    const auto answered = optimize.get();
    const auto stall_end = Clock::now();
    EXPECT_TRUE(answered && answered->status == 200) << tunerd.log();
    std::this_thread::sleep_for(500ms);
    const auto during = pings(manager, stall_start, stall_end);
    const auto after = pings(manager, stall_end, Clock::now());
    const double gap = longest_gap_ms(pings(manager, ready_time, Clock::now()));
    std::cout << "watchdog: " << before.size() << " pings in the 500 ms before the stall, "
              << during.size() << " during the " << ms_between(stall_start, stall_end)
              << " ms stall, " << after.size() << " in the 500 ms after; longest gap " << gap
              << " ms\n";
    EXPECT_GE(gap, 700) << "pings went on while the control thread was stuck";
    EXPECT_LE(during.size(), 2u);
    EXPECT_GE(after.size(), 2u) << "pings did not resume";
    EXPECT_NE(tunerd.log().find("event=watchdog_withheld"), std::string::npos);
    EXPECT_NE(tunerd.log().find("event=watchdog_resumed"), std::string::npos);

    // SIGHUP: RELOADING=1 with the time, then READY=1.
    std::size_t next = manager.messages().size();
    const std::uint64_t hup_usec = monotonic_usec();
    tunerd.signal(SIGHUP);
    const int reloading = manager.wait_for("RELOADING=1", next, 5s);
    ASSERT_GE(reloading, 0) << manager.dump();
    const std::string text = manager.messages()[reloading].text;
    const auto at = text.find("MONOTONIC_USEC=");
    ASSERT_NE(at, std::string::npos) << text;
    const std::uint64_t usec = std::stoull(text.substr(at + 15));
    EXPECT_GE(usec, hup_usec);
    EXPECT_LT(usec - hup_usec, 5'000'000u);
    EXPECT_GE(manager.wait_for("READY=1", reloading + 1, 5s), 0) << manager.dump();

    // SIGTERM: STOPPING=1, then a clean exit.
    next = manager.messages().size();
    tunerd.signal(SIGTERM);
    EXPECT_GE(manager.wait_for("STOPPING=1", next, 5s), 0) << manager.dump();
    EXPECT_EQ(tunerd.wait_exit(10s), 0) << tunerd.log();
}

TEST(Notify, AnAbstractNotifySocket) {
    const std::string address = "@tunerd-test-notify-" + std::to_string(::getpid());
    NotifyListener manager(address);
    ASSERT_TRUE(manager.bound()) << std::strerror(errno);
    TunerdOptions options;
    options.config = "[workers]\nmode = \"fixed\"\ncount = 1\n";
    options.env = {{"NOTIFY_SOCKET", address}};
    options.wait_ready = false;
    TunerdProcess tunerd(options);
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    EXPECT_GE(manager.wait_for("READY=1", 0, 10s), 0) << manager.dump() << tunerd.log();
    tunerd.signal(SIGTERM);
    EXPECT_GE(manager.wait_for("STOPPING=1", 0, 5s), 0) << manager.dump();
    EXPECT_EQ(tunerd.wait_exit(10s), 0) << tunerd.log();
}

// ---- the status page --------------------------------------------------------------------------

TEST(StatusPage, ASelfContainedPageWhoseEndpointsAnswerWithTheToken) {
    TempDir dir("tunerd-page");
    const std::string token_file = dir.path() + "/admin.token";
    std::ofstream(token_file) << "page-token\n";
    TunerdOptions options;
    options.config =
        "[workers]\nmode = \"fixed\"\ncount = 1\n[admin]\ntoken_file = \"" + token_file + "\"\n";
    options.admin_token = "page-token";
    TunerdProcess tunerd(options);
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();

    // The page itself holds no data: served without the token.
    auto page = http_get(tunerd.admin_address(), "/", 5s);
    ASSERT_TRUE(page) << page.error().to_string();
    ASSERT_EQ(page->status, 200) << page->body;
    EXPECT_EQ(page->header("content-type"), "text/html; charset=utf-8");
    const std::string csp = page->header("content-security-policy");
    EXPECT_EQ(csp.rfind("default-src 'none'; ", 0), 0u) << csp;
    EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("unsafe"), std::string::npos) << csp;
    EXPECT_EQ(page->header("x-frame-options"), "DENY");
    EXPECT_EQ(page->header("x-content-type-options"), "nosniff");
    EXPECT_EQ(page->header("cache-control"), "no-store");
    EXPECT_LT(page->body.size(), 16u * 1024);
    // The script and the style carry the nonce that the policy names (a fresh one each time).
    std::smatch nonce;
    ASSERT_TRUE(std::regex_search(csp, nonce, std::regex("script-src 'nonce-([0-9a-f]{32})'")));
    EXPECT_NE(page->body.find("<script nonce=\"" + nonce[1].str() + "\">"), std::string::npos);
    EXPECT_NE(page->body.find("<style nonce=\"" + nonce[1].str() + "\">"), std::string::npos);
    auto again = http_get(tunerd.admin_address(), "/", 5s);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->header("content-security-policy").find(nonce[1].str()), std::string::npos);
    // No external load: the only absolute URL is the SVG namespace name, which is never fetched.
    const std::regex url("[a-z]+://[^'\" )<>]*");
    for (auto it = std::sregex_iterator(page->body.begin(), page->body.end(), url);
         it != std::sregex_iterator(); ++it) {
        EXPECT_EQ(it->str(), "http://www.w3.org/2000/svg") << "an absolute URL in the page";
    }
    EXPECT_EQ(page->body.find("url("), std::string::npos);
    EXPECT_EQ(page->body.find("@import"), std::string::npos);
    EXPECT_EQ(page->body.find(" src="), std::string::npos);
    EXPECT_EQ(page->body.find(" href="), std::string::npos);

    // Every endpoint the page reads: 401 without the token, 200 and JSON with it.
    std::set<std::string> endpoints;
    const std::regex path("'(/[a-z_/]+)'");
    for (auto it = std::sregex_iterator(page->body.begin(), page->body.end(), path);
         it != std::sregex_iterator(); ++it) {
        endpoints.insert((*it)[1].str());
    }
    EXPECT_TRUE(endpoints.contains("/performance")) << page->body;
    for (const auto& endpoint : endpoints) {
        auto without = http_get(tunerd.admin_address(), endpoint, 5s);
        ASSERT_TRUE(without);
        EXPECT_EQ(without->status, 401) << endpoint;
        auto with = tunerd.admin_request({"GET", endpoint, {}, {}});
        ASSERT_TRUE(with) << endpoint;
        EXPECT_EQ(with->status, 200) << endpoint << ": " << with->body;
        EXPECT_FALSE(nlohmann::json::parse(with->body, nullptr, false).is_discarded()) << endpoint;
    }
    // The values the page shows are there: workers.ready and target, latency, limits.
    auto perf = tunerd.admin_json("/performance");
    ASSERT_TRUE(perf);
    for (const char* pointer :
         {"/workers/ready", "/workers/target", "/latency/rate_rps", "/latency/total/p99_ms",
          "/latency/queue_wait/p95_ms", "/limits/memory/working_set_bytes",
          "/limits/memory/limit_bytes", "/limits/cpu/effective_cores", "/decisions"}) {
        EXPECT_TRUE(perf->contains(nlohmann::json::json_pointer(pointer))) << pointer;
    }
}

}  // namespace
}  // namespace tuner::test
