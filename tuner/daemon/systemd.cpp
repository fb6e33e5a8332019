// systemd's socket activation and notification protocols (see systemd.hpp). References:
// sd_listen_fds(3), sd_notify(3), systemd.socket(5) (FileDescriptorName=).
#include "tuner/daemon/systemd.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstring>

#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <time.h>

namespace tuner::systemd {

namespace {

template <typename Number>
std::optional<Number> parse_number(std::string_view text) {
    Number n{};
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || p != text.data() + text.size() || text.empty()) return std::nullopt;
    return n;
}

std::string quoted(std::string_view text) {
    return "\"" + std::string(text.substr(0, 200)) + "\"";
}

std::optional<std::string_view> env(const char* name) {
    const char* v = std::getenv(name);
    if (!v) return std::nullopt;
    return std::string_view(v);
}

bool same_place(const boost::asio::ip::tcp::endpoint& configured,
                const boost::asio::ip::tcp::endpoint& bound) {
    return configured.address() == bound.address() &&
           (configured.port() == 0 || configured.port() == bound.port());
}

}  // namespace

Result<std::vector<PassedFd>> parse_listen_fds(std::optional<std::string_view> listen_pid,
                                               std::optional<std::string_view> listen_fds,
                                               std::optional<std::string_view> listen_fdnames,
                                               pid_t self) {
    std::vector<PassedFd> out;
    if (!listen_pid || !listen_fds) return out;
    const auto pid = parse_number<long long>(*listen_pid);
    if (!pid || *pid <= 0)
        return make_error("LISTEN_PID", "not a process id: " + quoted(*listen_pid));
    if (*pid != self) return out;  // inherited from a parent that was passed them
    const auto count = parse_number<unsigned>(*listen_fds);
    if (!count) return make_error("LISTEN_FDS", "not a whole number: " + quoted(*listen_fds));
    if (*count > kMaxListenFds) {
        return make_error("LISTEN_FDS", std::to_string(*count) +
                                            " descriptors passed; tunerd serves at most " +
                                            std::to_string(kMaxListenFds));
    }
    std::vector<std::string> names;
    if (listen_fdnames) {
        std::string_view rest = *listen_fdnames;
        for (;;) {
            const auto colon = rest.find(':');
            names.emplace_back(rest.substr(0, colon));
            if (colon == std::string_view::npos || names.size() > kMaxListenFds) break;
            rest.remove_prefix(colon + 1);
        }
        if (names.size() != *count) {
            return make_error("LISTEN_FDNAMES",
                              std::to_string(names.size()) + " names for " +
                                  std::to_string(*count) +
                                  " descriptors (LISTEN_FDS): " + quoted(*listen_fdnames));
        }
    }
    for (unsigned i = 0; i < *count; ++i) {
        out.push_back({kListenFdsStart + static_cast<int>(i), names.empty() ? "" : names[i]});
    }
    return out;
}

Result<std::optional<std::chrono::microseconds>> parse_watchdog(
    std::optional<std::string_view> watchdog_usec, std::optional<std::string_view> watchdog_pid,
    pid_t self) {
    std::optional<std::chrono::microseconds> none;
    if (!watchdog_usec) return none;
    if (watchdog_pid) {
        const auto pid = parse_number<long long>(*watchdog_pid);
        if (!pid || *pid <= 0)
            return make_error("WATCHDOG_PID", "not a process id: " + quoted(*watchdog_pid));
        if (*pid != self) return none;
    }
    const auto usec = parse_number<std::uint64_t>(*watchdog_usec);
    if (!usec) return make_error("WATCHDOG_USEC", "not a whole number: " + quoted(*watchdog_usec));
    if (*usec == 0) return none;
    // Below 1 ms no ping could keep up; above a day it is a mistake. Both bounded for the timer.
    if (*usec < 1000 || *usec > 86'400'000'000ULL) {
        return make_error("WATCHDOG_USEC", "must be between 1000 (1 ms) and 86400000000 (1 day): " +
                                               quoted(*watchdog_usec));
    }
    return std::optional(std::chrono::microseconds(*usec));
}

Result<NotifyAddress> parse_notify_address(std::string_view text) {
    NotifyAddress out;
    out.address.sun_family = AF_UNIX;
    const bool abstract = !text.empty() && text.front() == '@';
    if (!abstract && (text.empty() || text.front() != '/')) {
        return make_error("NOTIFY_SOCKET",
                          "not an absolute path or an @abstract address: " + quoted(text));
    }
    if (text.size() >= sizeof(out.address.sun_path) || (abstract && text.size() < 2)) {
        return make_error("NOTIFY_SOCKET", "address of " + std::to_string(text.size()) +
                                               " bytes does not fit a socket address (at most " +
                                               std::to_string(sizeof(out.address.sun_path) - 1) +
                                               "): " + quoted(text));
    }
    std::memcpy(out.address.sun_path, text.data(), text.size());
    if (abstract) out.address.sun_path[0] = '\0';  // the name is the bytes after the NUL
    // A path is NUL-terminated within sun_path; an abstract name is exactly its bytes.
    out.length =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + text.size() + (abstract ? 0 : 1));
    return out;
}

Environment take_environment() {
    Environment out;
    const pid_t self = ::getpid();
    auto fds = parse_listen_fds(env("LISTEN_PID"), env("LISTEN_FDS"), env("LISTEN_FDNAMES"), self);
    if (fds) {
        out.listen_fds = std::move(*fds);
    } else {
        out.listen_error = fds.error();
    }
    // Close-on-exec at once: a worker must never hold a listener (it would keep the port open
    // after tunerd is gone, and could accept tunerd's connections).
    for (const auto& passed : out.listen_fds) {
        const int flags = ::fcntl(passed.fd, F_GETFD);
        if (flags >= 0) ::fcntl(passed.fd, F_SETFD, flags | FD_CLOEXEC);
    }
    auto watchdog = parse_watchdog(env("WATCHDOG_USEC"), env("WATCHDOG_PID"), self);
    if (watchdog) {
        out.watchdog = *watchdog;
    } else {
        out.watchdog_error = watchdog.error();
    }
    if (const auto notify = env("NOTIFY_SOCKET")) out.notify_socket = std::string(*notify);
    for (const char* name :
         {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID"}) {
        ::unsetenv(name);
    }
    return out;
}

Result<ListeningSocket> inspect_socket(const PassedFd& passed) {
    const std::string where = "LISTEN_FDS (descriptor " + std::to_string(passed.fd) +
                              (passed.name.empty() ? "" : ", named " + quoted(passed.name)) + ")";
    struct stat st {};
    if (::fstat(passed.fd, &st) != 0) return system_error(where, "fstat");
    if (!S_ISSOCK(st.st_mode)) return make_error(where, "not a socket");
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(passed.fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
        return system_error(where, "getsockopt(SO_TYPE)");
    if (type != SOCK_STREAM)
        return make_error(where, "not a stream socket (ListenStream= in the socket unit)");
    int listening = 0;
    len = sizeof listening;
    if (::getsockopt(passed.fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0)
        return system_error(where, "getsockopt(SO_ACCEPTCONN)");
    if (!listening) return make_error(where, "not listening (Accept=no in the socket unit)");
    sockaddr_storage storage{};
    len = sizeof storage;
    if (::getsockname(passed.fd, reinterpret_cast<sockaddr*>(&storage), &len) != 0)
        return system_error(where, "getsockname");
    ListeningSocket out{passed.fd, passed.name, {}};
    if (storage.ss_family == AF_INET) {
        const auto& in = reinterpret_cast<const sockaddr_in&>(storage);
        out.endpoint = {boost::asio::ip::address_v4(ntohl(in.sin_addr.s_addr)), ntohs(in.sin_port)};
    } else if (storage.ss_family == AF_INET6) {
        const auto& in6 = reinterpret_cast<const sockaddr_in6&>(storage);
        boost::asio::ip::address_v6::bytes_type bytes;
        std::memcpy(bytes.data(), in6.sin6_addr.s6_addr, bytes.size());
        out.endpoint = {boost::asio::ip::address_v6(bytes, in6.sin6_scope_id),
                        ntohs(in6.sin6_port)};
    } else {
        return make_error(where, "not a TCP socket (address family " +
                                     std::to_string(storage.ss_family) +
                                     "); tunerd's listeners are TCP");
    }
    return out;
}

Result<SocketAssignment> assign_sockets(const std::vector<ListeningSocket>& sockets,
                                        const boost::asio::ip::tcp::endpoint& public_configured,
                                        const boost::asio::ip::tcp::endpoint& admin_configured) {
    SocketAssignment out;
    for (const auto& s : sockets) {
        const std::string what = "the socket systemd passed as descriptor " + std::to_string(s.fd) +
                                 (s.name.empty() ? "" : " named " + quoted(s.name)) +
                                 " is bound to " + endpoint_text(s.endpoint);
        bool is_public = false;
        if (s.name == "public" || s.name == "admin") {
            is_public = s.name == "public";
            const auto& configured = is_public ? public_configured : admin_configured;
            if (!same_place(configured, s.endpoint)) {
                return make_error(is_public ? "server.listen" : "admin.listen",
                                  "is " + endpoint_text(configured) + ", but " + what +
                                      ": make the socket unit's ListenStream= and this key "
                                      "name the same address");
            }
        } else {
            const bool public_match = same_place(public_configured, s.endpoint);
            const bool admin_match = same_place(admin_configured, s.endpoint);
            if (public_match == admin_match) {
                const std::string both = "server.listen (" + endpoint_text(public_configured) +
                                         ") and admin.listen (" + endpoint_text(admin_configured) +
                                         ")";
                return make_error(
                    "LISTEN_FDNAMES",
                    what + (public_match ? ", which matches both " : ", which matches neither ") +
                        both +
                        ": set FileDescriptorName=public or FileDescriptorName=admin "
                        "in its socket unit");
            }
            is_public = public_match;
        }
        auto& slot = is_public ? out.public_listener : out.admin_listener;
        if (slot) {
            return make_error(is_public ? "server.listen" : "admin.listen",
                              "two sockets passed for this listener: descriptors " +
                                  std::to_string(slot->fd) + " and " + std::to_string(s.fd));
        }
        slot = s;
    }
    return out;
}

std::string endpoint_text(const boost::asio::ip::tcp::endpoint& ep) {
    const auto address = ep.address();
    const std::string host =
        address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
    return host + ":" + std::to_string(ep.port());
}

std::string monotonic_usec_field() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto usec = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000u +
                      static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
    return "MONOTONIC_USEC=" + std::to_string(usec);
}

Notifier::~Notifier() {
    if (fd_ >= 0) ::close(fd_);
}

Status Notifier::open(const std::string& notify_socket) {
    if (notify_socket.empty()) return {};
    auto address = parse_notify_address(notify_socket);
    if (!address) return address.error();
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return system_error("NOTIFY_SOCKET", "socket");
    address_ = *address;
    fd_ = fd;
    return {};
}

Status Notifier::send(std::string_view state) {
    if (fd_ < 0) return {};
    std::lock_guard lock(mutex_);
    // MSG_NOSIGNAL: a manager that went away must not take tunerd with it. Non-blocking: a full
    // queue at the manager loses this message rather than stalling the I/O thread.
    const ssize_t n =
        ::sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL,
                 reinterpret_cast<const sockaddr*>(&address_.address), address_.length);
    if (n == static_cast<ssize_t>(state.size())) {
        last_errno_ = 0;
        return {};
    }
    const int code = n < 0 ? errno : EMSGSIZE;
    if (code != last_errno_) {
        last_errno_ = code;
        spdlog::warn("event=notify_failed error=\"{}\"", std::strerror(code));
    }
    return system_error("NOTIFY_SOCKET", "sendto", code);
}

}  // namespace tuner::systemd
