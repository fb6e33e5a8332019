// The front's answers to failed exchanges (see refusal.hpp).
#include "server/refusal.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <spdlog/fmt/fmt.h>

#include "model/units.hpp"

namespace tuner::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

std::string_view to_string(Failure failure) {
    switch (failure) {
        case Failure::client_gone:
            return "client_gone";
        case Failure::header_malformed:
            return "header_malformed";
        case Failure::header_too_large:
            return "header_too_large";
        case Failure::header_timeout:
            return "header_timeout";
        case Failure::body_too_large:
            return "body_too_large";
        case Failure::body_malformed:
            return "body_malformed";
        case Failure::body_timeout:
            return "body_timeout";
        case Failure::spool_failed:
            return "spool_failed";
        case Failure::spool_full:
            return "spool_full";
        case Failure::too_many_connections:
            return "too_many_connections";
        case Failure::rate_limited:
            return "rate_limited";
        case Failure::queue_full:
            return "queue_full";
        case Failure::queue_timeout:
            return "queue_timeout";
        case Failure::shutting_down:
            return "shutting_down";
        case Failure::worker_unreachable:
            return "worker_unreachable";
        case Failure::stale_connection:
            return "stale_connection";
        case Failure::worker_failed:
            return "worker_failed";
        case Failure::worker_bad_response:
            return "worker_bad_response";
        case Failure::worker_late:
            return "worker_late";
        case Failure::response_cut:
            return "response_cut";
    }
    return "unknown";
}

bool is_timeout(const boost::system::error_code& ec) {
    return ec == beast::error::timeout || ec == asio::error::timed_out;
}

bool is_disconnect(const boost::system::error_code& ec) {
    return ec == asio::error::eof || ec == http::error::end_of_stream ||
           ec == http::error::partial_message || ec == asio::error::connection_reset ||
           ec == asio::error::broken_pipe || ec == asio::error::operation_aborted ||
           ec == asio::error::connection_aborted || ec == asio::error::bad_descriptor;
}

Failure classify_header_error(const boost::system::error_code& ec) {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
        return Failure::header_too_large;
    if (ec == http::error::body_limit) return Failure::body_too_large;  // Content-Length
    if (is_timeout(ec)) return Failure::header_timeout;
    if (is_disconnect(ec)) return Failure::client_gone;
    return Failure::header_malformed;
}

Failure classify_body_error(const boost::system::error_code& ec) {
    if (ec == http::error::body_limit) return Failure::body_too_large;
    if (is_disconnect(ec) || is_timeout(ec)) return Failure::client_gone;
    return Failure::body_malformed;
}

Failure classify_response_error(const boost::system::error_code& ec) {
    if (is_timeout(ec)) return Failure::worker_late;
    if (is_disconnect(ec) || ec.category() == asio::error::get_system_category())
        return Failure::worker_failed;
    return Failure::worker_bad_response;
}

Refusal refusal_for(Failure failure, const boost::system::error_code& ec,
                    const ServerConfig& config) {
    switch (failure) {
        case Failure::client_gone:
        case Failure::response_cut:
            return {};
        case Failure::header_malformed:
            return {http::status::bad_request, "malformed request: " + ec.message()};
        case Failure::header_too_large:
            return {http::status::request_header_fields_too_large,
                    "request header larger than " + format_size(config.max_header_size_bytes)};
        case Failure::header_timeout:
            return {http::status::request_timeout,
                    "request header not received within " + format_duration(config.header_timeout)};
        case Failure::body_too_large:
            return {http::status::payload_too_large,
                    "request body larger than " + format_size(config.max_body_size_bytes)};
        case Failure::body_malformed:
            return {http::status::bad_request, "malformed request body: " + ec.message()};
        case Failure::body_timeout:
            return {http::status::request_timeout,
                    config.min_body_rate_bytes == 0
                        ? "request body stalled for " + format_duration(config.header_timeout)
                        : "request body slower than " + format_size(config.min_body_rate_bytes) +
                              "/s (after " + format_duration(config.header_timeout) + ")"};
        case Failure::spool_failed:
            return {http::status::service_unavailable,
                    "cannot hold the request body: " + ec.message()};
        case Failure::spool_full:
            return {http::status::service_unavailable,
                    "too many large request bodies in progress (at most " +
                        format_size(config.spool_max_size_bytes) + " held at once); retry later"};
        case Failure::too_many_connections:
            return {http::status::too_many_requests,
                    "too many connections from your address (at most " +
                        std::to_string(config.max_connections_per_address) + ")"};
        case Failure::rate_limited:
            return {http::status::too_many_requests,
                    fmt::format("rate limit: {:g} requests/s per client, bursts of {}",
                                config.rate_limit.rate, config.rate_limit.burst + 1)};
        case Failure::queue_full:
            return {http::status::service_unavailable, "all workers busy and the queue is full"};
        case Failure::queue_timeout:
            return {http::status::service_unavailable,
                    "no worker became free within " + format_duration(config.queue_timeout)};
        case Failure::shutting_down:
            return {http::status::service_unavailable, "tunerd is shutting down"};
        case Failure::worker_unreachable:
            return {http::status::bad_gateway, "worker unreachable: " + ec.message()};
        case Failure::stale_connection:
            return {http::status::bad_gateway,
                    "worker closed its connection before the request: " + ec.message()};
        case Failure::worker_failed:
            return {http::status::bad_gateway, "worker failed before answering: " + ec.message()};
        case Failure::worker_bad_response:
            return {http::status::bad_gateway,
                    "worker sent a response that cannot be relayed: " + ec.message()};
        case Failure::worker_late:
            return {http::status::gateway_timeout,
                    "worker did not answer within " + format_duration(config.request_timeout)};
    }
    return {};
}

}  // namespace tuner::server
