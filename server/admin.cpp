// The admin listener (see admin.hpp).
#include "server/admin.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <mutex>
#include <set>
#include <sstream>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "model/log_text.hpp"
#include "server/guarded.hpp"
#include "server/listener.hpp"

namespace tuner::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::use_awaitable;

namespace {

constexpr auto kAdminTimeout = std::chrono::seconds(30);
constexpr std::uint64_t kAdminBodyLimit = 1024 * 1024;

bool constant_time_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

AdminResponse json_error(int status, const std::string& message) {
    AdminResponse r;
    r.status = status;
    // The message may quote what the client sent: bytes that are not UTF-8 become U+FFFD.
    r.body = nlohmann::json{{"error", message}}.dump(-1, ' ', false,
                                                     nlohmann::json::error_handler_t::replace) +
             "\n";
    return r;
}

// A handler's answer, handed over from whatever thread produced it.
struct Pending {
    explicit Pending(asio::any_io_executor ex) : timer(ex) {}
    asio::steady_timer timer;
    std::mutex mutex;
    std::optional<AdminResponse> response;
};

}  // namespace

std::string url_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '+') {
            out += ' ';
        } else if (c == '%' && i + 2 < text.size() &&
                   std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
                   std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
            out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

bool is_literal_or_localhost(std::string_view host) {
    if (host.empty()) return false;
    std::string_view name = host;
    if (name.front() == '[') {  // [v6] or [v6]:port
        const auto close = name.find(']');
        if (close == std::string_view::npos) return false;
        name = name.substr(1, close - 1);
    } else if (const auto colon = name.rfind(':'); colon != std::string_view::npos) {
        name = name.substr(0, colon);
    }
    if (beast::iequals(name, "localhost")) return true;
    boost::system::error_code ec;
    asio::ip::make_address(std::string(name), ec);
    return !ec;
}

std::optional<AdminRefusal> browser_refusal(const AdminHeaders& h, bool token_required) {
    if (!token_required && !is_literal_or_localhost(h.host)) {
        return AdminRefusal{403, "Host \"" + h.host +
                                     "\" is not this listener's address (a DNS-rebinding page?); "
                                     "use the IP address or localhost, or set admin.token_file"};
    }
    const bool changes_state =
        h.method == "POST" || h.method == "PUT" || h.method == "PATCH" || h.method == "DELETE";
    if (!changes_state) return std::nullopt;
    if (!h.origin.empty()) {
        const auto scheme = h.origin.find("://");
        const std::string_view host = scheme == std::string::npos
                                          ? std::string_view()
                                          : std::string_view(h.origin).substr(scheme + 3);
        if (!is_literal_or_localhost(host)) {
            return AdminRefusal{403, "cross-site request refused (Origin " + h.origin + ")"};
        }
    }
    if (!h.sec_fetch_site.empty() && h.sec_fetch_site != "same-origin" &&
        h.sec_fetch_site != "none") {
        return AdminRefusal{403,
                            "cross-site request refused (Sec-Fetch-Site " + h.sec_fetch_site + ")"};
    }
    if (h.method == "POST") {
        std::string_view type =
            std::string_view(h.content_type).substr(0, h.content_type.find(';'));
        while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
        if (!beast::iequals(type, "application/json")) {
            return AdminRefusal{415,
                                "a POST to the admin API needs Content-Type: "
                                "application/json (got \"" +
                                    h.content_type + "\")"};
        }
    }
    return std::nullopt;
}

std::map<std::string, std::string> parse_query(std::string_view query) {
    std::map<std::string, std::string> out;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const auto pair = query.substr(0, amp);
        if (!pair.empty()) {
            const auto eq = pair.find('=');
            out[url_decode(pair.substr(0, eq))] =
                eq == std::string_view::npos ? "" : url_decode(pair.substr(eq + 1));
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return out;
}

AdminServer::AdminServer(asio::io_context& ioc) : ioc_(ioc), acceptor_(ioc), unix_acceptor_(ioc) {}

AdminServer::~AdminServer() {
    stop();
}

void AdminServer::route(std::string method, std::string path, AdminHandler handler) {
    routes_[{std::move(method), std::move(path)}] = std::move(handler);
}

void AdminServer::route_without_token(std::string method, std::string path, AdminHandler handler) {
    without_token_.insert({method, path});
    route(std::move(method), std::move(path), std::move(handler));
}

void AdminServer::set_token(std::optional<std::string> token) {
    std::lock_guard lock(token_mutex_);
    token_ = std::move(token);
}

Result<tcp::endpoint> AdminServer::listen(const tcp::endpoint& endpoint) {
    return open_listener(acceptor_, endpoint);
}

Result<tcp::endpoint> AdminServer::adopt(const tcp::endpoint& bound, int fd) {
    return adopt_listener(acceptor_, bound, fd);
}

Status AdminServer::listen_unix(const std::string& path) {
    namespace local = asio::local;
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return make_error(path, "admin.socket: a file that is not a socket is in the way");
        ::unlink(path.c_str());  // left by an earlier run
    }
    beast::error_code ec;
    unix_acceptor_.open(local::stream_protocol(), ec);
    if (!ec) unix_acceptor_.bind(local::stream_protocol::endpoint(path), ec);
    // Owner only before anyone is told it exists (its directory is tunerd's own, 0700).
    if (!ec && ::chmod(path.c_str(), 0600) != 0)
        ec = beast::error_code(errno, boost::system::system_category());
    if (!ec) unix_acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        unix_acceptor_.close(ec);
        return Error{"admin.socket: cannot listen: " + ec.message(), path, ec.value()};
    }
    unix_path_ = path;
    return {};
}

void AdminServer::start() {
    spawn_guarded(ioc_, accept_loop(acceptor_, false), "admin_accept");
    if (unix_acceptor_.is_open())
        spawn_guarded(ioc_, accept_loop(unix_acceptor_, true), "admin_accept_unix");
}

void AdminServer::stop() {
    beast::error_code ec;
    acceptor_.close(ec);
    if (unix_acceptor_.is_open()) {
        unix_acceptor_.close(ec);
        ::unlink(unix_path_.c_str());
    }
}

template <class Acceptor>
asio::awaitable<void> AdminServer::accept_loop(Acceptor& acceptor, bool local) {
    for (;;) {
        beast::error_code ec;
        auto socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (!acceptor.is_open()) co_return;
            asio::steady_timer t(ioc_, std::chrono::milliseconds(100));
            co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
        }
        spawn_guarded(ioc_, session(std::move(socket), local), "admin_session");
    }
}

void AdminServer::dispatch(const AdminRequest& request, AdminRespond respond) const {
    auto it = routes_.find({request.method, request.path});
    if (it != routes_.end()) {
        it->second(request, std::move(respond));
        return;
    }
    std::set<std::string> allowed;
    for (const auto& [key, handler] : routes_) {
        if (key.second == request.path) allowed.insert(key.first);
    }
    if (allowed.empty()) {
        respond(json_error(404, "no such endpoint: " + request.path));
        return;
    }
    std::string allow;
    for (const auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
    AdminResponse r =
        json_error(405, request.method + " not allowed on " + request.path + "; use " + allow);
    r.headers.emplace_back("Allow", allow);
    respond(std::move(r));
}

template <class Socket>
asio::awaitable<void> AdminServer::session(Socket socket, bool local) {
    using Protocol = typename Socket::protocol_type;
    beast::basic_stream<Protocol> stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        beast::error_code ec;
        http::request_parser<http::string_body> parser;
        parser.header_limit(64 * 1024);
        parser.body_limit(kAdminBodyLimit);
        stream.expires_after(kAdminTimeout);
        co_await http::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
        if (ec == http::error::end_of_stream || ec == asio::error::eof ||
            ec == beast::error::timeout || ec == asio::error::connection_reset ||
            ec == asio::error::operation_aborted) {
            break;
        }
        const auto& req = parser.get();
        AdminResponse response;
        bool keep_alive = !ec && req.keep_alive();
        if (ec) {
            response = json_error(ec == http::error::header_limit ? 431
                                  : ec == http::error::body_limit ? 413
                                                                  : 400,
                                  "bad request: " + ec.message());
        } else {
            AdminRequest request;
            request.method = std::string(req.method_string());
            const std::string_view target(req.target().data(), req.target().size());
            const auto q = target.find('?');
            request.path = url_decode(target.substr(0, q));
            if (q != std::string_view::npos) request.query = parse_query(target.substr(q + 1));
            request.body = req.body();
            request.content_type = std::string(req[http::field::content_type]);
            const std::string_view auth(req[http::field::authorization].data(),
                                        req[http::field::authorization].size());
            AdminHeaders headers{request.method, std::string(req[http::field::host]),
                                 std::string(req[http::field::origin]),
                                 std::string(req["Sec-Fetch-Site"]), request.content_type};
            std::optional<std::string> token;
            if (!local) {
                std::lock_guard lock(token_mutex_);
                token = token_;
            }
            if (auto refused = browser_refusal(headers, token.has_value())) {
                spdlog::warn("event=admin_refused method={} path={} status={} why={}",
                             request.method, log_quote(request.path), refused->status,
                             log_quote(refused->message));
                response = json_error(refused->status, refused->message);
            } else if (token && !without_token_.contains({request.method, request.path}) &&
                       !(auth.rfind("Bearer ", 0) == 0 &&
                         constant_time_equal(auth.substr(7), *token))) {
                response = json_error(401, "missing or wrong bearer token (admin.token_file)");
                response.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"tunerd\"");
            } else {
                auto pending = std::make_shared<Pending>(stream.get_executor());
                pending->timer.expires_after(kAdminTimeout);
                auto respond = [pending](AdminResponse r) {
                    {
                        std::lock_guard lock(pending->mutex);
                        pending->response = std::move(r);
                    }
                    asio::post(pending->timer.get_executor(),
                               [pending] { pending->timer.cancel(); });
                };
                try {
                    dispatch(request, respond);
                } catch (const std::exception& e) {
                    // A handler that throws answers 500; the listener and the daemon live on.
                    spdlog::error("event=admin_handler_failed method={} path={} error=\"{}\"",
                                  request.method, log_quote(request.path), e.what());
                    respond(json_error(500, std::string("internal error: ") + e.what()));
                }
                bool answered = false;
                {
                    std::lock_guard lock(pending->mutex);
                    answered = pending->response.has_value();
                }
                if (!answered)
                    co_await pending->timer.async_wait(asio::redirect_error(use_awaitable, ec));
                std::lock_guard lock(pending->mutex);
                response = pending->response ? std::move(*pending->response)
                                             : json_error(503, "no answer within 30s");
            }
        }
        http::response<http::string_body> res{static_cast<http::status>(response.status), 11};
        res.set(http::field::server, "tunerd");
        res.set(http::field::content_type, response.content_type);
        res.set(http::field::cache_control, "no-store");
        for (const auto& [k, v] : response.headers) res.set(k, v);
        res.body() = std::move(response.body);
        if (!ec && req.method() == http::verb::head) res.body().clear();
        res.keep_alive(keep_alive);
        res.prepare_payload();
        stream.expires_after(kAdminTimeout);
        co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
        if (ec || !keep_alive) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(Socket::shutdown_send, ignored);
}

}  // namespace tuner::server
