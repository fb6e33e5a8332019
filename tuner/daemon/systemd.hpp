// tunerd's side of systemd's protocols, implemented directly (no libsystemd needed):
// * socket activation (sd_listen_fds(3)): LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES name the
//   listening sockets passed from fd 3 on; tunerd adopts them instead of binding, so a restart
//   never refuses a connection (the kernel queues them in the listen backlog meanwhile);
// * the notification socket (sd_notify(3)): NOTIFY_SOCKET, a Unix datagram socket (a path, or
//   an abstract address written "@name"), for READY=1, STATUS=, RELOADING=1, STOPPING=1 and
//   WATCHDOG=1; WATCHDOG_USEC (and WATCHDOG_PID) say how often to ping.
// The parsers are pure functions over the variables' text, tested without a systemd.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "model/result.hpp"

namespace tuner::systemd {

// The first passed descriptor (SD_LISTEN_FDS_START).
inline constexpr int kListenFdsStart = 3;
// More would be a mistake in the unit (tunerd has two listeners); bounds the parse.
inline constexpr unsigned kMaxListenFds = 16;

struct PassedFd {
    int fd = -1;
    std::string name;  // FileDescriptorName= ("public", "admin"), or what systemd put there
};

// Which descriptors a process with pid `self` was passed. No LISTEN_PID or LISTEN_FDS, or a
// LISTEN_PID of another process (the variables were inherited, not meant for us): none. A
// malformed value, more than kMaxListenFds, or LISTEN_FDNAMES with another count than
// LISTEN_FDS: an error naming the variable.
Result<std::vector<PassedFd>> parse_listen_fds(std::optional<std::string_view> listen_pid,
                                               std::optional<std::string_view> listen_fds,
                                               std::optional<std::string_view> listen_fdnames,
                                               pid_t self);

// How often the manager expects WATCHDOG=1: WATCHDOG_USEC, when WATCHDOG_PID is unset or is
// `self`. Unset, 0 or another process's: none; malformed: an error naming the variable.
Result<std::optional<std::chrono::microseconds>> parse_watchdog(
    std::optional<std::string_view> watchdog_usec, std::optional<std::string_view> watchdog_pid,
    pid_t self);

// The address in NOTIFY_SOCKET: an absolute path, or "@name" for Linux's abstract namespace (a
// leading NUL byte). Anything else (a relative path, vsock:, too long for sun_path): an error.
struct NotifyAddress {
    sockaddr_un address{};
    socklen_t length = 0;
};
Result<NotifyAddress> parse_notify_address(std::string_view text);

// What tunerd takes from its environment at start, before any thread exists: the variables
// are read and LISTEN_*, WATCHDOG_USEC and WATCHDOG_PID removed (setenv is not thread-safe, and
// workers must not believe they were passed tunerd's sockets); the passed descriptors are made
// close-on-exec at once, so no worker inherits a listener. NOTIFY_SOCKET stays: the unit's
// NotifyAccess=main ignores whatever a worker sends there.
struct Environment {
    std::vector<PassedFd> listen_fds;
    std::optional<Error> listen_error;  // a malformed LISTEN_* (tunerd stops with it)
    std::string notify_socket;          // "" when not under a manager that listens
    std::optional<std::chrono::microseconds> watchdog;
    std::optional<Error> watchdog_error;
};
Environment take_environment();

// A passed descriptor checked to be what tunerd can serve on: a TCP (IPv4 or IPv6) stream
// socket in the listening state; its address from getsockname.
struct ListeningSocket {
    int fd = -1;
    std::string name;
    boost::asio::ip::tcp::endpoint endpoint;
};
Result<ListeningSocket> inspect_socket(const PassedFd& passed);

// The passed sockets matched to the two listeners: by name ("public", "admin"), or, for any
// other name (systemd's default is the socket unit's name), by address against the configured
// one (a configured port 0 matches any port on that address). Errors, each naming the key and
// both addresses: a socket named for a listener but bound elsewhere than its configured address,
// two sockets for one listener, a socket that matches neither (or both) listeners.
struct SocketAssignment {
    std::optional<ListeningSocket> public_listener;
    std::optional<ListeningSocket> admin_listener;
};
Result<SocketAssignment> assign_sockets(const std::vector<ListeningSocket>& sockets,
                                        const boost::asio::ip::tcp::endpoint& public_configured,
                                        const boost::asio::ip::tcp::endpoint& admin_configured);

// "127.0.0.1:8080", "[::1]:9464".
std::string endpoint_text(const boost::asio::ip::tcp::endpoint& endpoint);

// Whether the control thread counts as alive for a watchdog ping sent every `ping_every`: it
// marks progress at least four times per period (ControlLoop::set_heartbeat_every), so a mark
// older than a whole period means a cycle has been stuck that long.
[[nodiscard]] inline bool control_alive(std::chrono::steady_clock::duration idle,
                                        std::chrono::milliseconds ping_every) {
    return idle <= ping_every;
}

// "MONOTONIC_USEC=<CLOCK_MONOTONIC in µs>", which systemd wants with RELOADING=1.
std::string monotonic_usec_field();

// Sends sd_notify messages to NOTIFY_SOCKET over one datagram socket; a no-op when there is
// none. Thread-safe (one sendto per message). A failed send is reported once per kind of
// failure, never fatal: the manager may have gone away.
class Notifier {
public:
    Notifier() = default;
    ~Notifier();
    Notifier(const Notifier&) = delete;
    Notifier& operator=(const Notifier&) = delete;

    // Opens the socket for `notify_socket` ("" = disabled); an unusable address is an error.
    Status open(const std::string& notify_socket);
    [[nodiscard]] bool enabled() const { return fd_ >= 0; }
    // `state`: newline-separated assignments, e.g. "READY=1\nSTATUS=serving".
    Status send(std::string_view state);

private:
    int fd_ = -1;
    NotifyAddress address_;
    std::mutex mutex_;
    int last_errno_ = 0;
};

}  // namespace tuner::systemd
