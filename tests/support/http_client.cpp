// Test HTTP client (see http_client.hpp).
#include "tests/support/http_client.hpp"

#include <algorithm>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace tuner::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

tcp::endpoint parse_endpoint(const std::string& host_port) {
    const auto colon = host_port.rfind(':');
    std::string host = host_port.substr(0, colon);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    return {asio::ip::make_address(host),
            static_cast<unsigned short>(std::stoi(host_port.substr(colon + 1)))};
}

}  // namespace

std::string HttpResponse::header(const std::string& name) const {
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    auto it = headers.find(lower);
    return it == headers.end() ? "" : it->second;
}

struct HttpConnection::Impl {
    Impl(std::string hp, std::chrono::milliseconds t)
        : host_port(std::move(hp)), timeout(t), stream(ioc) {}
    std::string host_port;
    std::chrono::milliseconds timeout;
    asio::io_context ioc;
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    bool connected = false;
};

HttpConnection::HttpConnection(std::string host_port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>(std::move(host_port), timeout)) {}

HttpConnection::~HttpConnection() {
    close();
}

void HttpConnection::close() {
    if (!impl_->connected) return;
    beast::error_code ec;
    impl_->stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    impl_->stream.close();
    impl_->connected = false;
    impl_->buffer.clear();
}

Result<HttpResponse> HttpConnection::request(const HttpRequest& req) {
    auto& s = impl_->stream;
    beast::error_code ec;
    if (!impl_->connected) {
        s.expires_after(impl_->timeout);
        s.connect(parse_endpoint(impl_->host_port), ec);
        if (ec) return make_error(impl_->host_port, "connect: " + ec.message());
        impl_->connected = true;
        impl_->buffer.clear();
    }
    http::request<http::string_body> r{http::string_to_verb(req.method), req.target, 11};
    r.set(http::field::host, impl_->host_port);
    r.set(http::field::user_agent, "tunerd-test");
    for (const auto& [k, v] : req.headers) r.set(k, v);
    if (!req.body.empty() || req.method == "POST" || req.method == "PUT") r.body() = req.body;
    r.prepare_payload();
    s.expires_after(impl_->timeout);
    http::write(s, r, ec);
    if (ec) {
        close();
        return make_error(impl_->host_port, "write: " + ec.message());
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    parser.header_limit(1024 * 1024);  // responses with large headers (many Set-Cookie) pass
    if (req.method == "HEAD") parser.skip(true);
    http::read(s, impl_->buffer, parser, ec);
    if (ec) {
        close();
        return make_error(impl_->host_port, "read: " + ec.message());
    }
    auto res = parser.release();
    HttpResponse out;
    out.status = res.result_int();
    out.body = std::move(res.body());
    for (const auto& f : res) {
        std::string name(f.name_string());
        std::transform(name.begin(), name.end(), name.begin(), ::tolower);
        out.headers[name] = std::string(f.value());
    }
    if (!res.keep_alive()) close();
    return out;
}

Result<HttpResponse> http_request(const std::string& host_port, const HttpRequest& req,
                                  std::chrono::milliseconds timeout) {
    HttpConnection c(host_port, timeout);
    return c.request(req);
}

Result<HttpResponse> http_get(const std::string& host_port, const std::string& target,
                              std::chrono::milliseconds timeout) {
    return http_request(host_port, {"GET", target, {}, {}}, timeout);
}

Result<std::string> raw_exchange(const std::string& host_port, const std::string& bytes,
                                 std::chrono::milliseconds timeout) {
    asio::io_context ioc;
    beast::tcp_stream s(ioc);
    beast::error_code ec;
    s.expires_after(timeout);
    s.connect(parse_endpoint(host_port), ec);
    if (ec) return make_error(host_port, "connect: " + ec.message());
    s.expires_after(timeout);
    asio::write(s, asio::buffer(bytes), ec);
    if (ec) return make_error(host_port, "write: " + ec.message());
    std::string out;
    char buf[4096];
    for (;;) {
        s.expires_after(timeout);
        const auto n = s.read_some(asio::buffer(buf), ec);
        out.append(buf, n);
        if (ec) break;
    }
    return out;
}

}  // namespace tuner::test
