// The built-in demo app (see demo_worker.hpp). Blocking I/O, one thread per concurrent request,
// like gunicorn's threaded worker: each thread accepts a connection and serves it until it closes.
#include "server/demo/demo_worker.hpp"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <netinet/in.h>
#include <nlohmann/json.hpp>

#include "server/compression.hpp"

namespace tuner::demo {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

Result<unsigned> parse_uint(std::string_view flag, std::string_view text) {
    unsigned value = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || p != text.data() + text.size()) {
        return make_error(std::string(flag),
                          "not a non-negative integer: \"" + std::string(text) + "\"");
    }
    return value;
}

// Resident memory the process holds: pages written once so they count in RSS (and PSS).
class MemoryBallast {
public:
    void resize_mb(unsigned mb) {
        std::lock_guard lock(mutex_);
        const std::size_t bytes = static_cast<std::size_t>(mb) << 20;
        if (bytes == size_) return;
        if (data_) ::munmap(data_, size_);
        data_ = nullptr;
        size_ = 0;
        if (bytes == 0) return;
        void* p =
            ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return;
        const long page = ::sysconf(_SC_PAGESIZE);
        auto* bytes_p = static_cast<volatile unsigned char*>(p);
        for (std::size_t off = 0; off < bytes; off += static_cast<std::size_t>(page)) {
            bytes_p[off] = static_cast<unsigned char>(off / static_cast<std::size_t>(page) + 1);
        }
        data_ = p;
        size_ = bytes;
    }
    unsigned mb() const {
        std::lock_guard lock(mutex_);
        return static_cast<unsigned>(size_ >> 20);
    }

private:
    mutable std::mutex mutex_;
    void* data_ = nullptr;
    std::size_t size_ = 0;
};

MemoryBallast g_ballast;
// Requests this process has answered, for tests that count what reached the app.
std::atomic<std::uint64_t> g_requests{0};
// Requests to /cache routes that reached the app, and whether they fail (/cache/fail?on=1).
std::atomic<std::uint64_t> g_cache_requests{0};
std::atomic<bool> g_cache_fail{false};

std::optional<unsigned> query_param(std::string_view target, std::string_view name) {
    const auto q = target.find('?');
    if (q == std::string_view::npos) return std::nullopt;
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        const auto eq = pair.find('=');
        if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
            unsigned v = 0;
            const auto value = pair.substr(eq + 1);
            const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
            if (p != value.data() + value.size()) return std::nullopt;
            if (ec == std::errc::result_out_of_range) return UINT_MAX;  // beyond every cap
            if (ec == std::errc{}) return v;
            return std::nullopt;
        }
        if (amp == std::string_view::npos) break;
        rest.remove_prefix(amp + 1);
    }
    return std::nullopt;
}

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// A query parameter's raw text ("" when absent).
std::string_view query_text(std::string_view target, std::string_view name) {
    const auto q = target.find('?');
    if (q == std::string_view::npos) return {};
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        const auto eq = pair.find('=');
        if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
        if (amp == std::string_view::npos) break;
        rest.remove_prefix(amp + 1);
    }
    return {};
}

constexpr const char* kRecordFormat =
    "{\"id\":%08u,\"name\":\"item %08u\",\"tags\":[\"demo\","
    "\"payload\"],\"score\":%05u,\"ok\":true},\n";

std::size_t record_size() {
    static const std::size_t size = [] {
        char buf[128];
        return static_cast<std::size_t>(std::snprintf(buf, sizeof buf, kRecordFormat, 0u, 0u, 0u));
    }();
    return size;
}

// GET /payload?size=N&type=json|html|svg|binary&chunked=1&encoded=1&no_transform=1&etag=1:
// N bytes of demo_payload, with that Content-Type (a Range of them: 206); chunked=1 streams them
// in chunks of 64 KB
// (no Content-Length, never held whole); encoded=1 sends them gzip-encoded by the app itself
// (Content-Encoding: gzip); no_transform=1 adds Cache-Control: no-transform; etag=1 a strong
// ETag. Written here rather than by handle(): a streamed body is not a string.
template <class Socket>
bool serve_payload(Socket& sock, const Request& req, const DemoOptions& opt,
                   beast::error_code& ec) {
    const std::string_view target(req.target().data(), req.target().size());
    const unsigned size = query_param(target, "size").value_or(4096);
    if (size > kMaxPayloadBytes) {
        Response res{http::status::bad_request, req.version()};
        res.set(http::field::content_type, "application/json");
        res.keep_alive(req.keep_alive());
        res.body() =
            "{\"error\":\"size must be at most " + std::to_string(kMaxPayloadBytes) + "\"}\n";
        res.prepare_payload();
        http::write(sock, res, ec);
        return res.keep_alive();
    }
    const auto type = query_text(target, "type");
    const char* content_type = type == "html"     ? "text/html; charset=utf-8"
                               : type == "svg"    ? "image/svg+xml"
                               : type == "binary" ? "application/octet-stream"
                                                  : "application/json";
    const bool head = req.method() == http::verb::head;
    const bool chunked = query_param(target, "chunked").value_or(0) != 0;
    const bool encoded = query_param(target, "encoded").value_or(0) != 0;
    http::response<http::empty_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "tunerd-demo");
    res.set("X-Worker-Id", std::to_string(opt.worker_id));
    res.set(http::field::content_type, content_type);
    if (query_param(target, "no_transform").value_or(0) != 0)
        res.set(http::field::cache_control, "no-transform");
    if (query_param(target, "etag").value_or(0) != 0) res.set(http::field::etag, "\"demo-etag\"");
    res.set(http::field::accept_ranges, "bytes");
    res.keep_alive(req.keep_alive());
    std::string body(chunked ? 0 : size, '\0');
    if (!chunked) demo_payload(0, body);
    // Range: bytes=first-last (one range, as a static file server answers it): 206.
    unsigned first = 0, last = 0;
    const auto range = req[http::field::range];
    if (!chunked && range.starts_with("bytes=") &&
        std::sscanf(std::string(range).c_str(), "bytes=%u-%u", &first, &last) == 2 &&
        first <= last && last < size) {
        res.result(http::status::partial_content);
        res.set(http::field::content_range, "bytes " + std::to_string(first) + "-" +
                                                std::to_string(last) + "/" + std::to_string(size));
        body = body.substr(first, last - first + 1);
    }
    if (encoded) {
        server::CompressionCounters counters;
        auto encoder = server::Encoder::make(server::Coding::gzip, 6, size, counters);
        std::string plain(size, '\0');
        demo_payload(0, plain);
        body.clear();
        if (encoder) encoder->encode(plain, server::Flush::finish, body);
        res.set(http::field::content_encoding, "gzip");
    }
    if (!chunked || encoded) {
        res.content_length(body.size());
        http::response_serializer<http::empty_body> sr{res};
        http::write_header(sock, sr, ec);
        if (!ec && !head) asio::write(sock, asio::buffer(body), ec);
        return res.keep_alive();
    }
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    http::write_header(sock, sr, ec);
    if (head) return res.keep_alive();
    std::string piece(64 * 1024, '\0');
    for (std::uint64_t offset = 0; !ec && offset < size; offset += piece.size()) {
        piece.resize(std::min<std::uint64_t>(64 * 1024, size - offset));
        demo_payload(offset, piece);
        asio::write(sock, http::make_chunk(asio::buffer(piece)), ec);
    }
    if (!ec) asio::write(sock, http::make_chunk_last(), ec);
    return res.keep_alive();
}

Response handle(const Request& req, const DemoOptions& opt) {
    const std::string_view target(req.target().data(), req.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    Response res{http::status::ok, req.version()};
    res.set(http::field::server, "tunerd-demo");
    res.set("X-Worker-Id", std::to_string(opt.worker_id));
    res.set("X-Worker-Pid", std::to_string(::getpid()));
    if (!opt.app_version.empty()) res.set("X-App-Version", opt.app_version);
    res.keep_alive(req.keep_alive());
    res.set(http::field::content_type, "application/json");
    if (path == "/health") {
        res.body() = "{\"status\":\"ok\"}\n";
    } else if ((path == "/" || path == "/work") &&
               query_param(target, "cpu_ms").value_or(0) > kMaxRequestCpuMs) {
        res.result(http::status::bad_request);
        res.body() =
            "{\"error\":\"cpu_ms must be at most " + std::to_string(kMaxRequestCpuMs) + "\"}\n";
    } else if (path == "/" || path == "/work") {
        const unsigned cpu = std::min(query_param(target, "cpu_ms").value_or(opt.cpu_ms), 60'000u);
        const unsigned io = std::min(query_param(target, "io_ms").value_or(opt.io_ms), 3'600'000u);
        burn_cpu_ms(cpu);
        if (io) std::this_thread::sleep_for(std::chrono::milliseconds(io));
        res.body() = "{\"worker\":" + std::to_string(opt.worker_id) +
                     ",\"pid\":" + std::to_string(::getpid()) +
                     ",\"cpu_ms\":" + std::to_string(cpu) + ",\"io_ms\":" + std::to_string(io) +
                     "}\n";
    } else if (path == "/request-headers") {
        // What reached the app (httpbin's /headers): the forwarding headers the front set.
        nlohmann::json headers = nlohmann::json::object();
        for (const auto& field : req) {
            headers[std::string(field.name_string())] = std::string(field.value());
        }
        res.set(http::field::content_type, "application/json");
        res.body() = headers.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    } else if (path == "/cache/count") {
        res.body() = "{\"requests\":" + std::to_string(g_cache_requests.load()) + "}\n";
    } else if (path == "/cache/fail") {
        g_cache_fail = query_param(target, "on").value_or(1) != 0;
        res.body() = std::string("{\"fail\":") + (g_cache_fail ? "true" : "false") + "}\n";
    } else if (path == "/cache" || path.rfind("/cache/", 0) == 0) {
        // For the front's micro-cache: a response whose caching headers the query sets.
        ++g_cache_requests;
        const unsigned ms = std::min(query_param(target, "ms").value_or(0), 10'000u);
        if (ms) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        if (g_cache_fail) {
            res.result(http::status::internal_server_error);
            res.body() = "{\"error\":\"failing on purpose (/cache/fail)\"}\n";
        } else {
            std::string cc;
            auto directive = [&cc](const std::string& d) { cc += (cc.empty() ? "" : ", ") + d; };
            if (auto n = query_param(target, "max_age")) directive("max-age=" + std::to_string(*n));
            if (auto n = query_param(target, "s_maxage"))
                directive("s-maxage=" + std::to_string(*n));
            if (query_param(target, "public")) directive("public");
            if (query_param(target, "private")) directive("private");
            if (query_param(target, "no_store")) directive("no-store");
            if (query_param(target, "no_cache")) directive("no-cache");
            if (!cc.empty()) res.set(http::field::cache_control, cc);
            if (query_param(target, "cookie"))
                res.set(http::field::set_cookie, "session=1; Path=/");
            if (query_param(target, "vary")) res.set(http::field::vary, "X-Variant");
            if (auto n = query_param(target, "status"); n && *n >= 200 && *n <= 599)
                res.result(static_cast<http::status>(*n));
            const unsigned size = std::min(query_param(target, "size").value_or(0), 16u << 20);
            res.body() = "{\"served\":" + std::to_string(g_cache_requests.load()) + ",\"pad\":\"" +
                         std::string(size, 'x') + "\"}\n";
        }
    } else if (path == "/stats") {
        res.body() = "{\"requests\":" + std::to_string(g_requests.load()) + "}\n";
    } else if (path == "/headers") {
        // A response with a large header: n Set-Cookie fields of `size` bytes each.
        const unsigned n = std::min(query_param(target, "n").value_or(1), 2000u);
        const unsigned size = std::min(query_param(target, "size").value_or(16), 4096u);
        for (unsigned i = 0; i < n; ++i) {
            res.insert(http::field::set_cookie,
                       "c" + std::to_string(i) + "=" + std::string(size, 'v') + "; Path=/");
        }
        res.body() = "{\"cookies\":" + std::to_string(n) + "}\n";
    } else if (path == "/echo") {
        res.set(http::field::content_type, req[http::field::content_type].empty()
                                               ? std::string("application/octet-stream")
                                               : std::string(req[http::field::content_type]));
        res.body() = req.body();
    } else if (path == "/rss" && query_param(target, "mb").value_or(0) > kMaxRequestRssMb) {
        res.result(http::status::bad_request);
        res.body() =
            "{\"error\":\"mb must be at most " + std::to_string(kMaxRequestRssMb) + "\"}\n";
    } else if (path == "/rss") {
        if (auto mb = query_param(target, "mb")) g_ballast.resize_mb(*mb);
        res.body() = "{\"rss_mb\":" + std::to_string(g_ballast.mb()) + "}\n";
    } else if (path.rfind("/status/", 0) == 0) {
        unsigned code = 0;
        const auto digits = path.substr(8);
        std::from_chars(digits.data(), digits.data() + digits.size(), code);
        if (code < 200 || code > 599) code = 400;
        res.result(static_cast<http::status>(code));
        res.body() = "{\"status\":" + std::to_string(code) + "}\n";
    } else {
        res.result(http::status::not_found);
        res.body() =
            "{\"error\":\"not "
            "found\",\"routes\":[\"/\",\"/work?cpu_ms=&io_ms=\",\"/health\",\"/echo\",\"/"
            "rss?mb=\",\"/status/<code>\",\"/headers?n=&size=\",\"/request-headers\",\"/"
            "stats\",\"/cache?max_age=&public=&no_store=&cookie=&vary=&ms=&size=\",\"/"
            "payload?size=&type=&chunked=&encoded=&no_transform=&etag=\"]}\n";
    }
    if (req.method() == http::verb::head) res.body().clear();
    res.prepare_payload();
    return res;
}

void serve_connection(int fd, int family, const DemoOptions& opt) {
    asio::io_context ioc;
    asio::generic::stream_protocol::socket sock(ioc);
    beast::error_code ec;
    sock.assign(asio::generic::stream_protocol(family, family == AF_UNIX ? 0 : IPPROTO_TCP), fd,
                ec);
    if (ec) {
        ::close(fd);
        return;
    }
    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(64 * 1024 * 1024);
        parser.header_limit(64 * 1024);  // as large as the front lets through
        http::read(sock, buffer, parser, ec);
        if (ec) break;
        Request req = parser.release();
        ++g_requests;
        const std::string_view target(req.target().data(), req.target().size());
        if (target.substr(0, target.find('?')) == "/payload") {
            if (!serve_payload(sock, req, opt, ec) || ec) break;
            continue;
        }
        Response res = handle(req, opt);
        http::write(sock, res, ec);
        if (ec || !res.keep_alive()) break;
    }
    sock.shutdown(asio::socket_base::shutdown_both, ec);
}

}  // namespace

void demo_payload(std::uint64_t offset, std::span<char> out) {
    const std::size_t width = record_size();
    char record[128];
    std::size_t done = 0;
    while (done < out.size()) {
        const std::uint64_t index = (offset + done) / width;
        const std::size_t within = static_cast<std::size_t>((offset + done) % width);
        const auto i = static_cast<unsigned>(index % 100000000);
        std::snprintf(record, sizeof record, kRecordFormat, i, i, (i * 7919u) % 100000u);
        const std::size_t n = std::min(width - within, out.size() - done);
        std::memcpy(out.data() + done, record + within, n);
        done += n;
    }
}

void burn_cpu_ms(unsigned ms) {
    if (ms == 0) return;
    auto cpu_now = [] {
        timespec ts{};
        ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
    };
    const double until = cpu_now() + ms;
    volatile std::uint64_t sink = 0;
    while (cpu_now() < until) {
        for (int i = 0; i < 2000; ++i)
            sink = sink * 6364136223846793005ULL + 1442695040888963407ULL;
    }
}

Result<DemoOptions> parse_demo_args(int argc, char** argv) {
    DemoOptions opt;
    constexpr std::string_view kOptions[] = {"--socket", "--port",   "--threads",  "--cpu-ms",
                                             "--io-ms",  "--rss-mb", "--worker-id"};
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        // Unknown before anything else: "--verbose yes" is not a bad number.
        if (std::find(std::begin(kOptions), std::end(kOptions), flag) == std::end(kOptions))
            return make_error(std::string(flag), "unknown demo-worker option");
        if (i + 1 >= argc) return make_error(std::string(flag), "missing value");
        const std::string_view value = argv[++i];
        if (flag == "--socket") {
            opt.socket_path = std::string(value);
            continue;
        }
        auto n = parse_uint(flag, value);
        if (!n) return n.error();
        if (flag == "--port") {
            if (*n == 0 || *n > 65535)
                return make_error("--port", "out of range: " + std::string(value));
            opt.port = static_cast<std::uint16_t>(*n);
        } else if (flag == "--threads") {
            opt.threads = std::max(1u, *n);
        } else if (flag == "--cpu-ms") {
            opt.cpu_ms = *n;
        } else if (flag == "--io-ms") {
            opt.io_ms = *n;
        } else if (flag == "--rss-mb") {
            opt.rss_mb = *n;
        } else {  // --worker-id
            opt.worker_id = *n;
        }
    }
    if (opt.socket_path.empty() == !opt.port.has_value()) {
        return make_error("demo-worker", "give exactly one of --socket PATH or --port N");
    }
    // A header value: at most 100 visible ASCII characters, anything else left out.
    if (const char* version = std::getenv("APP_VERSION")) {
        for (const char* c = version; *c && opt.app_version.size() < 100; ++c) {
            if (*c >= 0x21 && *c <= 0x7e) opt.app_version += *c;
        }
    }
    return opt;
}

int run_demo_worker(const DemoOptions& opt) {
    g_ballast.resize_mb(opt.rss_mb);
    int family = AF_UNIX;
    int listen_fd = -1;
    std::string where;
    if (!opt.socket_path.empty()) {
        where = "unix:" + opt.socket_path;
        ::unlink(opt.socket_path.c_str());
        listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (opt.socket_path.size() >= sizeof addr.sun_path) {
            std::fprintf(stderr, "demo-worker: socket path too long: %s\n",
                         opt.socket_path.c_str());
            return 64;
        }
        std::memcpy(addr.sun_path, opt.socket_path.c_str(), opt.socket_path.size() + 1);
        if (listen_fd < 0 ||
            ::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
            std::fprintf(stderr, "demo-worker: cannot listen on %s: %s\n", where.c_str(),
                         std::strerror(errno));
            return 71;
        }
    } else {
        family = AF_INET;
        where = "127.0.0.1:" + std::to_string(*opt.port);
        listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const int one = 1;
        ::setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(*opt.port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (listen_fd < 0 ||
            ::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
            std::fprintf(stderr, "demo-worker: cannot listen on %s: %s\n", where.c_str(),
                         std::strerror(errno));
            return 71;
        }
    }
    if (::listen(listen_fd, 128) < 0) {
        std::fprintf(stderr, "demo-worker: listen failed: %s\n", std::strerror(errno));
        return 71;
    }
    std::fprintf(
        stderr, "demo worker %u pid %d listening on %s threads=%u cpu_ms=%u io_ms=%u rss_mb=%u\n",
        opt.worker_id, ::getpid(), where.c_str(), opt.threads, opt.cpu_ms, opt.io_ms, opt.rss_mb);
    std::fflush(stderr);

    auto serve = [&] {
        for (;;) {
            const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
            serve_connection(fd, family, opt);
        }
    };
    std::vector<std::thread> threads;
    for (unsigned i = 1; i < opt.threads; ++i) threads.emplace_back(serve);
    serve();  // never returns; the process ends by signal
    for (auto& t : threads) t.join();
    return 0;
}

}  // namespace tuner::demo
