// A small blocking HTTP/1.1 client for tests (Boost.Beast over TCP on 127.0.0.1): one keep-alive
// connection, a timeout on every request, errors as values.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "model/result.hpp"

namespace tuner::test {

struct HttpResponse {
    int status = 0;
    std::string body;
    std::map<std::string, std::string> headers;  // lower-case names
    [[nodiscard]] std::string header(const std::string& name) const;
};

struct HttpRequest {
    std::string method = "GET";
    std::string target = "/";
    std::string body;
    std::map<std::string, std::string> headers;
};

class HttpConnection {
public:
    // "127.0.0.1:8080"
    explicit HttpConnection(std::string host_port,
                            std::chrono::milliseconds timeout = std::chrono::seconds(30));
    ~HttpConnection();
    HttpConnection(const HttpConnection&) = delete;
    HttpConnection& operator=(const HttpConnection&) = delete;

    // Connects on first use and again after the server closed the connection.
    Result<HttpResponse> request(const HttpRequest& req);
    Result<HttpResponse> get(const std::string& target) { return request({"GET", target, {}, {}}); }
    void close();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// One request on a fresh connection.
Result<HttpResponse> http_request(const std::string& host_port, const HttpRequest& req,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(30));
Result<HttpResponse> http_get(const std::string& host_port, const std::string& target,
                              std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Raw bytes in, raw bytes out (until the server closes or `timeout`), for malformed requests.
Result<std::string> raw_exchange(const std::string& host_port, const std::string& bytes,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace tuner::test
