// What the front answers when an exchange cannot go on: every failure of a step is named, and
// one pure function picks the response (status and message) or a silent close. The session
// steps (exchange.hpp) only classify; the policy of answers lives here, unit-tested alone.
#pragma once

#include <string>
#include <string_view>

#include <boost/beast/http/status.hpp>
#include <boost/system/error_code.hpp>

#include "model/config.hpp"

namespace tuner::server {

enum class Failure {
    client_gone,       // the client closed, reset or idled out: nobody to answer
    header_malformed,  // 400
    header_too_large,  // 431
    header_timeout,    // 408: the header did not arrive within header_timeout
    body_too_large,    // 413: Content-Length or the bytes sent exceed max_body_size
    body_malformed,    // 400: bad chunk framing and the like
    body_timeout,      // 408: a buffered body slower than min_body_rate (or header_timeout idle)
    spool_failed,      // 503: a body too large for memory could not be written to the spool
    spool_full,        // 503: the body would take the spool past server.spool_max_size
    too_many_connections,  // 429: the client's address is at max_connections_per_address
    rate_limited,          // 429: the client's address used its [rate_limit] tokens
    queue_full,            // 503 + Retry-After
    queue_timeout,         // 503: no worker became free within queue_timeout
    shutting_down,         // 503: tunerd stops and the request never reached a worker
    worker_unreachable,    // 502: connecting to the worker failed (after one retry)
    stale_connection,      // 502: a parked Unix connection the worker had closed (retried first)
    worker_failed,         // 502: the worker failed before answering
    worker_bad_response,   // 502: the worker's response could not be parsed (header too large...)
    worker_late,           // 504: no response header within request_timeout
    response_cut,          // the worker failed after the response began: close the connection
};

[[nodiscard]] std::string_view to_string(Failure failure);

struct Refusal {
    boost::beast::http::status status = boost::beast::http::status::unknown;  // unknown: none
    std::string message;  // the plain-text body (and what the log says)
    [[nodiscard]] bool answers() const { return status != boost::beast::http::status::unknown; }
};

// The response for a failure; `ec` is the error behind it (named in 400/502 messages).
[[nodiscard]] Refusal refusal_for(Failure failure, const boost::system::error_code& ec,
                                  const ServerConfig& config);

// Reading the request header failed with `ec`: which failure that is.
[[nodiscard]] Failure classify_header_error(const boost::system::error_code& ec);
// Reading the request body (while relaying it to the worker) failed with `ec`.
[[nodiscard]] Failure classify_body_error(const boost::system::error_code& ec);
// Reading the worker's response header failed with `ec`: a transport failure (connection
// closed or reset: the request may be retried if idempotent) or a response that cannot be
// relayed (never retried: the worker ran the request).
[[nodiscard]] Failure classify_response_error(const boost::system::error_code& ec);

// The peer went away: end of stream, reset, broken pipe, or our own cancellation.
[[nodiscard]] bool is_disconnect(const boost::system::error_code& ec);
[[nodiscard]] bool is_timeout(const boost::system::error_code& ec);

}  // namespace tuner::server
