// Flooding clients for the security suites (see hostile_client.hpp).
#include "tests/security/hostile_client.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>

namespace tuner::test {

namespace {

using namespace std::chrono_literals;

int connect_to(const std::string& host_port) {
    const auto colon = host_port.rfind(':');
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(host_port.substr(colon + 1))));
    ::inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr);
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// One flooding connection: true when the server answered with a 4xx before it closed.
bool flood_one(const std::string& host_port, const std::string& head, std::size_t bytes,
               std::atomic<unsigned>& connected) {
    const int fd = connect_to(host_port);
    if (fd < 0) return false;
    ++connected;
    std::string answer;
    char in[4096];
    auto collect = [&](int flags) {
        for (;;) {
            const ssize_t n = ::recv(fd, in, sizeof in, flags);
            if (n <= 0) return n == 0;  // true: the server closed
            answer.append(in, static_cast<std::size_t>(n));
        }
    };
    bool ok =
        ::send(fd, head.data(), head.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(head.size());
    const std::string filler(64 * 1024, 'a');
    for (std::size_t sent = 0; ok && sent < bytes && answer.empty();) {
        const ssize_t n =
            ::send(fd, filler.data(), std::min(filler.size(), bytes - sent), MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
        collect(MSG_DONTWAIT);
    }
    if (answer.empty()) collect(0);
    ::close(fd);
    return answer.rfind("HTTP/1.1 4", 0) == 0;
}

}  // namespace

std::uint64_t rss_bytes(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            std::istringstream fields(line.substr(6));
            std::uint64_t kib = 0;
            fields >> kib;
            return kib * 1024;
        }
    }
    return 0;
}

std::string FloodResult::summary() const {
    std::ostringstream out;
    out << "connected " << connected << ", answered 4xx " << answered_4xx << ", RSS before "
        << (rss_before_bytes >> 10) << " KiB, peak " << (peak_rss_bytes >> 10) << " KiB, after "
        << (rss_after_bytes >> 10) << " KiB";
    return out.str();
}

FloodResult flood_while_sampling_rss(const std::string& host_port, const std::string& head,
                                     const FloodOptions& options, pid_t pid) {
    FloodResult result;
    result.rss_before_bytes = rss_bytes(pid);
    std::atomic<bool> done{false};
    std::atomic<std::uint64_t> peak{result.rss_before_bytes};
    std::thread sampler([&] {
        while (!done) {
            const auto rss = rss_bytes(pid);
            if (rss > peak) peak = rss;
            std::this_thread::sleep_for(10ms);
        }
    });
    std::atomic<unsigned> answered{0}, connected{0};
    std::vector<std::thread> clients;
    for (unsigned i = 0; i < options.connections; ++i) {
        clients.emplace_back([&] {
            if (flood_one(host_port, head, options.bytes_per_connection, connected)) ++answered;
        });
    }
    for (auto& c : clients) c.join();
    done = true;
    sampler.join();
    result.peak_rss_bytes = std::max<std::uint64_t>(peak, rss_bytes(pid));
    result.rss_after_bytes = rss_bytes(pid);
    result.answered_4xx = answered;
    result.connected = connected;
    return result;
}

}  // namespace tuner::test
