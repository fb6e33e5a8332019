// [[static]] mounts and [access_log] against the real binary: one tunerd serving a temporary
// directory under /static/ with the access log on in a file. Files come back with their type,
// length and validators (sendfile over the real socket), 304 by ETag and by date, 404, 405,
// traversal attempts never return what lies outside the root, the worker never sees a static
// request, and the access log has a line per request and moves to a new file on SIGUSR1.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/http_client.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/tunerd_process.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kSecret = "TOP-SECRET-OUTSIDE-THE-ROOT";

std::vector<std::string> read_lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// Waits until `path` has at least `n` lines (the writer flushes within a second).
std::vector<std::string> wait_lines(const std::string& path, std::size_t n) {
    const auto until = std::chrono::steady_clock::now() + 5s;
    auto lines = read_lines(path);
    while (lines.size() < n && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(50ms);
        lines = read_lines(path);
    }
    return lines;
}

std::uint64_t worker_requests(const TunerdProcess& tunerd) {
    const auto workers = tunerd.admin_json("/workers");
    std::uint64_t served = 0;
    if (!workers) return 0;
    for (const auto& w : (*workers)["workers"]) served += w.value("served", 0ull);
    return served;
}

class FrontStatic : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = std::make_unique<TempDir>("tunerd-static-it");
        dir_->write("root/app.css", "body { color: red }\n");
        big_ = std::string(1024 * 1024 + 17, '\0');
        for (std::size_t i = 0; i < big_.size(); ++i) big_[i] = static_cast<char>('a' + i % 23);
        dir_->write("root/big.js", big_);
        dir_->write("root/docs/index.html", "<h1>docs</h1>\n");
        dir_->write("secret.txt", kSecret);
        std::filesystem::create_symlink(dir_->file("secret.txt"), dir_->file("root/out.txt"));
        std::filesystem::create_symlink("../secret.txt", dir_->file("root/up.txt"));
        const std::string config =
            "[access_log]\nenabled = true\npath = \"" + dir_->file("access.log") +
            "\"\nformat = \"combined\"\n"
            "[workers]\nmode = \"fixed\"\ncount = 1\n"
            "[[static]]\nprefix = \"/static/\"\nroot = \"" +
            dir_->file("root") + "\"\nmax_age = \"30d\"\nindex = \"index.html\"\n";
        tunerd_ = std::make_unique<TunerdProcess>(TunerdOptions{.config = config});
        ASSERT_TRUE(tunerd_->start().ok()) << tunerd_->log();
    }
    static void TearDownTestSuite() {
        tunerd_.reset();
        dir_.reset();
    }

    static Result<HttpResponse> get(const std::string& target,
                                    std::map<std::string, std::string> headers = {}) {
        return http_request(tunerd_->public_address(), {"GET", target, {}, std::move(headers)});
    }
    static std::string raw(const std::string& request) {
        auto answer = raw_exchange(tunerd_->public_address(), request, 5s);
        return answer ? *answer : "(no answer: " + answer.error().what + ")";
    }

    static std::unique_ptr<TempDir> dir_;
    static std::unique_ptr<TunerdProcess> tunerd_;
    static std::string big_;
};

std::unique_ptr<TempDir> FrontStatic::dir_;
std::unique_ptr<TunerdProcess> FrontStatic::tunerd_;
std::string FrontStatic::big_;

TEST_F(FrontStatic, ServesFilesWithTypeLengthValidatorsAndNoWorker) {
    const auto served_before = worker_requests(*tunerd_);
    auto css = get("/static/app.css?v=2");
    ASSERT_TRUE(css.ok()) << css.error().what;
    EXPECT_EQ(css->status, 200);
    EXPECT_EQ(css->body, "body { color: red }\n");
    EXPECT_EQ(css->header("content-type"), "text/css; charset=utf-8");
    EXPECT_EQ(css->header("content-length"), "20");
    EXPECT_EQ(css->header("cache-control"), "max-age=2592000");
    EXPECT_FALSE(css->header("etag").empty());
    EXPECT_FALSE(css->header("last-modified").empty());
    // A file larger than one sendfile step, over the real socket.
    auto js = get("/static/big.js");
    ASSERT_TRUE(js.ok()) << js.error().what;
    EXPECT_EQ(js->status, 200);
    EXPECT_EQ(js->header("content-type"), "text/javascript; charset=utf-8");
    EXPECT_EQ(js->body.size(), big_.size());
    EXPECT_TRUE(js->body == big_) << "the body differs";
    // One byte range of it, sendfile from its offset.
    auto part = get("/static/big.js", {{"Range", "bytes=1000000-"}});
    ASSERT_TRUE(part.ok()) << part.error().what;
    EXPECT_EQ(part->status, 206);
    EXPECT_EQ(part->header("content-range"), "bytes 1000000-" + std::to_string(big_.size() - 1) +
                                                 "/" + std::to_string(big_.size()));
    EXPECT_TRUE(part->body == big_.substr(1000000)) << "the range differs";
    auto index = get("/static/docs/");
    ASSERT_TRUE(index.ok());
    EXPECT_EQ(index->status, 200);
    EXPECT_EQ(index->body, "<h1>docs</h1>\n");
    // Conditional requests: by ETag, then by date.
    auto by_etag = get("/static/app.css", {{"If-None-Match", "\"nope\", " + css->header("etag")}});
    ASSERT_TRUE(by_etag.ok());
    EXPECT_EQ(by_etag->status, 304);
    EXPECT_EQ(by_etag->body, "");
    auto by_date = get("/static/app.css", {{"If-Modified-Since", css->header("last-modified")}});
    ASSERT_TRUE(by_date.ok());
    EXPECT_EQ(by_date->status, 304);
    auto changed = get("/static/app.css", {{"If-None-Match", "\"other\""},
                                           {"If-Modified-Since", css->header("last-modified")}});
    ASSERT_TRUE(changed.ok());
    EXPECT_EQ(changed->status, 200) << "If-None-Match decides over If-Modified-Since";
    // HEAD: the header of the GET, no body (the next response on the connection stays in step).
    const auto head =
        raw("HEAD /static/app.css HTTP/1.1\r\nHost: t\r\n\r\n"
            "GET /static/app.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(head.find("HTTP/1.1 200 OK"), 0u) << head;
    EXPECT_THAT(head, HasSubstr("Content-Length: 20\r\n"));
    const auto second = head.find("HTTP/1.1 200 OK", 1);
    ASSERT_NE(second, std::string::npos) << head;
    EXPECT_EQ(head.find("body {"), head.rfind("body {")) << "one body only:\n" << head;
    EXPECT_GT(head.find("body {"), second);
    EXPECT_EQ(worker_requests(*tunerd_), served_before) << "no static request reached a worker";
}

TEST_F(FrontStatic, MissingFilesOtherMethodsAndTraversalNeverReachTheSecretAndAreCounted) {
    const auto served_before = worker_requests(*tunerd_);
    EXPECT_EQ(get("/static/missing.css")->status, 404);
    EXPECT_EQ(get("/static/docs")->status, 301);
    const auto post =
        raw("POST /static/app.css HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    EXPECT_EQ(post.find("HTTP/1.1 405 "), 0u) << post;
    EXPECT_THAT(post, HasSubstr("Allow: GET, HEAD\r\n"));
    for (const std::string target :
         {"/static/../etc/passwd", "/static/../secret.txt", "/static/%2e%2e/secret.txt",
          "/static/%2E%2E/secret.txt", "/static/..%2fsecret.txt", "/static/..%2Fsecret.txt",
          "/static/..%5csecret.txt", "/static/out.txt", "/static/up.txt", "/static/a%00b",
          "/static/.%2e/secret.txt", "/static//../secret.txt", "/static/docs/../../secret.txt"}) {
        const auto answer =
            raw("GET " + target + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        const bool refused = answer.find("HTTP/1.1 400 ") == 0 || answer.find("HTTP/1.1 404 ") == 0;
        EXPECT_TRUE(refused) << target << ":\n" << answer;
        EXPECT_THAT(answer, Not(HasSubstr(kSecret))) << target;
        EXPECT_THAT(answer, Not(HasSubstr("root:"))) << target;
    }
    EXPECT_EQ(worker_requests(*tunerd_), served_before) << "no static request reached a worker";
    // Outside /static/ the worker answers as before.
    EXPECT_EQ(get("/")->status, 200);
    EXPECT_EQ(worker_requests(*tunerd_), served_before + 1);

    // Counted by status in /performance and /metrics.
    ASSERT_EQ(get("/static/app.css")->status, 200);
    ASSERT_EQ(get("/static/nothing-here")->status, 404);
    const auto perf = tunerd_->admin_json("/performance");
    ASSERT_TRUE(perf.ok());
    const auto& statics = (*perf)["front"]["static"];
    EXPECT_GE(statics["responses"]["200"].get<int>(), 1) << statics.dump();
    EXPECT_GE(statics["responses"]["404"].get<int>(), 1) << statics.dump();
    EXPECT_GT(statics["bytes"].get<double>(), 20.0);
    EXPECT_EQ(statics["mounts"][0]["prefix"], "/static/");
    EXPECT_GT(tunerd_->metric("tunerd_static_bytes_total").value_or(0), 20.0);
    EXPECT_GT(tunerd_->metric("tunerd_static_responses_total").value_or(0), 0.0);
    EXPECT_EQ((*perf)["front"]["access_log"]["enabled"], true);
}

TEST_F(FrontStatic, AccessLogHasALinePerRequestAndMovesToANewFileOnSigusr1) {
    const std::string path = dir_->file("access.log");
    const auto before = read_lines(path).size();
    ASSERT_EQ(get("/work?cpu_ms=1&io_ms=0",
                  {{"User-Agent", "agent \"quoted\" \xff"}, {"Referer", "https://ref.example/"}})
                  ->status,
              200);
    ASSERT_EQ(get("/static/app.css")->status, 200);
    auto lines = wait_lines(path, before + 2);
    ASSERT_GE(lines.size(), before + 2) << tunerd_->log();
    const auto& proxied = lines[lines.size() - 2];
    EXPECT_THAT(proxied, HasSubstr("127.0.0.1 - - ["));
    EXPECT_THAT(proxied, HasSubstr("\"GET /work?cpu_ms=1&io_ms=0 HTTP/1.1\" 200 "));
    EXPECT_THAT(proxied, HasSubstr("\"https://ref.example/\" \"agent \\x22quoted\\x22 \\xFF\""));
    EXPECT_THAT(proxied, HasSubstr(" worker="));
    EXPECT_THAT(proxied, Not(HasSubstr(" worker=- ")));
    EXPECT_THAT(proxied, HasSubstr(" cache=-"));
    const auto& statics = lines.back();
    EXPECT_THAT(statics, HasSubstr("\"GET /static/app.css HTTP/1.1\" 200 "));
    EXPECT_THAT(statics, HasSubstr(" worker=- "));

    // logrotate: rename, SIGUSR1, and the next lines go to a new file at the old path.
    std::filesystem::rename(path, dir_->file("access.log.1"));
    tunerd_->signal(SIGUSR1);
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (!std::filesystem::exists(path) && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(20ms);
    ASSERT_EQ(get("/static/app.css?after=rotate")->status, 200);
    lines = wait_lines(path, 1);
    ASSERT_EQ(lines.size(), 1u) << tunerd_->log();
    EXPECT_THAT(lines[0], HasSubstr("/static/app.css?after=rotate"));
    const auto old_lines = read_lines(dir_->file("access.log.1"));
    EXPECT_GE(old_lines.size(), before + 2);
    for (const auto& line : old_lines) EXPECT_THAT(line, Not(HasSubstr("after=rotate")));
    const auto perf = tunerd_->admin_json("/performance");
    ASSERT_TRUE(perf.ok());
    EXPECT_GE((*perf)["front"]["access_log"]["written"].get<int>(), 3);
    EXPECT_EQ((*perf)["front"]["access_log"]["errors"].get<int>(), 0);
}

}  // namespace
}  // namespace tuner::test
