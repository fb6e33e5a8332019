// [[static]] mounts (see static_files.hpp).
#include "server/static_files.hpp"

#include <fcntl.h>
#include <sys/syscall.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http/serializer.hpp>
#include <linux/openat2.h>
#include <spdlog/spdlog.h>

#include "server/http_util.hpp"

namespace tuner::server {

namespace http = boost::beast::http;

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool iequals_ascii(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

// ---- path mapping ----------------------------------------------------------------------------

MappedPath map_path(std::string_view rest) {
    MappedPath out;
    auto refuse = [&out](int status, std::string why) {
        out.status = status;
        out.relative.clear();
        out.why = std::move(why);
        return out;
    };
    // Percent-decoding, once (RFC 3986 §2.1); what it yields is never decoded again.
    std::string decoded;
    decoded.reserve(std::min(rest.size(), kMaxStaticPath + 1));
    for (std::size_t i = 0; i < rest.size(); ++i) {
        char c = rest[i];
        if (c == '%') {
            if (i + 2 >= rest.size()) return refuse(400, "an incomplete percent escape");
            const int hi = hex_value(rest[i + 1]);
            const int lo = hex_value(rest[i + 2]);
            if (hi < 0 || lo < 0) return refuse(400, "an invalid percent escape");
            c = static_cast<char>(hi * 16 + lo);
            i += 2;
            if (c == '/' || c == '\\') return refuse(400, "an encoded slash or backslash");
            if (c == '\0') return refuse(400, "an encoded NUL");
        } else if (c == '\\') {
            return refuse(400, "a backslash");
        } else if (c == '\0') {
            return refuse(400, "a NUL byte");
        }
        decoded.push_back(c);
        if (decoded.size() > kMaxStaticPath) return refuse(400, "a path too long");
    }
    out.trailing_slash = !decoded.empty() && decoded.back() == '/';
    // Segments: "" and "." dropped, ".." refused, hidden names refused.
    std::size_t start = 0;
    while (start <= decoded.size()) {
        std::size_t end = decoded.find('/', start);
        if (end == std::string::npos) end = decoded.size();
        const std::string_view segment(decoded.data() + start, end - start);
        start = end + 1;
        if (segment.empty() || segment == ".") continue;
        if (segment == "..") return refuse(400, "a \"..\" segment");
        if (segment.front() == '.') return refuse(404, "a hidden name (starting with \".\")");
        if (!out.relative.empty()) out.relative.push_back('/');
        out.relative.append(segment);
    }
    return out;
}

// ---- content types ---------------------------------------------------------------------------

std::string_view content_type_for(std::string_view file_name) {
    // As nginx's mime.types for these extensions; JavaScript as RFC 9239 names it.
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 26> kTypes{{
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"avif", "image/avif"},
        {"ico", "image/x-icon"},
        {"txt", "text/plain; charset=utf-8"},
        {"xml", "text/xml; charset=utf-8"},
        {"pdf", "application/pdf"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"ttf", "font/ttf"},
        {"wasm", "application/wasm"},
        {"mp4", "video/mp4"},
        {"webm", "video/webm"},
        {"csv", "text/csv; charset=utf-8"},
        {"md", "text/markdown; charset=utf-8"},
    }};
    const auto slash = file_name.rfind('/');
    if (slash != std::string_view::npos) file_name.remove_prefix(slash + 1);
    const auto dot = file_name.rfind('.');
    if (dot == std::string_view::npos || dot == 0) return "application/octet-stream";
    const auto extension = file_name.substr(dot + 1);
    for (const auto& [ext, type] : kTypes) {
        if (iequals_ascii(ext, extension)) return type;
    }
    return "application/octet-stream";
}

// ---- validators ------------------------------------------------------------------------------

std::string make_etag(std::int64_t mtime_s, std::uint64_t size) {
    char text[64];
    std::snprintf(text, sizeof text, "\"%llx-%llx\"", static_cast<unsigned long long>(mtime_s),
                  static_cast<unsigned long long>(size));
    return text;
}

namespace {
constexpr std::array<const char*, 7> kDays = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
}  // namespace

std::string http_date(std::time_t t) {
    struct tm tm {};
    ::gmtime_r(&t, &tm);
    char text[40];
    std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday],
                  tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                  tm.tm_sec);
    return text;
}

std::optional<std::time_t> parse_http_date(std::string_view text) {
    if (text.size() > 64) return std::nullopt;
    const std::string s(trim(text));
    // strptime with the C locale's names (tunerd never sets a locale).
    for (const char* format : {"%a, %d %b %Y %H:%M:%S GMT",  // IMF-fixdate
                               "%A, %d-%b-%y %H:%M:%S GMT",  // RFC 850
                               "%a %b %e %H:%M:%S %Y"}) {    // asctime
        struct tm tm {};
        const char* end = ::strptime(s.c_str(), format, &tm);
        if (end != nullptr && *end == '\0') {
            const std::time_t t = ::timegm(&tm);
            if (t == static_cast<std::time_t>(-1)) return std::nullopt;
            return t;
        }
    }
    return std::nullopt;
}

bool if_none_match_matches(std::string_view list, std::string_view etag) {
    // Weak comparison (RFC 9110 §8.8.3.2): the opaque tags are equal, W/ aside.
    auto opaque = [](std::string_view tag) {
        if (tag.size() >= 2 && tag[0] == 'W' && tag[1] == '/') tag.remove_prefix(2);
        return tag;
    };
    const std::string_view ours = opaque(etag);
    list = trim(list);
    if (list == "*") return true;
    while (!list.empty()) {
        list = trim(list);
        if (list.empty()) break;
        if (list.front() == ',') {
            list.remove_prefix(1);
            continue;
        }
        std::size_t at = 0;
        if (list.size() >= 2 && list[0] == 'W' && list[1] == '/') at = 2;
        if (at >= list.size() || list[at] != '"') return false;  // malformed: no match
        const auto close = list.find('"', at + 1);
        if (close == std::string_view::npos) return false;
        if (opaque(list.substr(0, close + 1)) == ours) return true;
        list.remove_prefix(close + 1);
        list = trim(list);
        if (!list.empty() && list.front() != ',') return false;
    }
    return false;
}

bool not_modified(std::optional<std::string_view> if_none_match,
                  std::optional<std::string_view> if_modified_since, std::string_view etag,
                  std::time_t mtime) {
    // RFC 9110 §13.2.2, steps 3 and 4 (GET and HEAD): If-None-Match decides when present.
    if (if_none_match) return if_none_match_matches(*if_none_match, etag);
    if (if_modified_since) {
        const auto since = parse_http_date(*if_modified_since);
        // An invalid date is ignored (§13.1.3); a date in the future too (it says nothing).
        if (!since || *since > std::time(nullptr)) return false;
        return mtime <= *since;
    }
    return false;
}

ByteRange parse_range(std::string_view range, std::uint64_t size) {
    ByteRange out;
    range = trim(range);
    constexpr std::string_view kUnit = "bytes=";
    if (range.size() <= kUnit.size() || !iequals_ascii(range.substr(0, kUnit.size()), kUnit))
        return out;
    range = trim(range.substr(kUnit.size()));
    if (range.find(',') != std::string_view::npos) return out;  // several: the whole file
    const auto dash = range.find('-');
    if (dash == std::string_view::npos) return out;
    auto number = [](std::string_view digits) -> std::optional<std::uint64_t> {
        digits = trim(digits);
        if (digits.empty() || digits.size() > 19) return std::nullopt;
        std::uint64_t n = 0;
        for (const char c : digits) {
            if (c < '0' || c > '9') return std::nullopt;
            n = n * 10 + static_cast<std::uint64_t>(c - '0');
        }
        return n;
    };
    const auto first_text = trim(range.substr(0, dash));
    const auto last_text = trim(range.substr(dash + 1));
    if (first_text.empty()) {
        // A suffix: the last N bytes.
        const auto n = number(last_text);
        if (!n) return out;
        if (*n == 0 || size == 0) {
            out.kind = ByteRange::unsatisfiable;
            return out;
        }
        out.kind = ByteRange::satisfiable;
        out.first = size - std::min(*n, size);
        out.last = size - 1;
        return out;
    }
    const auto first = number(first_text);
    if (!first) return out;
    std::uint64_t last = size == 0 ? 0 : size - 1;
    if (!last_text.empty()) {
        const auto l = number(last_text);
        if (!l || *l < *first) return out;  // invalid: ignored
        last = std::min(*l, last);
    }
    if (*first >= size) {
        out.kind = ByteRange::unsatisfiable;
        return out;
    }
    out.kind = ByteRange::satisfiable;
    out.first = *first;
    out.last = last;
    return out;
}

bool if_range_holds(std::string_view if_range, std::string_view etag, std::time_t mtime) {
    if_range = trim(if_range);
    if (!if_range.empty() && if_range.front() == '"') return if_range == etag;  // strong
    if (if_range.size() >= 2 && if_range[0] == 'W' && if_range[1] == '/') return false;
    const auto date = parse_http_date(if_range);
    return date && *date == mtime;
}

// ---- opening below the root ------------------------------------------------------------------

namespace {

std::atomic<bool> g_no_openat2{false};  // the kernel said ENOSYS once

int status_for_errno(int error) {
    switch (error) {
        case EACCES:
        case EPERM:
            return 403;
        case EMFILE:
        case ENFILE:
        case ENOMEM:
            return 503;
        case ENOENT:
        case ENOTDIR:
        case EXDEV:  // RESOLVE_BENEATH: the path leads out of the root
        case ELOOP:  // a magic link, or too many symlinks
        case ENAMETOOLONG:
        case EINVAL:
            return 404;
        default:
            return 500;
    }
}

constexpr int kOpenFlags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;

OpenedFile finish_open(int fd) {
    OpenedFile out;
    if (fd < 0) {
        out.status = status_for_errno(errno);
        return out;
    }
    out.fd = FileDescriptor(fd);
    if (::fstat(fd, &out.info) != 0) {
        out.status = 500;
        out.fd.reset();
    }
    return out;
}

}  // namespace

OpenedFile open_beneath(int root_fd, const std::string& root_real, const std::string& relative,
                        OpenMethod method) {
    const std::string path = relative.empty() ? std::string(".") : relative;
    if (method != OpenMethod::realpath && !(method == OpenMethod::automatic && g_no_openat2)) {
        struct open_how how {};
        how.flags = static_cast<std::uint64_t>(kOpenFlags);
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        long fd;
        do {
            fd = ::syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof how);
        } while (fd < 0 && errno == EINTR);
        if (fd >= 0 || errno != ENOSYS || method == OpenMethod::openat2)
            return finish_open(static_cast<int>(fd));
        if (!g_no_openat2.exchange(true)) {
            spdlog::warn(
                "event=static_openat2_missing action=\"realpath prefix checks instead (Linux "
                "before 5.6)\"");
        }
    }
    // Without openat2: resolve every symlink, then the result must still be below the root; the
    // resolved path has no symlink left, so O_NOFOLLOW refuses one swapped in since.
    const std::string full = root_real + "/" + path;
    char resolved[PATH_MAX];
    if (::realpath(full.c_str(), resolved) == nullptr) return finish_open(-1);
    const std::string_view real(resolved);
    if (real != root_real &&
        !(real.size() > root_real.size() && real.substr(0, root_real.size()) == root_real &&
          (root_real == "/" || real[root_real.size()] == '/'))) {
        errno = EXDEV;
        return finish_open(-1);
    }
    int fd;
    do {
        fd = ::open(resolved, kOpenFlags | O_NOFOLLOW);
    } while (fd < 0 && errno == EINTR);
    return finish_open(fd);
}

// ---- mounts ----------------------------------------------------------------------------------

StaticMounts::StaticMounts(const std::vector<StaticMount>& mounts) {
    for (const auto& config : mounts) {
        auto mount = std::make_unique<Mount>();
        mount->config = config;
        mount->dir = FileDescriptor(::open(config.root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        char resolved[PATH_MAX];
        if (!mount->dir || ::realpath(config.root.c_str(), resolved) == nullptr) {
            spdlog::error("event=static_root_failed prefix={} root={} error=\"{}\" (answers 404)",
                          config.prefix, config.root, std::strerror(errno));
            mount->dir.reset();
        } else {
            mount->root_real = resolved;
        }
        mounts_.push_back(std::move(mount));
    }
    std::stable_sort(mounts_.begin(), mounts_.end(), [](const auto& a, const auto& b) {
        return a->config.prefix.size() > b->config.prefix.size();
    });
}

const StaticMounts::Mount* StaticMounts::match(std::string_view path) const {
    for (const auto& mount : mounts_) {
        if (path.substr(0, mount->config.prefix.size()) == mount->config.prefix) return mount.get();
    }
    return nullptr;
}

void StaticCounters::count(int status, std::uint64_t bytes) {
    std::lock_guard lock(mutex_);
    ++counts_.responses[status];
    counts_.bytes += bytes;
}

StaticCounters::Snapshot StaticCounters::snapshot() const {
    std::lock_guard lock(mutex_);
    return counts_;
}

// ---- the answer ------------------------------------------------------------------------------

namespace {

StaticReply error_reply(http::status status, unsigned version, std::string_view message,
                        bool keep_alive, bool head_request) {
    StaticReply reply;
    reply.head = front_error(status, version, message, keep_alive);
    reply.head.set(http::field::date, http_date(std::time(nullptr)));
    // A response to HEAD has no content (RFC 9110 §9.3.2); its Content-Length stays.
    if (head_request) reply.head.body().clear();
    return reply;
}

}  // namespace

StaticReply answer_static(const StaticMounts::Mount& mount, const http::request_header<>& req,
                          bool has_body, bool keep_alive) {
    const unsigned version = req.version();
    const auto method = req.method();
    const bool head = method == http::verb::head;
    if (method != http::verb::get && !head) {
        // RFC 9110 §15.5.6: 405 names the methods the resource allows.
        auto reply =
            error_reply(http::status::method_not_allowed, version,
                        "a static file answers GET and HEAD only", keep_alive && !has_body, false);
        reply.head.set(http::field::allow, "GET, HEAD");
        return reply;
    }
    if (has_body) {
        return error_reply(http::status::bad_request, version,
                           "a request for a static file carries no body", false, head);
    }
    const std::string_view target = req.target();
    const std::string_view path = target.substr(0, target.find('?'));
    const auto mapped = map_path(path.substr(mount.config.prefix.size()));
    if (mapped.status == 400) {
        return error_reply(http::status::bad_request, version, "bad static path: " + mapped.why,
                           keep_alive, head);
    }
    auto not_found = [&] {
        return error_reply(http::status::not_found, version, "not found", keep_alive, head);
    };
    if (mapped.status != 200 || !mount.dir) return not_found();
    auto opened = open_beneath(mount.dir.get(), mount.root_real, mapped.relative);
    std::string file_name = mapped.relative;
    if (opened.status == 200 && S_ISDIR(opened.info.st_mode)) {
        if (mount.config.index.empty()) return not_found();
        if (!mapped.trailing_slash && !mapped.relative.empty()) {
            // As nginx: a directory named without its slash is redirected to it, so that the
            // index's relative links resolve. The path is the client's, already a valid target.
            auto reply = error_reply(http::status::moved_permanently, version, "moved: add a slash",
                                     keep_alive, head);
            reply.head.set(http::field::location, std::string(path) + "/");
            return reply;
        }
        file_name = mapped.relative.empty() ? mount.config.index
                                            : mapped.relative + "/" + mount.config.index;
        opened = open_beneath(mount.dir.get(), mount.root_real, file_name);
    } else if (opened.status == 200 && mapped.trailing_slash) {
        return not_found();  // "file.css/" names no directory
    }
    if (opened.status != 200) {
        switch (opened.status) {
            case 403:
                return error_reply(http::status::forbidden, version, "forbidden", keep_alive, head);
            case 404:
                return not_found();
            case 503:
                return error_reply(http::status::service_unavailable, version,
                                   "out of file descriptors, retry later", keep_alive, head);
            default:
                return error_reply(http::status::internal_server_error, version,
                                   "cannot open the file", keep_alive, head);
        }
    }
    if (!S_ISREG(opened.info.st_mode)) return not_found();

    const auto size = static_cast<std::uint64_t>(opened.info.st_size);
    const std::time_t mtime = opened.info.st_mtim.tv_sec;
    const std::string etag = make_etag(mtime, size);
    std::optional<std::string_view> inm, ims;
    if (auto it = req.find(http::field::if_none_match); it != req.end()) inm = it->value();
    if (auto it = req.find(http::field::if_modified_since); it != req.end()) ims = it->value();
    const bool unchanged = not_modified(inm, ims, etag, mtime);

    // A single byte range of a GET (RFC 9110 §14), while If-Range (if any) still holds.
    ByteRange range;
    if (!unchanged && !head) {
        if (auto it = req.find(http::field::range); it != req.end()) {
            auto if_range = req.find(http::field::if_range);
            if (if_range == req.end() || if_range_holds(if_range->value(), etag, mtime))
                range = parse_range(it->value(), size);
        }
    }
    if (range.kind == ByteRange::unsatisfiable) {
        auto reply = error_reply(http::status::range_not_satisfiable, version,
                                 "range not satisfiable", keep_alive, false);
        reply.head.set(http::field::content_range, "bytes */" + std::to_string(size));
        return reply;
    }
    const bool partial = range.kind == ByteRange::satisfiable;

    StaticReply reply;
    auto& res = reply.head;
    res.version(version);
    res.result(unchanged ? http::status::not_modified
               : partial ? http::status::partial_content
                         : http::status::ok);
    res.set(http::field::server, "tunerd");
    res.set(http::field::date, http_date(std::time(nullptr)));
    if (!unchanged) res.set(http::field::content_type, content_type_for(file_name));
    // RFC 9110 §15.4.5: a 304 carries the validators and Cache-Control the 200 would.
    res.set(http::field::last_modified, http_date(mtime));
    res.set(http::field::etag, etag);
    res.set(
        http::field::cache_control,
        "max-age=" +
            std::to_string(
                std::chrono::duration_cast<std::chrono::seconds>(mount.config.max_age).count()));
    if (!unchanged) res.set(http::field::accept_ranges, "bytes");
    const std::uint64_t length = partial ? range.last - range.first + 1 : size;
    if (partial) {
        res.set(http::field::content_range, "bytes " + std::to_string(range.first) + "-" +
                                                std::to_string(range.last) + "/" +
                                                std::to_string(size));
    }
    if (!unchanged) res.content_length(length);
    res.keep_alive(keep_alive);
    if (!unchanged && !head && length > 0) {
        reply.file = std::move(opened.fd);
        reply.offset = partial ? range.first : 0;
        reply.length = length;
    }
    return reply;
}

std::string serialize_head(http::response<http::string_body>& res) {
    std::string out;
    boost::system::error_code ec;
    http::response_serializer<http::string_body> sr{res};
    while (!ec && !sr.is_done()) {
        sr.next(ec, [&](boost::system::error_code&, const auto& buffers) {
            std::size_t n = 0;
            for (const auto b : boost::beast::buffers_range_ref(buffers)) {
                out.append(static_cast<const char*>(b.data()), b.size());
                n += b.size();
            }
            sr.consume(n);
        });
    }
    return out;
}

}  // namespace tuner::server
