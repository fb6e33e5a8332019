// The preloader's control socket and protocol (see preloader.hpp).
#include "server/preloader.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

namespace tuner::server {

namespace {

constexpr const char* kWhere = "preloader";

void close_all(std::initializer_list<int> fds) {
    for (int fd : fds) {
        if (fd >= 0) ::close(fd);
    }
}

Result<nlohmann::json> parse_object(std::string_view message) {
    auto parsed = nlohmann::json::parse(message, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded() || !parsed.is_object()) {
        return make_error(kWhere, "not a JSON object: " + std::string(message.substr(0, 200)));
    }
    return parsed;
}

std::optional<pid_t> pid_field(const nlohmann::json& message) {
    const auto it = message.find("pid");
    if (it == message.end() || !it->is_number_integer()) return std::nullopt;
    const auto pid = it->get<long long>();
    if (pid <= 1 || pid > std::numeric_limits<pid_t>::max()) return std::nullopt;
    return static_cast<pid_t>(pid);
}

std::string string_field(const nlohmann::json& message, const char* name) {
    const auto it = message.find(name);
    return it != message.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::string encode_spawn_request(const std::string& socket_path, unsigned threads,
                                 const std::map<std::string, std::string>& env) {
    nlohmann::json request = {{"op", "spawn"},
                              {"socket", socket_path},
                              {"threads", threads},
                              {"env", nlohmann::json::object()}};
    for (const auto& [name, value] : env) request["env"][name] = value;
    // Invalid UTF-8 in a value (an env entry) is replaced rather than thrown about.
    return request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<PreloaderHello> parse_preloader_hello(std::string_view message) {
    auto parsed = parse_object(message);
    if (!parsed) return parsed.error();
    const auto& m = *parsed;
    const auto ready = m.find("ready");
    if (ready == m.end() || !ready->is_boolean()) {
        return make_error(kWhere,
                          "expected {\"ready\": ...}, got " + std::string(message.substr(0, 200)));
    }
    PreloaderHello hello;
    hello.ready = ready->get<bool>();
    if (hello.ready) {
        const auto pid = pid_field(m);
        if (!pid) return make_error(kWhere, "ready without a pid");
        hello.pid = *pid;
    } else {
        hello.error = string_field(m, "error");
        if (hello.error.empty()) hello.error = "the app could not be imported";
    }
    return hello;
}

Result<pid_t> parse_spawn_reply(std::string_view message) {
    auto parsed = parse_object(message);
    if (!parsed) return parsed.error();
    const auto& m = *parsed;
    const auto ok = m.find("ok");
    if (ok == m.end() || !ok->is_boolean()) {
        return make_error(kWhere,
                          "expected {\"ok\": ...}, got " + std::string(message.substr(0, 200)));
    }
    if (!ok->get<bool>()) {
        const std::string error = string_field(m, "error");
        return make_error(kWhere, "refused to fork a worker: " +
                                      (error.empty() ? std::string("no reason given") : error));
    }
    const auto pid = pid_field(m);
    if (!pid) return make_error(kWhere, "forked a worker but sent no pid");
    return *pid;
}

std::optional<std::string> find_preloader_script(const std::string& self_exe) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(self_exe).parent_path();
    std::error_code ec;
    for (const fs::path& candidate :
         {dir / kPreloaderScript, dir / ".." / "share" / "tunerd" / kPreloaderScript}) {
        if (fs::is_regular_file(candidate, ec)) return candidate.lexically_normal().string();
    }
    return std::nullopt;
}

std::vector<std::string> preloader_argv(const PoolConfig& workers, const std::string& script) {
    // -B: no __pycache__ written beside the installed script.
    return {workers.python, "-B", script, "--app", workers.preload, "--server", workers.server};
}

Result<StartedPreloader> start_preloader(SpawnSpec spec) {
    // The workers the preloader forks (twice) are orphaned on purpose: they come to us.
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        return system_error(kWhere, "prctl(PR_SET_CHILD_SUBREAPER)");
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
        return system_error(kWhere, "socketpair");
    spec.stdin_fd = pair[1];
    auto spawned = spawn_process(spec);
    ::close(pair[1]);
    if (!spawned) {
        ::close(pair[0]);
        return spawned.error();
    }
    return StartedPreloader{*spawned, pair[0]};
}

Result<std::optional<std::string>> receive_control_message(int control_fd) {
    std::string buffer(kPreloadMaxMessage + 1, '\0');
    ssize_t n;
    do {
        n = ::recv(control_fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return std::optional<std::string>{};
        return system_error(kWhere, "reading the control socket");
    }
    if (n == 0) return make_error(kWhere, "closed its control socket");
    if (static_cast<std::size_t>(n) > kPreloadMaxMessage)
        return make_error(kWhere, "sent a message over 64 KB");
    buffer.resize(static_cast<std::size_t>(n));
    return std::optional<std::string>{std::move(buffer)};
}

Result<SpawnedProcess> spawn_from_preloader(int control_fd, const std::string& request,
                                            Duration timeout) {
    if (request.size() > kPreloadMaxMessage)
        return make_error(kWhere, "spawn request over 64 KB (workers.env too large)");
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) < 0) return system_error("pipe", "");
    if (::pipe2(err, O_CLOEXEC) < 0) {
        close_all({out[0], out[1]});
        return system_error("pipe", "");
    }
    // Anything left from an earlier request that timed out is not this one's answer.
    for (;;) {
        auto stale = receive_control_message(control_fd);
        if (!stale || !*stale) break;
    }
    // The request with the two write ends attached (unix(7), SCM_RIGHTS).
    struct iovec iov {
        const_cast<char*>(request.data()), request.size()
    };
    alignas(struct cmsghdr) std::array<char, CMSG_SPACE(2 * sizeof(int))> control{};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(2 * sizeof(int));
    const int fds[2] = {out[1], err[1]};
    std::memcpy(CMSG_DATA(cmsg), fds, sizeof fds);
    ssize_t sent;
    do {
        sent = ::sendmsg(control_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (sent < 0 && errno == EINTR);
    const int send_errno = errno;
    close_all({out[1], err[1]});  // the preloader has its copies (or none: it failed)
    if (sent < 0) {
        close_all({out[0], err[0]});
        return system_error(kWhere, "sending a spawn request", send_errno);
    }
    // Wait for the answer, at most `timeout` in all.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        struct pollfd p {
            control_fd, POLLIN, 0
        };
        const int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) {
            close_all({out[0], err[0]});
            return make_error(kWhere,
                              "no answer to a spawn request within " + format_duration(timeout));
        }
        auto message = receive_control_message(control_fd);
        if (!message) {
            close_all({out[0], err[0]});
            return message.error();
        }
        if (!*message) continue;
        auto pid = parse_spawn_reply(**message);
        if (!pid) {
            close_all({out[0], err[0]});
            return pid.error();
        }
        ::fcntl(out[0], F_SETFL, ::fcntl(out[0], F_GETFL) | O_NONBLOCK);
        ::fcntl(err[0], F_SETFL, ::fcntl(err[0], F_GETFL) | O_NONBLOCK);
        return SpawnedProcess{*pid, out[0], err[0]};
    }
}

}  // namespace tuner::server
