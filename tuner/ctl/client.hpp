// tunerctl's way to the daemon: where its admin API is (--admin URL, else the config's
// admin.listen, else state_dir/listen.json when that port is 0), the bearer token from
// admin.token_file, and a small blocking HTTP/1.1 client (Boost.Beast) with a timeout.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "model/config.hpp"
#include "model/result.hpp"
#include "model/units.hpp"

namespace tuner::ctl {

struct AdminEndpoint {
    std::string host;  // "127.0.0.1", "::1" (no brackets), "localhost"
    std::uint16_t port = 0;
    std::string base_path;  // "" or "/tunerd" when a proxy serves the API under a prefix
    std::string origin;     // where the address came from: "--admin", "admin.listen in FILE"
    std::string unix_path;  // set: the admin socket (admin.socket); host and port unused

    // "http://127.0.0.1:9464", "http://[::1]:9464/tunerd"
    [[nodiscard]] std::string url() const;
};

// "http://127.0.0.1:9464", "127.0.0.1:9464", "http://[::1]:9464/prefix", "localhost:9464",
// "unix:/run/tunerd/admin.sock".
// Only plain HTTP: TLS ends in front of tunerd (DESIGN "Interfaces").
Result<AdminEndpoint> parse_admin_url(std::string_view url);

// The address of `config`'s admin listener as a client reaches it: admin.socket when it is set
// and exists (no token needed), else admin.listen, where a wildcard host becomes
// loopback, and port 0 (any free port) is looked up in `state_dir`/listen.json, which the
// daemon writes once it is bound.
Result<AdminEndpoint> admin_endpoint_from_config(const Config& config,
                                                 const std::string& state_dir);

// The token of admin.token_file (its first line, trailing blanks removed); nullopt when no token
// file is configured. Errors name admin.token_file and the file.
Result<std::optional<std::string>> read_admin_token(const AdminConfig& admin);

// One answer of the admin API: its status and its JSON body.
struct AdminAnswer {
    int status = 0;
    nlohmann::json body;
};

// What went wrong on the way: the daemon was not reached (or did not answer in time), or its
// answer was not JSON.
struct AdminFailure {
    bool unreachable = true;
    Error error;
};

class AdminClient {
public:
    AdminClient(AdminEndpoint endpoint, std::optional<std::string> token, Duration timeout);

    // One request on a fresh connection; `target` is the path with its query ("/health").
    // The timeout bounds the connect, the write and the read together.
    [[nodiscard]] std::variant<AdminAnswer, AdminFailure> call(std::string_view method,
                                                               std::string_view target,
                                                               const std::string& body = {}) const;

    [[nodiscard]] const AdminEndpoint& endpoint() const { return endpoint_; }

private:
    AdminEndpoint endpoint_;
    std::optional<std::string> token_;
    Duration timeout_;
};

// "2026-11-23T15:04:05+02:00" -> "2026-11-23T15%3A04%3A05%2B02%3A00": a query value as RFC 3986
// allows it unescaped (letters, digits, "-._~"), everything else percent-encoded.
std::string url_encode(std::string_view text);

}  // namespace tuner::ctl
