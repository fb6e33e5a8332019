// Fuzz target: what the admin listener (server/admin.cpp) makes of a request before any handler
// runs, and the `since` parser of GET /performance/decisions. The input is a request as it
// arrives; parsed by Beast with the listener's limits, it goes through the listener's own steps:
// the target split at '?', the path url-decoded, the query parsed, the browser guard with and
// without a token, the refusal as a JSON error body. The input as a whole also goes to
// url_decode, parse_query, is_literal_or_localhost and parse_since_time.
// What must hold: nothing throws; url_decode never lengthens its input; a query parsed from
// text without '&' and '=' (once decoded) has at most one pair; a refusal is 403 or 415 with a
// message; and a JSON error body can always be written.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "server/admin.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tuner/decision_log/timestamps.hpp"

namespace {

namespace http = boost::beast::http;
using namespace tuner::server;

void check_text(std::string_view text) {
    const std::string decoded = url_decode(text);
    FUZZ_CHECK(decoded.size() <= text.size(), "url_decode made its input longer");
    const auto query = parse_query(text);
    if (text.find('&') == std::string_view::npos) {
        FUZZ_CHECK(query.size() <= 1, "one pair parsed as several");
    }
    (void)is_literal_or_localhost(text);
    (void)tuner::parse_since_time(text, "since");
}

void check_refusal(const AdminHeaders& headers, bool token_required) {
    const auto refused = browser_refusal(headers, token_required);
    if (!refused) return;
    FUZZ_CHECK(refused->status == 403 || refused->status == 415,
               "a refusal that is neither 403 nor 415: " + std::to_string(refused->status));
    FUZZ_CHECK(!refused->message.empty(), "a refusal without a message");
    // As json_error writes it: bytes that are not UTF-8 become U+FFFD.
    (void)nlohmann::json{{"error", refused->message}}.dump(
        -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input = tuner::fuzz::as_text(data, size);
    check_text(input);

    // The admin listener's parser and limits (AdminServer::session).
    http::request_parser<http::string_body> parser;
    parser.header_limit(64 * 1024);
    parser.body_limit(1024 * 1024);
    parser.eager(true);
    boost::beast::error_code ec;
    parser.put(boost::asio::buffer(input.data(), input.size()), ec);
    if (ec || !parser.is_header_done()) return 0;
    const auto& req = parser.get();
    const std::string_view target(req.target().data(), req.target().size());
    const auto q = target.find('?');
    const std::string path = url_decode(target.substr(0, q));
    const auto query = q == std::string_view::npos ? decltype(parse_query("")){}
                                                   : parse_query(target.substr(q + 1));
    if (const auto it = query.find("since"); it != query.end())
        (void)tuner::parse_since_time(it->second, "since");
    const AdminHeaders headers{
        std::string(req.method_string()), std::string(req[http::field::host]),
        std::string(req[http::field::origin]), std::string(req["Sec-Fetch-Site"]),
        std::string(req[http::field::content_type])};
    check_refusal(headers, false);
    check_refusal(headers, true);
    FUZZ_CHECK(path.size() <= target.size(), "the decoded path is longer than the target");
    return 0;
}
