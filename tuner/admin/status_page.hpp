// The live status page: GET / on the admin listener serves one self-contained HTML page
// (status_page.html, embedded at build time; inline CSS and JS, no external assets) that reads
// /performance and /health every 2 s with the bearer token the user gives it, and draws the
// pool, the request rate, latency, queue wait, memory and CPU against their limits, and the
// latest decisions (docs/api.md, "GET /").
#pragma once

#include <string>
#include <string_view>

#include "server/admin.hpp"

namespace tuner {

// 32 hex digits from the system's random source: a fresh CSP nonce for each answer.
std::string make_csp_nonce();

// The page with `nonce` as the nonce of its only <style> and <script>, and the headers that
// keep it to itself: a Content-Security-Policy that allows those two and same-origin fetches
// only (no other source, no framing, no form posts, no base URL), X-Content-Type-Options:
// nosniff, X-Frame-Options: DENY, Referrer-Policy: no-referrer. (Cache-Control: no-store is
// on every admin answer.)
server::AdminResponse status_page_response(std::string_view nonce);

// The Content-Security-Policy for `nonce`.
std::string status_page_csp(std::string_view nonce);

// The page's template as embedded ("{{NONCE}}" where the nonce goes).
std::string_view status_page_template();

// GET / without a bearer token (the page holds no data; its fetches carry the token).
void register_status_page(server::AdminServer& admin);

}  // namespace tuner
