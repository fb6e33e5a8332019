// Listen addresses of the config ("127.0.0.1:8080", "[::1]:0", "localhost:8080"): parsing and the
// loopback test that decides whether the admin listener needs a token (see load.hpp).
#include <algorithm>
#include <cctype>
#include <charconv>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "tuner/config/load.hpp"

namespace tuner::config {
namespace {

const char* const kListenExample =
    " (expected host:port, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\")";

Error listen_error(std::string_view text, const std::string& what) {
    return Error{what + " in \"" + std::string(text) + "\"" + kListenExample, ""};
}

bool is_ipv4(const std::string& host) {
    in_addr address{};
    return ::inet_pton(AF_INET, host.c_str(), &address) == 1;
}

bool is_ipv6(const std::string& host) {
    in6_addr address{};
    return ::inet_pton(AF_INET6, host.c_str(), &address) == 1;
}

// A DNS name as RFC 1123 allows it: labels of letters, digits and '-', not starting with '-'.
bool is_hostname(std::string_view host) {
    if (host.empty() || host.size() > 253 || host.front() == '-' || host.front() == '.') {
        return false;
    }
    return std::all_of(host.begin(), host.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
    });
}

bool looks_numeric(std::string_view host) {
    return std::all_of(host.begin(), host.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
    });
}

}  // namespace

Result<std::pair<std::string, std::uint16_t>> parse_listen(std::string_view host_port) {
    if (host_port.empty()) return Error{std::string("empty listen address") + kListenExample, ""};
    std::string host;
    std::string_view rest;
    if (host_port.front() == '[') {
        const auto close = host_port.find(']');
        if (close == std::string_view::npos) return listen_error(host_port, "missing \"]\"");
        host = std::string(host_port.substr(1, close - 1));
        if (!is_ipv6(host)) return listen_error(host_port, "not an IPv6 address: \"" + host + "\"");
        rest = host_port.substr(close + 1);
        if (rest.empty()) return listen_error(host_port, "missing port");
        if (rest.front() != ':') return listen_error(host_port, "expected \":\" after \"]\"");
        rest.remove_prefix(1);
    } else {
        const auto colon = host_port.rfind(':');
        if (colon == std::string_view::npos) return listen_error(host_port, "missing port");
        host = std::string(host_port.substr(0, colon));
        rest = host_port.substr(colon + 1);
        if (host.find(':') != std::string::npos) {
            return listen_error(host_port, "an IPv6 address needs brackets");
        }
        if (host.empty()) return listen_error(host_port, "missing host");
        if (looks_numeric(host) ? !is_ipv4(host) : !is_hostname(host)) {
            return listen_error(host_port, "not an IPv4 address or host name: \"" + host + "\"");
        }
    }
    if (rest.empty()) return listen_error(host_port, "missing port");
    unsigned port = 0;
    const auto [end, error] = std::from_chars(rest.data(), rest.data() + rest.size(), port);
    if (error != std::errc{} || end != rest.data() + rest.size() || port > 65535) {
        return listen_error(host_port, "bad port \"" + std::string(rest) + "\" (0..65535)");
    }
    return std::pair{host, static_cast<std::uint16_t>(port)};
}

bool is_loopback_listen(std::string_view host_port) {
    const auto parsed = parse_listen(host_port);
    if (!parsed) return false;
    std::string host = parsed->first;
    std::transform(host.begin(), host.end(), host.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (host == "localhost") return true;
    in_addr v4{};
    if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
        return (ntohl(v4.s_addr) >> 24) == 127;  // 127.0.0.0/8, RFC 1122 3.2.1.3
    }
    in6_addr v6{};
    if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
        // ::1, or an IPv4-mapped 127.x address (::ffff:127.0.0.1).
        return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
    }
    return false;
}

}  // namespace tuner::config
