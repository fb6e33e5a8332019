// [[static]] mounts (server/static_files): path mapping over a table of hostile paths, opening
// below a root (openat2 and the realpath fallback) with symlinks out of it, content types,
// validators and conditional requests, the answers, and the body sent over a test stream.
#include "server/static_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>

#include "tests/support/temp_dir.hpp"

namespace tuner::server {
namespace {

namespace http = boost::beast::http;
using test::TempDir;

// ---- map_path ----------------------------------------------------------------------------------

struct PathCase {
    std::string rest;      // the path after the prefix, as sent
    int status;            // 200, 400 or 404
    std::string relative;  // when 200
};

TEST(StaticMapPath, HostileTable) {
    const std::vector<PathCase> cases = {
        // plain
        {"app.css", 200, "app.css"},
        {"css/app.css", 200, "css/app.css"},
        {"", 200, ""},
        {"a//b///c", 200, "a/b/c"},
        {"./a/./b", 200, "a/b"},
        {"a%20b.txt", 200, "a b.txt"},
        {"%e2%82%ac.txt", 200, "\xe2\x82\xac.txt"},
        {"a%25%32%66b", 200, "a%2fb"},  // decoded once: %25 is "%", never decoded again
        {"a..b", 200, "a..b"},
        {"...", 404, ""},  // hidden (starts with ".")
        // traversal
        {"..", 400, ""},
        {"../etc/passwd", 400, ""},
        {"a/../../etc/passwd", 400, ""},
        {"a/..", 400, ""},
        {"%2e%2e/x", 400, ""},
        {"%2E%2E/x", 400, ""},
        {".%2e/x", 400, ""},
        {"a/%2e%2e", 400, ""},
        {"..%2fx", 400, ""},
        {"..%2Fx", 400, ""},
        {"a%2fb", 400, ""},
        {"a%5cb", 400, ""},
        {"..%5c..%5cwindows", 400, ""},
        {"a\\b", 400, ""},
        {"..\\x", 400, ""},
        // NUL and bad escapes
        {"a%00b", 400, ""},
        {std::string("a\0b", 3), 400, ""},
        {"a%", 400, ""},
        {"a%2", 400, ""},
        {"a%zz", 400, ""},
        {"a%g0", 400, ""},
        {"%%32%65", 400, ""},
        {"%c0%ae%c0%ae/x", 200, "\xc0\xae\xc0\xae/x"},  // overlong dots are just bytes, no ".."
        // hidden names
        {".env", 404, ""},
        {".git/config", 404, ""},
        {"a/.htpasswd", 404, ""},
        {"%2egit/config", 404, ""},
    };
    for (const auto& c : cases) {
        const auto mapped = map_path(c.rest);
        EXPECT_EQ(mapped.status, c.status) << "\"" << c.rest << "\": " << mapped.why;
        if (c.status == 200) {
            EXPECT_EQ(mapped.relative, c.relative) << c.rest;
        }
        // Whatever the input, a mapped path never climbs and never holds a NUL or backslash.
        for (const auto& segment : {std::string("..")}) {
            EXPECT_NE(mapped.relative, segment);
            EXPECT_NE(mapped.relative.rfind(segment + "/", 0), 0u) << c.rest;
            EXPECT_EQ(mapped.relative.find("/" + segment + "/"), std::string::npos) << c.rest;
        }
        EXPECT_EQ(mapped.relative.find('\0'), std::string::npos) << c.rest;
        EXPECT_EQ(mapped.relative.find('\\'), std::string::npos) << c.rest;
        EXPECT_EQ(mapped.relative.find("//"), std::string::npos) << c.rest;
    }
}

TEST(StaticMapPath, FuzzedBytesNeverClimbOrKeepForbiddenBytes) {
    // Random paths from an alphabet of the dangerous pieces: whatever maps stays a clean
    // relative path.
    const std::vector<std::string> pieces = {
        "..", ".", "/",  "%2e", "%2f", "%5c", "%00",
        "%",  "a", "\\", "%2",  "%41", "//",  std::string(1, '\0')};
    unsigned seed = 12345;
    for (int i = 0; i < 20000; ++i) {
        std::string path;
        const int n = 1 + static_cast<int>((seed = seed * 1103515245 + 12345) >> 16) % 8;
        for (int k = 0; k < n; ++k)
            path += pieces[((seed = seed * 1103515245 + 12345) >> 16) % pieces.size()];
        const auto mapped = map_path(path);
        if (mapped.status != 200) continue;
        const std::string r = "/" + mapped.relative + "/";
        EXPECT_EQ(r.find("/../"), std::string::npos) << path;
        EXPECT_EQ(mapped.relative.find('\0'), std::string::npos) << path;
        EXPECT_EQ(mapped.relative.find('\\'), std::string::npos) << path;
        EXPECT_EQ(mapped.relative.find("//"), std::string::npos) << path;
        EXPECT_NE(mapped.relative.rfind("/", 0), 0u) << path;
    }
}

TEST(StaticMapPath, TrailingSlashAndTooLong) {
    EXPECT_TRUE(map_path("docs/").trailing_slash);
    EXPECT_FALSE(map_path("docs").trailing_slash);
    EXPECT_EQ(map_path(std::string(kMaxStaticPath + 1, 'a')).status, 400);
}

// ---- types and validators ----------------------------------------------------------------------

TEST(StaticContentType, ByExtension) {
    EXPECT_EQ(content_type_for("index.html"), "text/html; charset=utf-8");
    EXPECT_EQ(content_type_for("a/b/app.CSS"), "text/css; charset=utf-8");
    EXPECT_EQ(content_type_for("app.mjs"), "text/javascript; charset=utf-8");
    EXPECT_EQ(content_type_for("x.json"), "application/json");
    EXPECT_EQ(content_type_for("logo.svg"), "image/svg+xml");
    EXPECT_EQ(content_type_for("a.jpeg"), "image/jpeg");
    EXPECT_EQ(content_type_for("a.woff2"), "font/woff2");
    EXPECT_EQ(content_type_for("a.wasm"), "application/wasm");
    EXPECT_EQ(content_type_for("a.webm"), "video/webm");
    EXPECT_EQ(content_type_for("a.txt"), "text/plain; charset=utf-8");
    EXPECT_EQ(content_type_for("README"), "application/octet-stream");
    EXPECT_EQ(content_type_for("archive.tar.xz"), "application/octet-stream");
    EXPECT_EQ(content_type_for("dir.css/file"), "application/octet-stream");
}

TEST(StaticValidators, EtagIsNginxsForm) {
    // nginx: "%xT-%xO" of mtime and size.
    EXPECT_EQ(make_etag(0x5f5e1000, 0x1000), "\"5f5e1000-1000\"");
    EXPECT_EQ(make_etag(1, 0), "\"1-0\"");
}

TEST(StaticValidators, HttpDatesInEveryFormRfc9110Names) {
    EXPECT_EQ(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
    EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
    EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
    EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), 784111777);
    EXPECT_FALSE(parse_http_date("yesterday"));
    EXPECT_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT trailing"));
    EXPECT_FALSE(parse_http_date(""));
    EXPECT_FALSE(parse_http_date(std::string(200, 'x')));
}

TEST(StaticConditionals, IfNoneMatchWeakComparisonListsAndStar) {
    const std::string etag = "\"5f-10\"";
    EXPECT_TRUE(if_none_match_matches("\"5f-10\"", etag));
    EXPECT_TRUE(if_none_match_matches("W/\"5f-10\"", etag));
    EXPECT_TRUE(if_none_match_matches("\"a\", W/\"5f-10\"", etag));
    EXPECT_TRUE(if_none_match_matches(" \"a\" ,\"5f-10\" ", etag));
    EXPECT_TRUE(if_none_match_matches("*", etag));
    EXPECT_FALSE(if_none_match_matches("\"5f-11\"", etag));
    EXPECT_FALSE(if_none_match_matches("5f-10", etag));            // unquoted: malformed
    EXPECT_FALSE(if_none_match_matches("\"5f-10", etag));          // unterminated
    EXPECT_FALSE(if_none_match_matches("\"a\" \"5f-10\"", etag));  // no comma
    EXPECT_FALSE(if_none_match_matches("", etag));
}

TEST(StaticConditionals, IfNoneMatchTakesPriorityOverIfModifiedSince) {
    const std::string etag = "\"5f-10\"";
    const std::time_t mtime = 784111777;
    const std::string later = "Mon, 07 Nov 1994 08:49:37 GMT";
    const std::string earlier = "Sat, 05 Nov 1994 08:49:37 GMT";
    EXPECT_TRUE(not_modified(std::nullopt, later, etag, mtime));
    EXPECT_TRUE(not_modified(std::nullopt, http_date(mtime), etag, mtime));
    EXPECT_FALSE(not_modified(std::nullopt, earlier, etag, mtime));
    EXPECT_FALSE(not_modified(std::nullopt, "garbage", etag, mtime));
    EXPECT_FALSE(not_modified(std::nullopt, "Sun, 06 Nov 2999 08:49:37 GMT", etag, mtime));
    // A differing If-None-Match wins over a matching date (RFC 9110 §13.2.2).
    EXPECT_FALSE(not_modified("\"other\"", later, etag, mtime));
    EXPECT_TRUE(not_modified(etag, earlier, etag, mtime));
    EXPECT_FALSE(not_modified(std::nullopt, std::nullopt, etag, mtime));
}

TEST(StaticRanges, OneByteRangeOrNone) {
    using K = ByteRange::Kind;
    struct Case {
        std::string header;
        std::uint64_t size;
        K kind;
        std::uint64_t first, last;
    };
    const std::vector<Case> cases = {
        {"bytes=0-99", 1000, K::satisfiable, 0, 99},
        {"bytes=100-", 1000, K::satisfiable, 100, 999},
        {"bytes=-300", 1000, K::satisfiable, 700, 999},
        {"bytes=-3000", 1000, K::satisfiable, 0, 999},
        {"bytes=990-5000", 1000, K::satisfiable, 990, 999},
        {"BYTES= 5 - 9 ", 1000, K::satisfiable, 5, 9},
        {"bytes=999-999", 1000, K::satisfiable, 999, 999},
        {"bytes=1000-", 1000, K::unsatisfiable, 0, 0},
        {"bytes=5000-6000", 1000, K::unsatisfiable, 0, 0},
        {"bytes=-0", 1000, K::unsatisfiable, 0, 0},
        {"bytes=0-", 0, K::unsatisfiable, 0, 0},
        // ignored: the whole file
        {"bytes=0-1,5-6", 1000, K::none, 0, 0},
        {"bytes=9-5", 1000, K::none, 0, 0},
        {"bytes=a-b", 1000, K::none, 0, 0},
        {"bytes=", 1000, K::none, 0, 0},
        {"bytes=5", 1000, K::none, 0, 0},
        {"items=0-5", 1000, K::none, 0, 0},
        {"bytes=-", 1000, K::none, 0, 0},
        {"bytes=99999999999999999999-", 1000, K::none, 0, 0},
        {"bytes=--5", 1000, K::none, 0, 0},
    };
    for (const auto& c : cases) {
        const auto r = parse_range(c.header, c.size);
        EXPECT_EQ(r.kind, c.kind) << c.header;
        if (c.kind == K::satisfiable) {
            EXPECT_EQ(r.first, c.first) << c.header;
            EXPECT_EQ(r.last, c.last) << c.header;
        }
    }
}

TEST(StaticRanges, IfRangeNeedsAStrongEtagOrTheExactDate) {
    EXPECT_TRUE(if_range_holds("\"5f-10\"", "\"5f-10\"", 784111777));
    EXPECT_FALSE(if_range_holds("\"5f-11\"", "\"5f-10\"", 784111777));
    EXPECT_FALSE(if_range_holds("W/\"5f-10\"", "\"5f-10\"", 784111777));
    EXPECT_TRUE(if_range_holds("Sun, 06 Nov 1994 08:49:37 GMT", "\"x\"", 784111777));
    EXPECT_FALSE(if_range_holds("Sun, 06 Nov 1994 08:49:38 GMT", "\"x\"", 784111777));
    EXPECT_FALSE(if_range_holds("garbage", "\"x\"", 784111777));
}

// ---- opening below the root ------------------------------------------------------------------

class StaticRoot : public ::testing::Test {
protected:
    StaticRoot() {
        dir.write("root/app.css", "body{}");
        dir.write("root/sub/page.html", "<p>page</p>");
        dir.write("root/docs/index.html", "<p>index</p>");
        dir.write("secret.txt", "SECRET");
        std::filesystem::create_symlink(dir.file("secret.txt"), dir.file("root/out_abs"));
        std::filesystem::create_symlink("../secret.txt", dir.file("root/out_rel"));
        std::filesystem::create_symlink("app.css", dir.file("root/in_link.css"));
        std::filesystem::create_symlink(dir.path(), dir.file("root/out_dir"));
        ::mkfifo(dir.file("root/fifo").c_str(), 0600);
        root_fd = FileDescriptor(::open(dir.file("root").c_str(), O_PATH | O_DIRECTORY));
    }
    std::string root() const { return dir.file("root"); }
    TempDir dir{"tunerd-static"};
    FileDescriptor root_fd;
};

TEST_F(StaticRoot, SymlinksOutOfTheRootAreRefusedBothWays) {
    for (const auto method : {OpenMethod::openat2, OpenMethod::realpath}) {
        const char* name = method == OpenMethod::openat2 ? "openat2" : "realpath";
        EXPECT_EQ(open_beneath(root_fd.get(), root(), "app.css", method).status, 200) << name;
        EXPECT_EQ(open_beneath(root_fd.get(), root(), "in_link.css", method).status, 200) << name;
        EXPECT_EQ(open_beneath(root_fd.get(), root(), "out_abs", method).status, 404) << name;
        EXPECT_EQ(open_beneath(root_fd.get(), root(), "out_rel", method).status, 404) << name;
        EXPECT_EQ(open_beneath(root_fd.get(), root(), "out_dir/secret.txt", method).status, 404)
            << name;
        EXPECT_EQ(open_beneath(root_fd.get(), root(), "missing", method).status, 404) << name;
        EXPECT_EQ(open_beneath(root_fd.get(), root(), "app.css/x", method).status, 404) << name;
        // Opened without blocking; the caller refuses it as not a regular file.
        const auto fifo = open_beneath(root_fd.get(), root(), "fifo", method);
        EXPECT_EQ(fifo.status, 200) << name;
        EXPECT_TRUE(S_ISFIFO(fifo.info.st_mode)) << name;
    }
}

http::request_header<> request(http::verb method, const std::string& target) {
    http::request_header<> req;
    req.method(method);
    req.target(target);
    req.version(11);
    return req;
}

TEST_F(StaticRoot, AnswersWithTypeLengthValidatorsAndCacheControl) {
    StaticMounts mounts(
        {{"/static/", root(), std::chrono::hours(24 * 30), ""},
         {"/static/docs/", root() + "/docs", std::chrono::seconds(60), "index.html"}});
    const auto* m = mounts.match("/static/app.css");
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->config.prefix, "/static/");
    EXPECT_EQ(mounts.match("/static/docs/x")->config.prefix, "/static/docs/") << "longest wins";
    EXPECT_EQ(mounts.match("/stat"), nullptr);
    EXPECT_EQ(mounts.match("/static"), nullptr);

    auto reply = answer_static(*m, request(http::verb::get, "/static/app.css?v=3"), false, true);
    EXPECT_EQ(reply.status(), 200);
    EXPECT_EQ(reply.head[http::field::content_type], "text/css; charset=utf-8");
    EXPECT_EQ(reply.head[http::field::content_length], "6");
    EXPECT_EQ(reply.head[http::field::cache_control], "max-age=2592000");
    EXPECT_FALSE(reply.head[http::field::last_modified].empty());
    EXPECT_EQ(reply.head[http::field::accept_ranges], "bytes");
    EXPECT_EQ(reply.length, 6u);
    EXPECT_TRUE(reply.file);
    const std::string etag(reply.head[http::field::etag]);
    const std::string last_modified(reply.head[http::field::last_modified]);

    // Conditional: ETag, then If-Modified-Since; 304 carries the validators, no body.
    auto req = request(http::verb::get, "/static/app.css");
    req.set(http::field::if_none_match, "\"x\", " + etag);
    reply = answer_static(*m, req, false, true);
    EXPECT_EQ(reply.status(), 304);
    EXPECT_EQ(reply.head[http::field::etag], etag);
    EXPECT_EQ(reply.length, 0u);
    req = request(http::verb::get, "/static/app.css");
    req.set(http::field::if_modified_since, last_modified);
    EXPECT_EQ(answer_static(*m, req, false, true).status(), 304);
    req.set(http::field::if_none_match, "\"other\"");
    EXPECT_EQ(answer_static(*m, req, false, true).status(), 200);

    // A single range: 206 with its Content-Range, from its offset; past the end 416; an If-Range
    // that no longer holds gets the whole file.
    req = request(http::verb::get, "/static/app.css");
    req.set(http::field::range, "bytes=2-4");
    reply = answer_static(*m, req, false, true);
    EXPECT_EQ(reply.status(), 206);
    EXPECT_EQ(reply.head[http::field::content_range], "bytes 2-4/6");
    EXPECT_EQ(reply.head[http::field::content_length], "3");
    EXPECT_EQ(reply.offset, 2u);
    EXPECT_EQ(reply.length, 3u);
    req.set(http::field::if_range, etag);
    EXPECT_EQ(answer_static(*m, req, false, true).status(), 206);
    req.set(http::field::if_range, "\"old\"");
    reply = answer_static(*m, req, false, true);
    EXPECT_EQ(reply.status(), 200);
    EXPECT_EQ(reply.length, 6u);
    req = request(http::verb::get, "/static/app.css");
    req.set(http::field::range, "bytes=6-");
    reply = answer_static(*m, req, false, true);
    EXPECT_EQ(reply.status(), 416);
    EXPECT_EQ(reply.head[http::field::content_range], "bytes */6");

    // HEAD: the same header, no body.
    reply = answer_static(*m, request(http::verb::head, "/static/app.css"), false, true);
    EXPECT_EQ(reply.status(), 200);
    EXPECT_EQ(reply.head[http::field::content_length], "6");
    EXPECT_EQ(reply.length, 0u);

    // Errors.
    EXPECT_EQ(answer_static(*m, request(http::verb::get, "/static/missing"), false, true).status(),
              404);
    EXPECT_EQ(answer_static(*m, request(http::verb::get, "/static/out_abs"), false, true).status(),
              404);
    EXPECT_EQ(answer_static(*m, request(http::verb::get, "/static/fifo"), false, true).status(),
              404);
    EXPECT_EQ(answer_static(*m, request(http::verb::get, "/static/sub"), false, true).status(), 404)
        << "a directory without index";
    EXPECT_EQ(answer_static(*m, request(http::verb::get, "/static/app.css/"), false, true).status(),
              404);
    EXPECT_EQ(answer_static(*m, request(http::verb::get, "/static/%2e%2e/x"), false, true).status(),
              400);
    reply = answer_static(*m, request(http::verb::post, "/static/app.css"), true, false);
    EXPECT_EQ(reply.status(), 405);
    EXPECT_EQ(reply.head[http::field::allow], "GET, HEAD");
    EXPECT_FALSE(reply.head.keep_alive());
    reply = answer_static(*m, request(http::verb::get, "/static/app.css"), true, false);
    EXPECT_EQ(reply.status(), 400) << "a GET with a body";
    reply = answer_static(*m, request(http::verb::head, "/static/missing"), false, true);
    EXPECT_EQ(reply.status(), 404);
    EXPECT_TRUE(reply.head.body().empty()) << "HEAD: no body";

    // Index: a directory with its slash gets index.html, without it a redirect.
    const auto* docs = mounts.match("/static/docs/");
    reply = answer_static(*docs, request(http::verb::get, "/static/docs/"), false, true);
    EXPECT_EQ(reply.status(), 200);
    EXPECT_EQ(reply.head[http::field::content_type], "text/html; charset=utf-8");
    StaticMounts with_index({{"/s/", root(), {}, "index.html"}});
    reply = answer_static(*with_index.match("/s/docs"), request(http::verb::get, "/s/docs"), false,
                          true);
    EXPECT_EQ(reply.status(), 301);
    EXPECT_EQ(reply.head[http::field::location], "/s/docs/");
    EXPECT_EQ(answer_static(*with_index.match("/s/sub/"), request(http::verb::get, "/s/sub/"),
                            false, true)
                  .status(),
              404)
        << "no index.html there";
}

TEST_F(StaticRoot, BodyGoesOutInBoundedPiecesOverAStreamThatIsNoSocket) {
    // A file larger than the read buffer, through the pread fallback of a test stream.
    std::string big(3 * kStaticReadBuffer + 123, 'x');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    dir.write("root/big.bin", big);
    StaticMounts mounts({{"/static/", root(), {}, ""}});
    auto reply = answer_static(*mounts.match("/static/big.bin"),
                               request(http::verb::get, "/static/big.bin"), false, true);
    ASSERT_EQ(reply.status(), 200);
    boost::asio::io_context ioc;
    boost::beast::test::stream server(ioc), client(ioc);
    server.connect(client);
    auto watchdog = std::make_shared<Watchdog>(ioc.get_executor());
    Deadline deadline(watchdog, [] {});
    std::uint64_t sent = 0;
    boost::system::error_code ec;
    bool done = false;
    boost::asio::co_spawn(
        ioc,
        [&]() -> boost::asio::awaitable<void> {
            co_await send_static(server, deadline, std::chrono::seconds(5), reply, sent, ec);
            server.close();
            done = true;
        },
        boost::asio::detached);
    http::response_parser<http::string_body> parser;
    parser.body_limit(big.size() + 1);
    boost::beast::flat_buffer buffer;
    boost::system::error_code read_ec;
    bool read = false;
    http::async_read(client, buffer, parser, [&](boost::system::error_code e, std::size_t) {
        read_ec = e;
        read = true;
    });
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!(done && read) && std::chrono::steady_clock::now() < until) {
        ioc.run_for(std::chrono::milliseconds(10));
        if (ioc.stopped()) ioc.restart();
    }
    EXPECT_TRUE(done);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_FALSE(read_ec) << read_ec.message();
    EXPECT_EQ(parser.get().body(), big);
    EXPECT_GT(sent, big.size());
}

TEST_F(StaticRoot, ARangeIsSentFromItsOffset) {
    std::string big(2 * kStaticReadBuffer + 7, 'x');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    dir.write("root/big.bin", big);
    StaticMounts mounts({{"/static/", root(), {}, ""}});
    auto req = request(http::verb::get, "/static/big.bin");
    req.set(http::field::range, "bytes=70000-");
    auto reply = answer_static(*mounts.match("/static/big.bin"), req, false, true);
    ASSERT_EQ(reply.status(), 206);
    boost::asio::io_context ioc;
    boost::beast::test::stream server(ioc), client(ioc);
    server.connect(client);
    auto watchdog = std::make_shared<Watchdog>(ioc.get_executor());
    Deadline deadline(watchdog, [] {});
    std::uint64_t sent = 0;
    boost::system::error_code ec;
    bool done = false;
    boost::asio::co_spawn(
        ioc,
        [&]() -> boost::asio::awaitable<void> {
            co_await send_static(server, deadline, std::chrono::seconds(5), reply, sent, ec);
            server.close();
            done = true;
        },
        boost::asio::detached);
    http::response_parser<http::string_body> parser;
    parser.body_limit(big.size() + 1);
    boost::beast::flat_buffer buffer;
    bool read = false;
    http::async_read(client, buffer, parser,
                     [&](boost::system::error_code, std::size_t) { read = true; });
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!(done && read) && std::chrono::steady_clock::now() < until) {
        ioc.run_for(std::chrono::milliseconds(10));
        if (ioc.stopped()) ioc.restart();
    }
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(parser.get().body(), big.substr(70000));
}

TEST_F(StaticRoot, MountWhoseRootVanishedAnswers404) {
    StaticMounts mounts({{"/gone/", dir.file("nowhere"), {}, ""}});
    EXPECT_EQ(
        answer_static(*mounts.match("/gone/x"), request(http::verb::get, "/gone/x"), false, true)
            .status(),
        404);
}

TEST(StaticCounters, CountByStatusAndBytes) {
    StaticCounters c;
    c.count(200, 100);
    c.count(200, 50);
    c.count(404, 10);
    const auto s = c.snapshot();
    EXPECT_EQ(s.responses.at(200), 2u);
    EXPECT_EQ(s.responses.at(404), 1u);
    EXPECT_EQ(s.bytes, 160u);
}

}  // namespace
}  // namespace tuner::server
