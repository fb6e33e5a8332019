// The live status page (see status_page.hpp).
#include "tuner/admin/status_page.hpp"

#include <random>

#include "tuner/admin/status_page_html.hpp"

namespace tuner {

namespace {
constexpr std::string_view kNoncePlaceholder = "{{NONCE}}";
}  // namespace

std::string make_csp_nonce() {
    std::random_device random;  // getrandom(2)
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 4; ++i) {
        std::uint32_t word = random();
        for (int j = 0; j < 8; ++j, word >>= 4) out += kHex[word & 0xf];
    }
    return out;
}

std::string_view status_page_template() {
    return embedded::status_page_html;
}

std::string status_page_csp(std::string_view nonce) {
    const std::string n(nonce);
    return "default-src 'none'; script-src 'nonce-" + n + "'; style-src 'nonce-" + n +
           "'; connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; "
           "frame-ancestors 'none'";
}

server::AdminResponse status_page_response(std::string_view nonce) {
    server::AdminResponse r;
    r.content_type = "text/html; charset=utf-8";
    const std::string_view page = status_page_template();
    r.body.reserve(page.size() + 2 * nonce.size());
    for (std::size_t at = 0;;) {
        const auto next = page.find(kNoncePlaceholder, at);
        r.body.append(page.substr(at, next - at));
        if (next == std::string_view::npos) break;
        r.body.append(nonce);
        at = next + kNoncePlaceholder.size();
    }
    r.headers = {{"Content-Security-Policy", status_page_csp(nonce)},
                 {"X-Content-Type-Options", "nosniff"},
                 {"X-Frame-Options", "DENY"},
                 {"Referrer-Policy", "no-referrer"}};
    return r;
}

void register_status_page(server::AdminServer& admin) {
    admin.route_without_token("GET", "/",
                              [](const server::AdminRequest&, server::AdminRespond respond) {
                                  respond(status_page_response(make_csp_nonce()));
                              });
}

}  // namespace tuner
