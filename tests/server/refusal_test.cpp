// refusal_for() and the classifiers (server/refusal.hpp): which answer each failure gets.
#include "server/refusal.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <gtest/gtest.h>

namespace tuner::server {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using namespace std::chrono_literals;

ServerConfig config() {
    ServerConfig c;
    c.max_header_size_bytes = 16 * 1024;
    c.max_body_size_bytes = 10 * 1024 * 1024;
    c.header_timeout = 10s;
    c.queue_timeout = 10s;
    c.request_timeout = 60s;
    return c;
}

TEST(Refusal, EachFailureGetsItsStatus) {
    const auto c = config();
    const boost::system::error_code none;
    const std::pair<Failure, http::status> cases[] = {
        {Failure::header_malformed, http::status::bad_request},
        {Failure::header_too_large, http::status::request_header_fields_too_large},
        {Failure::header_timeout, http::status::request_timeout},
        {Failure::body_too_large, http::status::payload_too_large},
        {Failure::body_malformed, http::status::bad_request},
        {Failure::body_timeout, http::status::request_timeout},
        {Failure::spool_failed, http::status::service_unavailable},
        {Failure::spool_full, http::status::service_unavailable},
        {Failure::too_many_connections, http::status::too_many_requests},
        {Failure::queue_full, http::status::service_unavailable},
        {Failure::queue_timeout, http::status::service_unavailable},
        {Failure::shutting_down, http::status::service_unavailable},
        {Failure::worker_unreachable, http::status::bad_gateway},
        {Failure::stale_connection, http::status::bad_gateway},
        {Failure::worker_failed, http::status::bad_gateway},
        {Failure::worker_bad_response, http::status::bad_gateway},
        {Failure::worker_late, http::status::gateway_timeout},
    };
    for (const auto& [failure, status] : cases) {
        const auto r = refusal_for(failure, none, c);
        EXPECT_TRUE(r.answers()) << to_string(failure);
        EXPECT_EQ(r.status, status) << to_string(failure);
        EXPECT_FALSE(r.message.empty()) << to_string(failure);
    }
    EXPECT_FALSE(refusal_for(Failure::client_gone, none, c).answers());
    EXPECT_FALSE(refusal_for(Failure::response_cut, none, c).answers());
}

TEST(Refusal, MessagesNameTheLimitAndTheCause) {
    const auto c = config();
    EXPECT_EQ(refusal_for(Failure::header_too_large, {}, c).message,
              "request header larger than 16KB");
    EXPECT_EQ(refusal_for(Failure::body_too_large, {}, c).message, "request body larger than 10MB");
    EXPECT_EQ(refusal_for(Failure::queue_timeout, {}, c).message,
              "no worker became free within 10s");
    EXPECT_EQ(refusal_for(Failure::body_timeout, {}, c).message,
              "request body slower than 500B/s (after 10s)");
    auto no_rate = c;
    no_rate.min_body_rate_bytes = 0;
    EXPECT_EQ(refusal_for(Failure::body_timeout, {}, no_rate).message,
              "request body stalled for 10s");
    auto capped = c;
    capped.max_connections_per_address = 8;
    EXPECT_EQ(refusal_for(Failure::too_many_connections, {}, capped).message,
              "too many connections from your address (at most 8)");
    EXPECT_EQ(refusal_for(Failure::worker_late, {}, c).message, "worker did not answer within 1m");
    const auto refused = make_error_code(asio::error::connection_refused);
    EXPECT_EQ(refusal_for(Failure::worker_unreachable, refused, c).message,
              "worker unreachable: " + refused.message());
}

TEST(Refusal, HeaderErrorsClassified) {
    EXPECT_EQ(classify_header_error(http::error::header_limit), Failure::header_too_large);
    EXPECT_EQ(classify_header_error(http::error::buffer_overflow), Failure::header_too_large);
    EXPECT_EQ(classify_header_error(http::error::body_limit), Failure::body_too_large);
    EXPECT_EQ(classify_header_error(asio::error::timed_out), Failure::header_timeout);
    EXPECT_EQ(classify_header_error(boost::beast::error::timeout), Failure::header_timeout);
    EXPECT_EQ(classify_header_error(http::error::end_of_stream), Failure::client_gone);
    EXPECT_EQ(classify_header_error(asio::error::connection_reset), Failure::client_gone);
    EXPECT_EQ(classify_header_error(asio::error::operation_aborted), Failure::client_gone);
    EXPECT_EQ(classify_header_error(http::error::bad_version), Failure::header_malformed);
    EXPECT_EQ(classify_header_error(http::error::bad_transfer_encoding), Failure::header_malformed);
}

TEST(Refusal, BodyAndResponseErrorsClassified) {
    EXPECT_EQ(classify_body_error(http::error::body_limit), Failure::body_too_large);
    EXPECT_EQ(classify_body_error(http::error::bad_chunk), Failure::body_malformed);
    EXPECT_EQ(classify_body_error(asio::error::eof), Failure::client_gone);
    EXPECT_EQ(classify_body_error(asio::error::timed_out), Failure::client_gone);
    // Transport failures may be retried; a response that cannot be relayed may not.
    EXPECT_EQ(classify_response_error(asio::error::connection_reset), Failure::worker_failed);
    EXPECT_EQ(classify_response_error(http::error::end_of_stream), Failure::worker_failed);
    EXPECT_EQ(classify_response_error(make_error_code(asio::error::broken_pipe)),
              Failure::worker_failed);
    EXPECT_EQ(classify_response_error(http::error::header_limit), Failure::worker_bad_response);
    EXPECT_EQ(classify_response_error(http::error::bad_status), Failure::worker_bad_response);
    EXPECT_EQ(classify_response_error(asio::error::timed_out), Failure::worker_late);
}

}  // namespace
}  // namespace tuner::server
