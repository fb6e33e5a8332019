// tunerctl's admin API client (see client.hpp).
#include "tuner/ctl/client.hpp"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "tuner/config/load.hpp"

namespace tuner::ctl {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// /performance/decisions?limit=10000 is the largest answer; a few MB at most.
constexpr std::uint64_t kBodyLimitBytes = 64 * MiB;

std::string host_for_url(const std::string& host) {
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

// A wildcard listen address accepts on every interface; a client reaches it on loopback.
std::string reachable_host(const std::string& host) {
    if (host == "0.0.0.0") return "127.0.0.1";
    if (host == "::") return "::1";
    return host;
}

std::string read_first_line(std::ifstream& in) {
    std::string line;
    std::getline(in, line);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    return line;
}

Result<AdminEndpoint> endpoint_from_listen(const std::string& host_port, std::string origin) {
    auto parsed = config::parse_listen(host_port);
    if (!parsed) return parsed.error();
    AdminEndpoint e;
    e.host = reachable_host(parsed->first);
    e.port = parsed->second;
    e.origin = std::move(origin);
    return e;
}

}  // namespace

std::string AdminEndpoint::url() const {
    if (!unix_path.empty()) return "unix:" + unix_path + base_path;
    return "http://" + host_for_url(host) + ":" + std::to_string(port) + base_path;
}

Result<AdminEndpoint> parse_admin_url(std::string_view url) {
    const std::string quoted = "\"" + std::string(url) + "\"";
    std::string_view rest = url;
    if (rest.starts_with("https://")) {
        return make_error("--admin",
                          "tunerctl speaks plain HTTP (TLS ends in front of tunerd): " + quoted);
    }
    if (rest.starts_with("unix:")) {
        AdminEndpoint e;
        e.unix_path = std::string(rest.substr(5));
        e.origin = "--admin";
        if (e.unix_path.empty() || e.unix_path.front() != '/')
            return make_error("--admin", "expected unix:/path/to/admin.sock, not " + quoted);
        return e;
    }
    if (rest.starts_with("http://")) rest.remove_prefix(7);
    const auto slash = rest.find('/');
    std::string base_path(slash == std::string_view::npos ? "" : rest.substr(slash));
    while (!base_path.empty() && base_path.back() == '/') base_path.pop_back();
    auto endpoint = endpoint_from_listen(std::string(rest.substr(0, slash)), "--admin");
    if (!endpoint) {
        return endpoint.error()
            .context("expected a URL like http://127.0.0.1:9464, not " + quoted)
            .at("--admin");
    }
    if (endpoint->port == 0) return make_error("--admin", "port 0 cannot be reached: " + quoted);
    endpoint->base_path = std::move(base_path);
    return endpoint;
}

Result<AdminEndpoint> admin_endpoint_from_config(const Config& config,
                                                 const std::string& state_dir) {
    struct stat st {};
    if (!config.admin.socket.empty() && ::stat(config.admin.socket.c_str(), &st) == 0 &&
        S_ISSOCK(st.st_mode)) {
        AdminEndpoint e;
        e.unix_path = config.admin.socket;
        e.origin = "admin.socket in " + config.source;
        return e;
    }
    auto endpoint = endpoint_from_listen(config.admin.listen, "admin.listen in " + config.source);
    if (!endpoint) return endpoint.error().at("admin.listen");
    if (endpoint->port != 0) return endpoint;
    // Port 0: the daemon wrote the port it got to listen.json.
    const std::string listen_file = state_dir + "/listen.json";
    std::ifstream in(listen_file);
    if (!in) {
        return make_error(listen_file, "admin.listen in " + config.source +
                                           " is port 0 and this file is missing: is tunerd "
                                           "running with this config? (or pass --admin URL)");
    }
    std::stringstream text;
    text << in.rdbuf();
    const auto json = nlohmann::json::parse(text.str(), nullptr, false);
    if (json.is_discarded() || !json.is_object() || !json.contains("admin") ||
        !json["admin"].is_string()) {
        return make_error(listen_file, "no \"admin\" address in " + text.str());
    }
    auto bound = endpoint_from_listen(json["admin"].get<std::string>(), listen_file);
    if (!bound) return bound.error().at(listen_file);
    return bound;
}

Result<std::optional<std::string>> read_admin_token(const AdminConfig& admin) {
    if (admin.token_file.empty()) return std::optional<std::string>{};
    std::ifstream in(admin.token_file);
    if (!in) {
        return system_error("admin.token_file", "cannot read \"" + admin.token_file + "\"");
    }
    std::string token = read_first_line(in);
    if (token.empty())
        return make_error("admin.token_file", "\"" + admin.token_file + "\" holds no token");
    return std::optional<std::string>(std::move(token));
}

AdminClient::AdminClient(AdminEndpoint endpoint, std::optional<std::string> token, Duration timeout)
    : endpoint_(std::move(endpoint)), token_(std::move(token)), timeout_(timeout) {}

std::variant<AdminAnswer, AdminFailure> AdminClient::call(std::string_view method,
                                                          std::string_view target,
                                                          const std::string& body) const {
    const auto unreachable = [&](const std::string& what) {
        return AdminFailure{true,
                            make_error(endpoint_.url() + " (" + endpoint_.origin + ")", what)};
    };
    const auto timed_out = [&](const beast::error_code& error, const std::string& step) {
        return error == beast::error::timeout
                   ? step + ": no answer within " + format_duration(timeout_)
                   : step + ": " + error.message();
    };
    asio::io_context ioc;
    beast::error_code ec;
    const bool over_unix = !endpoint_.unix_path.empty();
    tcp::resolver::results_type addresses;
    if (!over_unix) {
        tcp::resolver resolver(ioc);
        addresses = resolver.resolve(endpoint_.host, std::to_string(endpoint_.port), ec);
        if (ec) return unreachable("resolve \"" + endpoint_.host + "\": " + ec.message());
    }

    http::request<http::string_body> request{http::string_to_verb(method),
                                             endpoint_.base_path + std::string(target), 11};
    request.set(http::field::host,
                over_unix ? std::string("localhost")
                          : host_for_url(endpoint_.host) + ":" + std::to_string(endpoint_.port));
    request.set(http::field::user_agent, "tunerctl");
    request.set(http::field::accept, "application/json");
    if (token_) request.set(http::field::authorization, "Bearer " + *token_);
    // The admin API takes JSON only (a POST of another type is refused: a browser form could
    // send it cross-site); a body-less POST says so too.
    if (!body.empty() || request.method() != http::verb::get) {
        request.set(http::field::content_type, "application/json");
        request.body() = body;
    }
    request.keep_alive(false);
    request.prepare_payload();

    // Beast's stream timeouts apply to asynchronous operations only: connect, write and read
    // run as one asynchronous chain under a single deadline, and run() returns when it ends.
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kBodyLimitBytes);
    std::string failed_step;
    const auto step_failed = [&](const beast::error_code& step_ec, const char* step) {
        ec = step_ec;
        failed_step = step;
    };
    const auto exchange = [&](auto& stream, const beast::error_code& connect_ec) {
        if (connect_ec) return step_failed(connect_ec, "connect");
        http::async_write(stream, request, [&](const beast::error_code& write_ec, std::size_t) {
            if (write_ec) return step_failed(write_ec, "send");
            http::async_read(stream, buffer, parser,
                             [&](const beast::error_code& read_ec, std::size_t) {
                                 if (read_ec) step_failed(read_ec, "read the answer");
                             });
        });
    };
    beast::tcp_stream tcp_stream(ioc);
    beast::basic_stream<asio::local::stream_protocol> unix_stream(ioc);
    if (over_unix) {
        unix_stream.expires_after(timeout_);
        unix_stream.async_connect(asio::local::stream_protocol::endpoint(endpoint_.unix_path),
                                  [&](const beast::error_code& e) { exchange(unix_stream, e); });
    } else {
        tcp_stream.expires_after(timeout_);
        tcp_stream.async_connect(addresses, [&](const beast::error_code& e, const tcp::endpoint&) {
            exchange(tcp_stream, e);
        });
    }
    ioc.run();
    if (ec) return unreachable(timed_out(ec, failed_step));

    AdminAnswer answer;
    answer.status = static_cast<int>(parser.get().result_int());
    const std::string& text = parser.get().body();
    answer.body = nlohmann::json::parse(text, nullptr, false);
    if (answer.body.is_discarded()) {
        return AdminFailure{false, make_error(endpoint_.url() + std::string(target),
                                              "HTTP " + std::to_string(answer.status) +
                                                  " with a body that is not "
                                                  "JSON: \"" +
                                                  text.substr(0, 200) + "\"")};
    }
    return answer;
}

std::string url_encode(std::string_view text) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += c;
        } else {
            out += '%';
            out += kHex[u >> 4];
            out += kHex[u & 0xF];
        }
    }
    return out;
}

}  // namespace tuner::ctl
