// HTTP helpers of the front that need no socket: hop-by-hop header removal (RFC 9110 §7.6.1),
// method idempotency (RFC 9110 §9.2.2) and the front's own error responses.
#pragma once

#include <string>
#include <string_view>

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

namespace tuner::server {

// `s` without leading and trailing optional whitespace (OWS: spaces and tabs, RFC 9110 §5.6.3).
[[nodiscard]] std::string_view trim_ows(std::string_view s);

namespace http = boost::beast::http;

// Removes Connection, every header Connection names, Keep-Alive, Proxy-Connection, TE,
// Transfer-Encoding, Upgrade and Trailer: they describe one hop, not the message.
void strip_hop_by_hop(http::fields& fields);

// GET, HEAD, OPTIONS (and TRACE): safe to send twice when the first attempt got no answer.
bool is_retryable_method(http::verb method);

// A complete response produced by the front itself (400, 408, 413, 429, 431, 502, 503, 504).
http::response<http::string_body> front_error(http::status status, unsigned version,
                                              std::string_view message, bool keep_alive);

}  // namespace tuner::server
