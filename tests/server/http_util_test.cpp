// HTTP helpers of the front: hop-by-hop headers (RFC 9110 §7.6.1), which
// methods a retry may resend, and the front's own error responses.
#include "server/http_util.hpp"

#include <gtest/gtest.h>

namespace tuner::server {
namespace {

TEST(HttpUtil, StripsTheHopByHopHeaders) {
    http::fields f;
    f.set(http::field::connection, "keep-alive");
    f.set(http::field::keep_alive, "timeout=5");
    f.set(http::field::proxy_connection, "keep-alive");
    f.set(http::field::te, "trailers");
    f.set(http::field::transfer_encoding, "chunked");
    f.set(http::field::upgrade, "websocket");
    f.set(http::field::trailer, "Expires");
    f.set(http::field::host, "example.test");
    f.set(http::field::accept, "*/*");
    strip_hop_by_hop(f);
    for (const auto field :
         {http::field::connection, http::field::keep_alive, http::field::proxy_connection,
          http::field::te, http::field::transfer_encoding, http::field::upgrade,
          http::field::trailer}) {
        EXPECT_EQ(f.count(field), 0u) << http::to_string(field);
    }
    EXPECT_EQ(f[http::field::host], "example.test");
    EXPECT_EQ(f[http::field::accept], "*/*");
}

TEST(HttpUtil, StripsTheHeadersConnectionNames) {
    http::fields f;
    f.insert(http::field::connection, "close, X-Session-Secret ,x-trace");
    f.insert(http::field::connection, "X-Other");
    f.set("X-Session-Secret", "s3cr3t");
    f.set("X-Trace", "1");
    f.set("X-Other", "2");
    f.set("X-Kept", "3");
    strip_hop_by_hop(f);
    EXPECT_EQ(f.count("X-Session-Secret"), 0u);
    EXPECT_EQ(f.count("X-Trace"), 0u);  // names match without regard to case
    EXPECT_EQ(f.count("X-Other"), 0u);  // named by a second Connection header
    EXPECT_EQ(f["X-Kept"], "3");
}

TEST(HttpUtil, NeverStripsHostOrContentLengthEvenWhenConnectionNamesThem) {
    http::fields f;
    f.set(http::field::connection, "Host, content-length");
    f.set(http::field::host, "example.test");
    f.set(http::field::content_length, "12");
    strip_hop_by_hop(f);
    EXPECT_EQ(f[http::field::host], "example.test");
    EXPECT_EQ(f[http::field::content_length], "12");
}

TEST(HttpUtil, RetriesOnlyMethodsThatAreSafeToSendTwice) {
    for (const auto m : {http::verb::get, http::verb::head, http::verb::options, http::verb::trace})
        EXPECT_TRUE(is_retryable_method(m)) << http::to_string(m);
    for (const auto m : {http::verb::post, http::verb::put, http::verb::patch, http::verb::delete_,
                         http::verb::connect})
        EXPECT_FALSE(is_retryable_method(m)) << http::to_string(m);
}

TEST(HttpUtil, A503FromTheFrontTellsTheClientWhenToRetry) {
    const auto res = front_error(http::status::service_unavailable, 11, "queue full", true);
    EXPECT_EQ(res.result(), http::status::service_unavailable);
    EXPECT_EQ(res[http::field::retry_after], "1");
    EXPECT_EQ(res.body(), "queue full\n");
    EXPECT_EQ(res[http::field::content_length], "11");
    EXPECT_EQ(res[http::field::server], "tunerd");
    EXPECT_EQ(res[http::field::cache_control], "no-store");
    EXPECT_TRUE(res.keep_alive());
}

TEST(HttpUtil, OtherFrontErrorsHaveNoRetryAfterAndHonourTheVersion) {
    const auto res = front_error(http::status::gateway_timeout, 10, "worker too slow", false);
    EXPECT_EQ(res.result(), http::status::gateway_timeout);
    EXPECT_EQ(res.count(http::field::retry_after), 0u);
    EXPECT_EQ(res.version(), 10u);
    EXPECT_FALSE(res.keep_alive());
    EXPECT_EQ(res[http::field::content_type], "text/plain; charset=utf-8");
}

}  // namespace
}  // namespace tuner::server
