// [[static]] mounts: URL prefixes the front answers from directories by itself, before a worker
// slot is taken (as nginx's `location /static/ { root ...; expires 30d; }`).
//
//   StaticMounts::match   the longest mount prefix of the request path
//   map_path              the rest of the path, percent-decoded once, to a relative file path;
//                         encoded slashes, NUL, invalid escapes and ".." segments are 400
//   open_beneath          openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) on the root's
//                         directory descriptor, so no symlink leads out of the root (a realpath
//                         prefix check where the kernel has no openat2)
//   answer_static         the response: Content-Type by extension, Content-Length,
//                         Last-Modified, ETag (nginx's form), Cache-Control, conditional
//                         requests (RFC 9110 §13), one byte range (206/416, §14),
//                         301/403/404/405
//   send_static           the header, then the file by sendfile(2) on a TCP socket (bounded
//                         steps, yielding between them) or by pread into a bounded buffer on
//                         any other stream; a file is never read whole into memory
#pragma once

#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <concepts>
#include <cstdint>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

#include "model/config.hpp"
#include "server/deadline.hpp"

namespace tuner::server {

// ---- pure parts (unit-tested over hostile inputs) --------------------------------------------

// Longest decoded path the front maps (PATH_MAX less room for the root).
inline constexpr std::size_t kMaxStaticPath = 4000;

// The path below a mount, as a file path relative to its root.
struct MappedPath {
    int status = 200;             // 200: mapped; 400: refused (the reason in `why`)
    std::string relative;         // "a/b.css"; "" for the root itself; never "..", never "//"
    bool trailing_slash = false;  // the URL named a directory ("/static/docs/")
    std::string why;
};

// `rest`: the request path after the mount's prefix, without the query, as the client sent it.
// Percent-decoded once; %2F, %5C, %00 and invalid escapes, a backslash or NUL, and ".."
// segments are 400; "." and empty segments ("//") are dropped. A segment that starts with "."
// (".git", ".env") is refused too (404: hidden files are not served).
MappedPath map_path(std::string_view rest);

// The Content-Type of a file name by its extension (a built-in table; text types with
// "; charset=utf-8"), application/octet-stream for anything else.
std::string_view content_type_for(std::string_view file_name);

// nginx's ETag: "<mtime in hex>-<size in hex>" (ngx_http_set_etag).
std::string make_etag(std::int64_t mtime_s, std::uint64_t size);

// IMF-fixdate, RFC 9110 §5.6.7: "Sun, 06 Nov 1994 08:49:37 GMT".
std::string http_date(std::time_t t);
// The three forms RFC 9110 §5.6.7 says a recipient accepts (IMF-fixdate, RFC 850, asctime).
std::optional<std::time_t> parse_http_date(std::string_view text);

// If-None-Match (a list of entity tags, or "*") against `etag` with the weak comparison of
// RFC 9110 §8.8.3.2: true when one matches. A malformed list matches nothing.
bool if_none_match_matches(std::string_view if_none_match, std::string_view etag);

// RFC 9110 §13.2.2 for GET and HEAD: If-None-Match when present (If-Modified-Since is then
// ignored), else If-Modified-Since (a valid date not before the modification time). True: 304.
bool not_modified(std::optional<std::string_view> if_none_match,
                  std::optional<std::string_view> if_modified_since, std::string_view etag,
                  std::time_t mtime);

// A Range header (RFC 9110 §14.2) for a representation of `size` bytes: one byte range
// ("bytes=0-99", "bytes=100-", "bytes=-500"). Several ranges, another unit or a malformed header
// are ignored (the whole file is sent: §14.2 allows it); a range that starts past the end is
// unsatisfiable (416).
struct ByteRange {
    enum Kind { none, satisfiable, unsatisfiable } kind = none;
    std::uint64_t first = 0;
    std::uint64_t last = 0;  // inclusive
};
ByteRange parse_range(std::string_view range, std::uint64_t size);

// If-Range (RFC 9110 §13.1.5): the range applies only while the representation is the one the
// client has: a strong match of the entity tag, or exactly the Last-Modified date.
bool if_range_holds(std::string_view if_range, std::string_view etag, std::time_t mtime);

// ---- the mounts --------------------------------------------------------------------------------

// An owned file descriptor.
class FileDescriptor {
public:
    FileDescriptor() = default;
    explicit FileDescriptor(int fd) : fd_(fd) {}
    FileDescriptor(FileDescriptor&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    FileDescriptor& operator=(FileDescriptor&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;
    ~FileDescriptor() { reset(); }
    void reset() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    [[nodiscard]] int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }

private:
    int fd_ = -1;
};

// How open_beneath resolves: openat2 when the kernel has it (Linux 5.6), else the realpath check.
enum class OpenMethod { automatic, openat2, realpath };

struct OpenedFile {
    int status = 200;  // 200, 403 (EACCES), 404, 500, 503 (out of descriptors)
    FileDescriptor fd;
    struct stat info {};
};

// Opens `relative` ("" = the root itself) below the directory `root_fd` (whose real path is
// `root_real`), never outside it: no "..", no symlink out of it, no magic link. Non-blocking
// (a FIFO in the root cannot stall the thread); the caller checks the file's type.
OpenedFile open_beneath(int root_fd, const std::string& root_real, const std::string& relative,
                        OpenMethod method = OpenMethod::automatic);

class StaticMounts {
public:
    struct Mount {
        StaticMount config;
        FileDescriptor dir;     // O_PATH | O_DIRECTORY on the root
        std::string root_real;  // its real path (for the realpath fallback)
    };

    StaticMounts() = default;
    // Opens each root (a root that cannot be opened answers 404 and is logged once).
    explicit StaticMounts(const std::vector<StaticMount>& mounts);
    StaticMounts(StaticMounts&&) = default;
    StaticMounts& operator=(StaticMounts&&) = default;

    [[nodiscard]] bool empty() const { return mounts_.empty(); }
    // The mount whose prefix is the longest one `path` (no query) starts with, or null.
    [[nodiscard]] const Mount* match(std::string_view path) const;

private:
    std::vector<std::unique_ptr<Mount>> mounts_;  // longest prefix first
};

// Static responses by status and the bytes sent, for /metrics and /performance.
class StaticCounters {
public:
    void count(int status, std::uint64_t bytes);
    struct Snapshot {
        std::map<int, std::uint64_t> responses;  // by status (only the front's own statuses)
        std::uint64_t bytes = 0;
    };
    [[nodiscard]] Snapshot snapshot() const;

private:
    mutable std::mutex mutex_;
    Snapshot counts_;
};

// ---- the answer --------------------------------------------------------------------------------

// What the front sends for one static request: a complete header (and a short text body for the
// errors), then `length` bytes of `file` from `offset` when there is a body.
struct StaticReply {
    boost::beast::http::response<boost::beast::http::string_body> head;
    FileDescriptor file;
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    [[nodiscard]] int status() const { return static_cast<int>(head.result_int()); }
};

// The answer to a request for `mount`. `has_body`: the request carries a body (GET/HEAD with a
// body → 400, other methods → 405; the connection then closes, the body unread).
// `keep_alive`: the connection may carry another request.
StaticReply answer_static(const StaticMounts::Mount& mount,
                          const boost::beast::http::request_header<>& req, bool has_body,
                          bool keep_alive);

// The serialized header (and a text body) of `res`, for one write.
std::string serialize_head(boost::beast::http::response<boost::beast::http::string_body>& res);

// Bytes handed to sendfile or pread per step: a large file is sent in steps of this size, each
// followed by a yield, so the other connections of the thread run between them.
inline constexpr std::size_t kStaticStep = 256 * 1024;
inline constexpr std::size_t kStaticReadBuffer = 64 * 1024;

namespace static_detail {
namespace asio = boost::asio;

// A plain TCP socket: its descriptor takes sendfile, and it can wait for writability.
template <class Stream>
concept NativeSocket = requires(Stream& s, boost::system::error_code& ec) {
    { s.native_handle() } -> std::convertible_to<int>;
    s.native_non_blocking(true, ec);
    s.async_wait(asio::socket_base::wait_write, asio::use_awaitable);
};

}  // namespace static_detail

// Sends `reply` to `out`: its header, then its file (sendfile on a TCP socket, pread + write on
// any other stream). `sent`: the bytes that left; `ec`: the failure (a file that shrank under
// us is an io_error: the client cannot get the promised length, the connection must close).
template <class Stream>
boost::asio::awaitable<void> send_static(Stream& out, Deadline& deadline, Duration timeout,
                                         StaticReply& reply, std::uint64_t& sent,
                                         boost::system::error_code& ec) {
    namespace asio = boost::asio;
    const std::string head = serialize_head(reply.head);
    std::uint64_t remaining = reply.length;
    auto offset = static_cast<off_t>(reply.offset);
    if constexpr (static_detail::NativeSocket<Stream>) {
        const int sock = out.native_handle();
        out.native_non_blocking(true, ec);
        if (ec) co_return;
        // The socket's buffer is full: wait until it takes more, within `timeout` (ec set if not).
        auto wait_writable = [&]() -> asio::awaitable<void> {
            deadline.arm(timeout);
            co_await out.async_wait(asio::socket_base::wait_write,
                                    asio::redirect_error(asio::use_awaitable, ec));
            deadline.settle(ec);
        };
        // The header with MSG_MORE: it leaves with the file's first bytes, in one segment.
        std::size_t head_done = 0;
        while (head_done < head.size()) {
            const ssize_t n = ::send(sock, head.data() + head_done, head.size() - head_done,
                                     MSG_NOSIGNAL | (remaining > 0 ? MSG_MORE : 0));
            if (n > 0) {
                head_done += static_cast<std::size_t>(n);
                sent += static_cast<std::uint64_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                co_await wait_writable();
                if (ec) co_return;
                continue;
            }
            ec = boost::system::error_code(errno, boost::system::system_category());
            co_return;
        }
        while (remaining > 0) {
            const std::size_t step =
                static_cast<std::size_t>(std::min<std::uint64_t>(remaining, kStaticStep));
            const ssize_t n = ::sendfile(sock, reply.file.get(), &offset, step);
            if (n > 0) {
                remaining -= static_cast<std::uint64_t>(n);
                sent += static_cast<std::uint64_t>(n);
                // The other connections of this thread get their turn between steps.
                if (remaining > 0) co_await asio::post(out.get_executor(), asio::use_awaitable);
                continue;
            }
            if (n == 0) {
                ec = make_error_code(boost::system::errc::io_error);  // the file shrank
                co_return;
            }
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                co_await wait_writable();
                if (ec) co_return;
                continue;
            }
            ec = boost::system::error_code(errno, boost::system::system_category());
            co_return;
        }
    } else {
        deadline.arm(timeout);
        const std::size_t n = co_await asio::async_write(
            out, asio::buffer(head), asio::redirect_error(asio::use_awaitable, ec));
        deadline.settle(ec);
        sent += n;
        if (ec) co_return;
        auto buffer = std::make_unique<std::array<char, kStaticReadBuffer>>();
        while (remaining > 0) {
            const std::size_t want =
                static_cast<std::size_t>(std::min<std::uint64_t>(remaining, buffer->size()));
            const ssize_t got = ::pread(reply.file.get(), buffer->data(), want, offset);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                ec = got == 0 ? make_error_code(boost::system::errc::io_error)
                              : boost::system::error_code(errno, boost::system::system_category());
                co_return;
            }
            deadline.arm(timeout);
            const std::size_t wrote = co_await asio::async_write(
                out, asio::buffer(buffer->data(), static_cast<std::size_t>(got)),
                asio::redirect_error(asio::use_awaitable, ec));
            deadline.settle(ec);
            sent += wrote;
            if (ec) co_return;
            offset += got;
            remaining -= static_cast<std::uint64_t>(got);
        }
    }
}

}  // namespace tuner::server
