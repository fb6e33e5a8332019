// HTTP helpers of the front (see http_util.hpp).
#include "server/http_util.hpp"

#include <algorithm>
#include <cctype>
#include <vector>

#include <boost/beast/core/string.hpp>

namespace tuner::server {

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

void strip_hop_by_hop(http::fields& fields) {
    // Headers named by Connection are hop-by-hop too (RFC 9110 §7.6.1).
    std::vector<std::string_view> named;
    const auto range = fields.equal_range(http::field::connection);
    const bool has_connection = range.first != range.second;
    for (auto it = range.first; it != range.second; ++it) {
        std::string_view value(it->value().data(), it->value().size());
        while (!value.empty()) {
            const auto comma = value.find(',');
            const auto token = trim_ows(value.substr(0, comma));
            // Never let a client strip the framing or the Host through Connection.
            if (!token.empty() && !boost::beast::iequals(token, "host") &&
                !boost::beast::iequals(token, "content-length"))
                named.push_back(token);
            if (comma == std::string_view::npos) break;
            value.remove_prefix(comma + 1);
        }
    }
    // One pass over the fields (a lookup per hop-by-hop name was a tree search each, on every
    // request and response). The named tokens point into Connection's value: erased last.
    const auto hop = [&](const http::fields::value_type& f) {
        switch (f.name()) {
            case http::field::keep_alive:
            case http::field::proxy_connection:
            case http::field::te:
            case http::field::transfer_encoding:
            case http::field::upgrade:
            case http::field::trailer:
                return true;
            default:
                break;
        }
        if (f.name() == http::field::connection) return false;
        const std::string_view name(f.name_string().data(), f.name_string().size());
        return std::any_of(named.begin(), named.end(), [&](std::string_view token) {
            return boost::beast::iequals(token, name);
        });
    };
    for (auto it = fields.begin(); it != fields.end();) {
        if (hop(*it)) {
            it = fields.erase(it);
        } else {
            ++it;
        }
    }
    if (has_connection) fields.erase(http::field::connection);
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
