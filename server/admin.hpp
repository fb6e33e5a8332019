// The admin listener: a small Beast HTTP/1.1 server for /health, /metrics, /performance,
// /workers. The server is driven: tuner/ registers the handlers; this file only routes, checks
// the bearer token, bounds sizes and times, and answers 404/405/401 itself.
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "model/result.hpp"

namespace tuner::server {

struct AdminRequest {
    std::string method;                        // "GET", "POST", ...
    std::string path;                          // without the query
    std::map<std::string, std::string> query;  // decoded
    std::string body;
    std::string content_type;
};

struct AdminResponse {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

// A handler answers through `respond`, at once or later from any thread.
using AdminRespond = std::function<void(AdminResponse)>;
using AdminHandler = std::function<void(const AdminRequest&, AdminRespond)>;

class AdminServer {
public:
    explicit AdminServer(boost::asio::io_context& ioc);
    ~AdminServer();

    void route(std::string method, std::string path, AdminHandler handler);
    // A route that needs no bearer token even when one is set: only for what holds no data and
    // changes nothing (the status page, which then asks for the token itself). The browser
    // rules (browser_refusal) still apply.
    void route_without_token(std::string method, std::string path, AdminHandler handler);
    // When set, every request needs "Authorization: Bearer <token>". May be called while
    // serving (a SIGHUP rereads admin.token_file): the next request checks the new token.
    void set_token(std::optional<std::string> token);

    Result<boost::asio::ip::tcp::endpoint> listen(const boost::asio::ip::tcp::endpoint& endpoint);
    // Or serves on a listening socket systemd passed (socket activation), bound to `bound`.
    Result<boost::asio::ip::tcp::endpoint> adopt(const boost::asio::ip::tcp::endpoint& bound,
                                                 int fd);
    // A second listener on a Unix socket at `path` (admin.socket), mode 0600: whoever can open
    // it is tunerd's user or root, so it needs no bearer token (tunerctl on this host). A stale
    // socket file is replaced; any other file at `path` is an error.
    Status listen_unix(const std::string& path);
    void start();
    void stop();

private:
    template <class Acceptor>
    boost::asio::awaitable<void> accept_loop(Acceptor& acceptor, bool local);
    // `local`: over the Unix socket (no token asked).
    template <class Socket>
    boost::asio::awaitable<void> session(Socket socket, bool local);
    void dispatch(const AdminRequest& request, AdminRespond respond) const;

    boost::asio::io_context& ioc_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::local::stream_protocol::acceptor unix_acceptor_;
    std::string unix_path_;  // removed on stop
    std::map<std::pair<std::string, std::string>, AdminHandler> routes_;
    std::set<std::pair<std::string, std::string>> without_token_;
    mutable std::mutex token_mutex_;
    std::optional<std::string> token_;  // guarded by token_mutex_
};

// What a browser on the admin's machine could send on a page's behalf, refused before any handler
// runs (the admin API has no CORS, so these are the requests a page can make without asking):
// * a state-changing request (POST, PUT, PATCH, DELETE) with an `Origin` that is not a loopback
//   or IP-literal host, or `Sec-Fetch-Site` other than same-origin / none: 403;
// * a POST whose Content-Type is not application/json (a form or text/plain POST needs no
//   preflight): 415;
// * without a bearer token, a `Host` that is not an IP literal or `localhost`: 403. A page on a
//   name that its DNS rebinds to 127.0.0.1 is same-origin with the listener; its Host gives it
//   away. With a token, the browser has nothing to send.
struct AdminHeaders {
    std::string method;
    std::string host;
    std::string origin;
    std::string sec_fetch_site;
    std::string content_type;
};
struct AdminRefusal {
    int status = 0;
    std::string message;
};
[[nodiscard]] std::optional<AdminRefusal> browser_refusal(const AdminHeaders& headers,
                                                          bool token_required);
// "127.0.0.1", "[::1]:9464", "localhost:9464", "10.0.0.5" (a host as Host or Origin name it).
[[nodiscard]] bool is_literal_or_localhost(std::string_view host_and_port);

// "a%20b" -> "a b"; '+' is a space in query strings.
std::string url_decode(std::string_view text);
std::map<std::string, std::string> parse_query(std::string_view query);

}  // namespace tuner::server
