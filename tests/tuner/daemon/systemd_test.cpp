// systemd's protocols as tunerd reads them: LISTEN_* (whose pid, how many, which names), the
// watchdog variables, NOTIFY_SOCKET addresses (a path, an abstract "@name"), the checks on a
// passed descriptor (over real sockets), matching passed sockets to the two listeners, and the
// notifier sending to a bound datagram socket.
#include "tuner/daemon/systemd.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include "tests/support/temp_dir.hpp"

namespace tuner::systemd {
namespace {

using boost::asio::ip::make_address;
using tcp = boost::asio::ip::tcp;
using namespace std::chrono_literals;

TEST(ListenFds, NoneWithoutTheVariablesOrForAnotherProcess) {
    EXPECT_TRUE(parse_listen_fds(std::nullopt, std::nullopt, std::nullopt, 42)->empty());
    EXPECT_TRUE(parse_listen_fds("42", std::nullopt, std::nullopt, 42)->empty());
    // Inherited from a parent that was socket-activated: not ours.
    EXPECT_TRUE(parse_listen_fds("41", "2", "public:admin", 42)->empty());
}

TEST(ListenFds, DescriptorsFromThreeWithTheirNames) {
    auto fds = parse_listen_fds("42", "2", "public:admin", 42);
    ASSERT_TRUE(fds) << fds.error().to_string();
    ASSERT_EQ(fds->size(), 2u);
    EXPECT_EQ((*fds)[0].fd, 3);
    EXPECT_EQ((*fds)[0].name, "public");
    EXPECT_EQ((*fds)[1].fd, 4);
    EXPECT_EQ((*fds)[1].name, "admin");
    auto unnamed = parse_listen_fds("42", "1", std::nullopt, 42);
    ASSERT_TRUE(unnamed);
    EXPECT_EQ((*unnamed)[0].name, "");
    EXPECT_TRUE(parse_listen_fds("42", "0", std::nullopt, 42)->empty());
}

TEST(ListenFds, MalformedValuesNameTheVariable) {
    EXPECT_EQ(parse_listen_fds("x", "1", std::nullopt, 42).error().where, "LISTEN_PID");
    EXPECT_EQ(parse_listen_fds("0", "1", std::nullopt, 42).error().where, "LISTEN_PID");
    EXPECT_EQ(parse_listen_fds("42", "-1", std::nullopt, 42).error().where, "LISTEN_FDS");
    EXPECT_EQ(parse_listen_fds("42", "2x", std::nullopt, 42).error().where, "LISTEN_FDS");
    EXPECT_EQ(parse_listen_fds("42", "17", std::nullopt, 42).error().where, "LISTEN_FDS");
    EXPECT_EQ(parse_listen_fds("42", "2", "public", 42).error().where, "LISTEN_FDNAMES");
    EXPECT_EQ(parse_listen_fds("42", "1", "a:b", 42).error().where, "LISTEN_FDNAMES");
}

TEST(Watchdog, UsecForThisProcessOnly) {
    EXPECT_FALSE(parse_watchdog(std::nullopt, std::nullopt, 42)->has_value());
    EXPECT_EQ(parse_watchdog("30000000", std::nullopt, 42)->value(), 30s);
    EXPECT_EQ(parse_watchdog("400000", "42", 42)->value(), 400ms);
    EXPECT_FALSE(parse_watchdog("400000", "41", 42)->has_value());
    EXPECT_FALSE(parse_watchdog("0", std::nullopt, 42)->has_value());
    EXPECT_EQ(parse_watchdog("soon", std::nullopt, 42).error().where, "WATCHDOG_USEC");
    EXPECT_EQ(parse_watchdog("999", std::nullopt, 42).error().where, "WATCHDOG_USEC");
    EXPECT_EQ(parse_watchdog("400000", "me", 42).error().where, "WATCHDOG_PID");
}

TEST(Watchdog, TheControlThreadCountsAsAliveWithinOnePingPeriod) {
    EXPECT_TRUE(control_alive(100ms, 200ms));
    EXPECT_TRUE(control_alive(200ms, 200ms));
    EXPECT_FALSE(control_alive(201ms, 200ms));
}

TEST(NotifyAddress, PathsAndAbstractNames) {
    auto path = parse_notify_address("/run/systemd/notify");
    ASSERT_TRUE(path);
    EXPECT_STREQ(path->address.sun_path, "/run/systemd/notify");
    EXPECT_EQ(path->length, offsetof(sockaddr_un, sun_path) + 20);  // with its NUL
    auto abstract = parse_notify_address("@tunerd/x");
    ASSERT_TRUE(abstract);
    EXPECT_EQ(abstract->address.sun_path[0], '\0');
    EXPECT_EQ(std::string(abstract->address.sun_path + 1, 8), "tunerd/x");
    EXPECT_EQ(abstract->length, offsetof(sockaddr_un, sun_path) + 9);  // no NUL at the end
    for (const char* bad : {"", "relative/path", "@", "vsock:2:1234"})
        EXPECT_FALSE(parse_notify_address(bad)) << bad;
    EXPECT_FALSE(parse_notify_address("/" + std::string(200, 'x')));
}

// ---- passed descriptors over real sockets ---------------------------------------------------

int tcp_socket(const char* address, bool listening, int type = SOCK_STREAM) {
    const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
    sockaddr_in in{};
    in.sin_family = AF_INET;
    ::inet_pton(AF_INET, address, &in.sin_addr);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&in), sizeof in), 0);
    if (listening) {
        EXPECT_EQ(::listen(fd, 16), 0);
    }
    return fd;
}

TEST(PassedSocket, AListeningTcpSocketWithItsAddress) {
    const int fd = tcp_socket("127.0.0.1", true);
    auto s = inspect_socket({fd, "public"});
    ASSERT_TRUE(s) << s.error().to_string();
    EXPECT_EQ(s->endpoint.address(), make_address("127.0.0.1"));
    EXPECT_NE(s->endpoint.port(), 0);
    EXPECT_EQ(s->name, "public");
    ::close(fd);
}

TEST(PassedSocket, WhatTunerdCannotServeOnIsRefusedWithTheReason) {
    const int not_listening = tcp_socket("127.0.0.1", false);
    EXPECT_NE(inspect_socket({not_listening, ""}).error().what.find("not listening"),
              std::string::npos);
    const int datagram = tcp_socket("127.0.0.1", false, SOCK_DGRAM);
    EXPECT_NE(inspect_socket({datagram, ""}).error().what.find("not a stream socket"),
              std::string::npos);
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    const auto not_socket = inspect_socket({pipe_fds[0], "public"});
    EXPECT_EQ(not_socket.error().what, "not a socket");
    EXPECT_NE(not_socket.error().where.find("named \"public\""), std::string::npos);
    const int unix_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    test::TempDir dir("tunerd-systemd");
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    const std::string path = dir.path() + "/s";
    std::memcpy(un.sun_path, path.c_str(), path.size() + 1);
    ASSERT_EQ(::bind(unix_fd, reinterpret_cast<sockaddr*>(&un), sizeof un), 0);
    ASSERT_EQ(::listen(unix_fd, 1), 0);
    EXPECT_NE(inspect_socket({unix_fd, ""}).error().what.find("not a TCP socket"),
              std::string::npos);
    EXPECT_EQ(inspect_socket({999, ""}).error().code, EBADF);
    for (int fd : {not_listening, datagram, pipe_fds[0], pipe_fds[1], unix_fd}) ::close(fd);
}

ListeningSocket sock(int fd, std::string name, const char* address, unsigned short port) {
    return {fd, std::move(name), tcp::endpoint(make_address(address), port)};
}

const tcp::endpoint kPublic(make_address("127.0.0.1"), 8080);
const tcp::endpoint kAdmin(make_address("127.0.0.1"), 9464);

TEST(AssignSockets, ByNameOrByAddress) {
    auto named =
        assign_sockets({sock(3, "public", "127.0.0.1", 8080), sock(4, "admin", "127.0.0.1", 9464)},
                       kPublic, kAdmin);
    ASSERT_TRUE(named) << named.error().to_string();
    EXPECT_EQ(named->public_listener->fd, 3);
    EXPECT_EQ(named->admin_listener->fd, 4);
    // systemd names an unnamed socket after its unit: matched by address, in any order.
    auto unnamed = assign_sockets(
        {sock(3, "tunerd.socket", "127.0.0.1", 9464), sock(4, "", "127.0.0.1", 8080)}, kPublic,
        kAdmin);
    ASSERT_TRUE(unnamed) << unnamed.error().to_string();
    EXPECT_EQ(unnamed->public_listener->fd, 4);
    EXPECT_EQ(unnamed->admin_listener->fd, 3);
    // Only one passed: the other listener binds as usual.
    auto one = assign_sockets({sock(3, "public", "127.0.0.1", 8080)}, kPublic, kAdmin);
    ASSERT_TRUE(one);
    EXPECT_FALSE(one->admin_listener);
    // A configured port 0 takes the port the socket has.
    auto any_port = assign_sockets({sock(3, "public", "127.0.0.1", 41234)},
                                   tcp::endpoint(make_address("127.0.0.1"), 0), kAdmin);
    EXPECT_TRUE(any_port);
    EXPECT_TRUE(assign_sockets({}, kPublic, kAdmin));
}

TEST(AssignSockets, MismatchesAreErrorsNamingTheKeyAndBothAddresses) {
    auto elsewhere = assign_sockets({sock(3, "public", "0.0.0.0", 8080)}, kPublic, kAdmin);
    ASSERT_FALSE(elsewhere);
    EXPECT_EQ(elsewhere.error().where, "server.listen");
    EXPECT_NE(elsewhere.error().what.find("127.0.0.1:8080"), std::string::npos);
    EXPECT_NE(elsewhere.error().what.find("0.0.0.0:8080"), std::string::npos);
    auto admin_port = assign_sockets({sock(3, "admin", "127.0.0.1", 9465)}, kPublic, kAdmin);
    EXPECT_EQ(admin_port.error().where, "admin.listen");
    auto twice = assign_sockets(
        {sock(3, "public", "127.0.0.1", 8080), sock(4, "", "127.0.0.1", 8080)}, kPublic, kAdmin);
    EXPECT_EQ(twice.error().where, "server.listen");
    EXPECT_NE(twice.error().what.find("two sockets"), std::string::npos);
    auto neither = assign_sockets({sock(3, "web", "127.0.0.1", 80)}, kPublic, kAdmin);
    EXPECT_EQ(neither.error().where, "LISTEN_FDNAMES");
    EXPECT_NE(neither.error().what.find("neither"), std::string::npos);
    EXPECT_NE(neither.error().what.find("FileDescriptorName=public"), std::string::npos);
    const tcp::endpoint any(make_address("127.0.0.1"), 0);
    auto both = assign_sockets({sock(3, "", "127.0.0.1", 5000)}, any, any);
    EXPECT_NE(both.error().what.find("both"), std::string::npos);
}

// ---- the notifier -------------------------------------------------------------------------

std::string receive(int fd) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) != 1) return "(nothing)";
    char buf[512];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "(error)";
}

TEST(Notifier, SendsToAPathAndToAnAbstractAddress) {
    test::TempDir dir("tunerd-notify");
    const std::string path = dir.path() + "/notify";
    const std::string abstract = "@tunerd-unit-" + std::to_string(::getpid());
    for (const std::string& address : {path, abstract}) {
        const auto parsed = parse_notify_address(address);
        ASSERT_TRUE(parsed);
        const int manager = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ASSERT_EQ(
            ::bind(manager, reinterpret_cast<const sockaddr*>(&parsed->address), parsed->length), 0)
            << address;
        Notifier notifier;
        ASSERT_TRUE(notifier.open(address).ok());
        EXPECT_TRUE(notifier.enabled());
        EXPECT_TRUE(notifier.send("READY=1\nSTATUS=serving").ok());
        EXPECT_EQ(receive(manager), "READY=1\nSTATUS=serving") << address;
        ::close(manager);
        // The manager went away: an error to log, nothing worse.
        EXPECT_FALSE(notifier.send("WATCHDOG=1").ok());
    }
}

TEST(Notifier, DisabledWithoutAnAddress) {
    Notifier notifier;
    EXPECT_TRUE(notifier.open("").ok());
    EXPECT_FALSE(notifier.enabled());
    EXPECT_TRUE(notifier.send("READY=1").ok());
    EXPECT_FALSE(notifier.open("relative"));
}

TEST(Notifier, MonotonicUsecIsNow) {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto now = static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
                     static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
    const std::string field = monotonic_usec_field();
    ASSERT_EQ(field.rfind("MONOTONIC_USEC=", 0), 0u);
    const auto usec = std::stoull(field.substr(15));
    EXPECT_GE(usec, now);
    EXPECT_LT(usec - now, 1'000'000u);
}

}  // namespace
}  // namespace tuner::systemd
