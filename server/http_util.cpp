// HTTP helpers of the front (see http_util.hpp).
#include "server/http_util.hpp"

#include <algorithm>
#include <cctype>
#include <vector>

namespace tuner::server {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

void strip_hop_by_hop(http::fields& fields) {
    // Headers named by Connection are hop-by-hop too (RFC 9110 §7.6.1).
    std::vector<std::string> named;
    const auto range = fields.equal_range(http::field::connection);
    for (auto it = range.first; it != range.second; ++it) {
        std::string_view value(it->value().data(), it->value().size());
        while (!value.empty()) {
            const auto comma = value.find(',');
            const auto token = trim(value.substr(0, comma));
            if (!token.empty()) named.emplace_back(token);
            if (comma == std::string_view::npos) break;
            value.remove_prefix(comma + 1);
        }
    }
    for (const auto& name : named) {
        std::string lower(name);
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        // Never let a client strip the framing or the Host through Connection.
        if (lower == "host" || lower == "content-length") continue;
        fields.erase(name);
    }
    for (const auto f :
         {http::field::connection, http::field::keep_alive, http::field::proxy_connection,
          http::field::te, http::field::transfer_encoding, http::field::upgrade,
          http::field::trailer}) {
        fields.erase(f);
    }
}

bool is_retryable_method(http::verb method) {
    return method == http::verb::get || method == http::verb::head ||
           method == http::verb::options || method == http::verb::trace;
}

http::response<http::string_body> front_error(http::status status, unsigned version,
                                              std::string_view message, bool keep_alive) {
    http::response<http::string_body> res{status, version};
    res.set(http::field::server, "tunerd");
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.set(http::field::cache_control, "no-store");
    if (status == http::status::service_unavailable || status == http::status::too_many_requests)
        res.set(http::field::retry_after, "1");
    res.body() = std::string(message) + "\n";
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
}

}  // namespace tuner::server
