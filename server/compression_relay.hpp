// The session's side of [compression] (compression.hpp has the rules and the encoders): the
// response header set for the coding chosen, a small response compressed whole, and a long one
// compressed piece by piece as it is relayed. Each compress call takes at most kCompressStep bytes
// of input, and the coroutine gives the I/O thread back between calls (a read, a write or a post),
// so one large response never stalls the other connections of its thread.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>

#include "server/compression.hpp"
#include "server/deadline.hpp"

namespace tuner::server {

namespace compression_detail {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

// Input per compress call: about a millisecond of CPU at gzip 6 (docs/benchmarks.md).
inline constexpr std::size_t kCompressStep = 16 * 1024;

// Every line of field `name`, joined with "," (a list-based field may come in several lines);
// nullopt when there is none. Bounded by the header limit.
inline std::optional<std::string> joined(const http::fields& fields, http::field name) {
    std::optional<std::string> out;
    for (auto [it, end] = fields.equal_range(name); it != end; ++it) {
        if (!out) {
            out.emplace();
        } else {
            out->push_back(',');
        }
        out->append(it->value().data(), it->value().size());
    }
    return out;
}

inline bool lists_token(const http::fields& fields, http::field name, std::string_view token) {
    for (auto [it, end] = fields.equal_range(name); it != end; ++it) {
        for (const auto element : http::token_list(it->value())) {
            if (beast::iequals(element, token)) return true;
        }
    }
    return false;
}

// Nothing more to read from `in` right now (FIONREAD): the worker paused, and what was compressed
// so far is flushed to the client. A stream that cannot tell (the tests' streams) says yes.
template <class Stream>
bool drained(Stream& in) {
    if constexpr (requires(Stream & s, boost::system::error_code & ec) { s.available(ec); }) {
        boost::system::error_code ec;
        return in.available(ec) == 0 || ec;
    } else {
        return true;
    }
}

}  // namespace compression_detail

// Decides the coding of response `res` to request `req` and sets its header for it: Vary:
// Accept-Encoding when the representation depends on it; when compressed, Content-Encoding, no
// Content-Length (the caller frames the body), no Accept-Ranges (a range of the compressed
// bytes is not offered), and a strong ETag made weak (nginx's gzip filter does all three).
// A HEAD response gets the same header as the GET would and no encoder. Returns the encoder,
// or null when the body goes as it is.
inline std::unique_ptr<Encoder> start_compression(const CompressionConfig& config,
                                                  std::optional<unsigned> tuned_level,
                                                  CompressionCounters& counters,
                                                  const boost::beast::http::fields& req,
                                                  boost::beast::http::response_header<>& res,
                                                  bool head,
                                                  std::optional<std::uint64_t> content_length) {
    namespace http = compression_detail::http;
    using compression_detail::joined;
    if (!config.enabled) return nullptr;
    const auto cache_control = joined(res, http::field::cache_control);
    ResponseFacts facts;
    facts.status = static_cast<int>(res.result_int());
    facts.head = head;
    facts.content_length = content_length;
    facts.content_type = res[http::field::content_type];
    facts.content_encoding = res[http::field::content_encoding];
    facts.content_range = res.count(http::field::content_range) != 0;
    facts.cache_control = cache_control ? std::string_view(*cache_control) : std::string_view{};
    const auto accept = joined(req, http::field::accept_encoding);
    const CompressionPlan plan = plan_compression(
        config, facts,
        negotiate_coding(accept ? std::optional<std::string_view>(*accept) : std::nullopt));
    if (plan.vary && !compression_detail::lists_token(res, http::field::vary, "accept-encoding") &&
        !compression_detail::lists_token(res, http::field::vary, "*")) {
        res.insert(http::field::vary, "Accept-Encoding");
    }
    if (plan.coding == Coding::identity) return nullptr;
    std::unique_ptr<Encoder> encoder;
    if (!head) {
        if (counters.memory_bytes.load(std::memory_order_relaxed) >= kMaxCompressionMemoryBytes) {
            counters.over_memory.fetch_add(1, std::memory_order_relaxed);
            return nullptr;  // the compressors in use hold their bound: this one goes plain
        }
        const auto levels = effective_levels(config, tuned_level);
        encoder =
            Encoder::make(plan.coding, plan.coding == Coding::gzip ? levels.gzip : levels.brotli,
                          content_length, counters);
        if (!encoder) return nullptr;  // no memory for it: the body goes as it is
    }
    res.set(http::field::content_encoding, to_string(plan.coding));
    res.erase(http::field::content_length);
    res.erase(http::field::accept_ranges);
    const auto etag = res[http::field::etag];
    if (!etag.empty() && !etag.starts_with("W/")) {
        res.set(http::field::etag, "W/" + std::string(etag));
    }
    return encoder;
}

// A small response's body, compressed whole into `out`: kCompressStep bytes per call, with the
// thread given back between calls. False when the encoder fails.
template <class Executor>
boost::asio::awaitable<bool> compress_whole(Encoder& encoder, std::span<const char> body,
                                            std::string& out, Executor executor) {
    namespace asio = compression_detail::asio;
    out.clear();
    for (std::size_t offset = 0;;) {
        const std::size_t n = std::min(compression_detail::kCompressStep, body.size() - offset);
        const bool last = offset + n == body.size();
        if (!encoder.encode(body.subspan(offset, n), last ? Flush::finish : Flush::none, out))
            co_return false;
        offset += n;
        if (last) co_return true;
        co_await asio::post(executor, asio::use_awaitable);
    }
}

// Streams the body of the response in parser `p` from `in` to `out` through serializer `sr`
// (its header written, chunked or close-delimited), compressed by `encoder` (relay_body of
// exchange.hpp with a compress call between read and write). When a read has taken everything
// the worker sent so far (the worker paused), the encoder is flushed, so the client sees it;
// while more is waiting, the encoder keeps its context (a flush per read would cost ratio).
// in_ec / out_ec tell which side failed; an encoder failure is in_ec (the response is cut).
// `copy` (when given) gets every piece of the body as the worker sent it, before compression
// (the micro-cache stores the identity body: any append(const char*, std::size_t)).
template <class InStream, class OutStream, class Copy = std::nullptr_t>
boost::asio::awaitable<void> relay_compressed(
    InStream& in, Deadline& in_deadline, boost::beast::flat_buffer& in_buffer,
    boost::beast::http::response_parser<boost::beast::http::buffer_body>& p, OutStream& out,
    Deadline& out_deadline,
    boost::beast::http::response_serializer<boost::beast::http::buffer_body>& sr,
    Duration in_timeout, Duration out_timeout, Encoder& encoder, boost::system::error_code& in_ec,
    boost::system::error_code& out_ec, std::uint64_t* written = nullptr, Copy* copy = nullptr) {
    namespace asio = compression_detail::asio;
    namespace http = compression_detail::http;
    std::array<char, compression_detail::kCompressStep> buf;
    std::string compressed;
    compressed.reserve(compression_detail::kCompressStep + 1024);
    auto& body = p.get().body();
    for (bool done = p.is_done();;) {
        std::size_t n = 0;
        if (!done) {
            body.data = buf.data();
            body.size = buf.size();
            in_deadline.arm(in_timeout);
            co_await http::async_read_some(in, in_buffer, p,
                                           asio::redirect_error(asio::use_awaitable, in_ec));
            in_deadline.settle(in_ec);
            if (in_ec == http::error::need_buffer) in_ec = {};
            if (in_ec) co_return;
            n = buf.size() - body.size;
            done = p.is_done();
            if constexpr (!std::is_same_v<Copy, std::nullptr_t>) {
                if (copy && n > 0) copy->append(buf.data(), n);
            }
        }
        const bool paused = n > 0 && in_buffer.size() == 0 && compression_detail::drained(in);
        const Flush flush = done ? Flush::finish : paused ? Flush::sync : Flush::none;
        compressed.clear();
        if (!encoder.encode({buf.data(), n}, flush, compressed)) {
            in_ec = make_error_code(boost::system::errc::io_error);
            co_return;
        }
        if (!compressed.empty()) {
            // Never an empty piece with more = true: Beast's chunked serializer would write it
            // as a last chunk.
            body.data = compressed.data();
            body.size = compressed.size();
            body.more = true;
            out_deadline.arm(out_timeout);
            const std::size_t n = co_await http::async_write(
                out, sr, asio::redirect_error(asio::use_awaitable, out_ec));
            if (written) *written += n;
            out_deadline.settle(out_ec);
            if (out_ec == http::error::need_buffer) out_ec = {};
            if (out_ec) co_return;
        }
        if (done) break;
    }
    body.data = nullptr;
    body.size = 0;
    body.more = false;
    out_deadline.arm(out_timeout);
    const std::size_t n =
        co_await http::async_write(out, sr, asio::redirect_error(asio::use_awaitable, out_ec));
    if (written) *written += n;
    out_deadline.settle(out_ec);
    if (out_ec == http::error::need_buffer) out_ec = {};
}

}  // namespace tuner::server
