// [access_log] (server/access_log): escaping of hostile bytes, each format (JSON parsed back),
// clipping, the bounded queue that drops instead of waiting, the writer and its reopen.
#include "server/access_log.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/temp_dir.hpp"

namespace tuner::server {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

AccessEntry sample() {
    AccessEntry e;
    e.time = std::chrono::system_clock::from_time_t(1796642692) + std::chrono::milliseconds(123);
    e.client = "192.0.2.7";
    e.method = "GET";
    e.target = "/items?id=3";
    e.version = 11;
    e.status = 200;
    e.bytes = 1234;
    e.referer = "https://example.com/";
    e.user_agent = "curl/7.88.1";
    e.worker = 3;
    e.queue_usec = 1500;
    e.service_usec = 12000;
    e.total_usec = 14250;
    return e;
}

std::vector<std::string> read_lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

TEST(AccessLogEscape, TextEscapesAsNginxButKeepsValidUtf8) {
    EXPECT_EQ(escape_text("plain /a?b=c"), "plain /a?b=c");
    EXPECT_EQ(escape_text("say \"hi\""), "say \\x22hi\\x22");
    EXPECT_EQ(escape_text("back\\slash"), "back\\x5Cslash");
    EXPECT_EQ(escape_text("line\r\nbreak\t\x7f"), "line\\x0D\\x0Abreak\\x09\\x7F");
    EXPECT_EQ(escape_text(std::string("nul\0byte", 8)), "nul\\x00byte");
    EXPECT_EQ(escape_text("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac");
    EXPECT_EQ(escape_text("bad \xff\xfe"), "bad \\xFF\\xFE");
    EXPECT_EQ(escape_text("\xc3"), "\\xC3");                             // truncated sequence
    EXPECT_EQ(escape_text("\xc0\xaf"), "\\xC0\\xAF");                    // overlong "/"
    EXPECT_EQ(escape_text("\xed\xa0\x80"), "\\xED\\xA0\\x80");           // a surrogate
    EXPECT_EQ(escape_text("\xf4\x90\x80\x80"), "\\xF4\\x90\\x80\\x80");  // above U+10FFFF
}

TEST(AccessLogFormat, CombinedHasNginxFieldsThenTunerdsOwn) {
    const auto line = format_access_line(sample(), AccessLogFormat::combined);
    EXPECT_THAT(line, StartsWith("192.0.2.7 - - ["));
    EXPECT_THAT(line, HasSubstr("] \"GET /items?id=3 HTTP/1.1\" 200 1234 "
                                "\"https://example.com/\" \"curl/7.88.1\" worker=3 queue=0.002 "
                                "service=0.012 total=0.014 cache=-\n"));
    EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
}

TEST(AccessLogFormat, CommonIsPlainClf) {
    auto e = sample();
    e.referer.clear();
    const auto line = format_access_line(e, AccessLogFormat::common);
    EXPECT_THAT(line, HasSubstr("] \"GET /items?id=3 HTTP/1.1\" 200 1234\n"));
    EXPECT_EQ(line.find("worker="), std::string::npos);
}

TEST(AccessLogFormat, EmptyFieldsAreDashesAndAGoneClientIsStatusZero) {
    AccessEntry e;
    e.time = std::chrono::system_clock::now();
    e.version = 10;
    const auto line = format_access_line(e, AccessLogFormat::combined);
    EXPECT_THAT(line, HasSubstr("\"- - HTTP/1.0\" 0 0 \"-\" \"-\" worker=- "));
}

TEST(AccessLogFormat, JsonParsesBackWithEveryField) {
    const auto line = format_access_line(sample(), AccessLogFormat::json);
    ASSERT_EQ(line.back(), '\n');
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["time"], "2026-12-07T11:24:52.123Z");
    EXPECT_EQ(j["client"], "192.0.2.7");
    EXPECT_EQ(j["method"], "GET");
    EXPECT_EQ(j["target"], "/items?id=3");
    EXPECT_EQ(j["protocol"], "HTTP/1.1");
    EXPECT_EQ(j["status"], 200);
    EXPECT_EQ(j["bytes"], 1234);
    EXPECT_EQ(j["referer"], "https://example.com/");
    EXPECT_EQ(j["user_agent"], "curl/7.88.1");
    EXPECT_EQ(j["worker"], 3);
    EXPECT_DOUBLE_EQ(j["queue_wait_ms"].get<double>(), 1.5);
    EXPECT_DOUBLE_EQ(j["service_ms"].get<double>(), 12.0);
    EXPECT_DOUBLE_EQ(j["total_ms"].get<double>(), 14.25);
    EXPECT_EQ(j["cache"], "-");
    auto e = sample();
    e.worker.reset();
    EXPECT_TRUE(
        nlohmann::json::parse(format_access_line(e, AccessLogFormat::json))["worker"].is_null());
}

TEST(AccessLogFormat, HostileBytesNeverBreakALineInAnyFormat) {
    // Every byte value, in every client field, in pieces and whole.
    std::string all;
    for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
    const std::vector<std::string> hostile = {all,
                                              "\"\\\n\r",
                                              "\xff\xfe\xfd",
                                              "\xe2\x82",
                                              "{\"json\": [1,2]}",
                                              "\x1b[31mred\x1b[0m",
                                              std::string(3000, '\x80'),
                                              std::string("a\0b", 3)};
    for (const auto& bytes : hostile) {
        auto e = sample();
        e.method = clip(bytes, kMaxLoggedShort);
        e.target = clip(bytes, kMaxLoggedTarget);
        e.referer = clip(bytes, kMaxLoggedHeader);
        e.user_agent = clip(bytes, kMaxLoggedHeader);
        e.client = clip(bytes, kMaxLoggedShort);
        e.cache = clip(bytes, kMaxLoggedShort);
        for (const auto format :
             {AccessLogFormat::combined, AccessLogFormat::common, AccessLogFormat::json}) {
            std::string line;
            ASSERT_NO_THROW(line = format_access_line(e, format));
            ASSERT_FALSE(line.empty());
            EXPECT_EQ(line.back(), '\n');
            EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << "one line";
            EXPECT_EQ(line.find('\r'), std::string::npos);
            EXPECT_EQ(line.find('\0'), std::string::npos);
            if (format == AccessLogFormat::json) {
                nlohmann::json j;
                ASSERT_NO_THROW(j = nlohmann::json::parse(line)) << line;
                EXPECT_TRUE(j["target"].is_string());
            } else {
                // The quoted fields hold no bare quote: the line splits as nginx's would.
                const auto quotes = std::count(line.begin(), line.end(), '"');
                EXPECT_EQ(quotes, format == AccessLogFormat::combined ? 6 : 2) << line;
            }
        }
    }
}

TEST(AccessLogFormat, LongFieldsAreClippedWithAMarker) {
    const std::string long_target = "/" + std::string(5000, 'a');
    const auto clipped = clip(long_target, kMaxLoggedTarget);
    EXPECT_EQ(clipped.size(), kMaxLoggedTarget + kTruncatedMarker.size());
    EXPECT_THAT(clipped, testing::EndsWith(std::string(kTruncatedMarker)));
    EXPECT_EQ(clip("short", kMaxLoggedTarget), "short");
}

TEST(AccessLogWriter, WritesLinesAndReopensAfterARename) {
    test::TempDir dir("tunerd-access");
    const std::string path = dir.file("access.log");
    AccessLog log({true, path, AccessLogFormat::combined},
                  {1000, 1 << 20, std::chrono::milliseconds(50)});
    EXPECT_TRUE(log.enabled());
    auto e = sample();
    log.submit(e);
    log.submit(e);
    ASSERT_TRUE(log.flush(std::chrono::seconds(5)));
    EXPECT_EQ(read_lines(path).size(), 2u);
    std::filesystem::rename(path, dir.file("access.log.1"));
    log.submit(e);  // still the old file, as nginx before USR1
    ASSERT_TRUE(log.flush(std::chrono::seconds(5)));
    log.reopen();
    e.target = "/after";
    log.submit(e);
    ASSERT_TRUE(log.flush(std::chrono::seconds(5)));
    EXPECT_EQ(read_lines(dir.file("access.log.1")).size(), 3u);
    const auto fresh = read_lines(path);
    ASSERT_EQ(fresh.size(), 1u);
    EXPECT_THAT(fresh[0], HasSubstr("/after"));
    const auto stats = log.stats();
    EXPECT_EQ(stats.written, 4u);
    EXPECT_EQ(stats.dropped, 0u);
    EXPECT_EQ(stats.errors, 0u);
    EXPECT_EQ(stats.reopened, 1u);
}

TEST(AccessLogWriter, FullQueueDropsAndCountsInsteadOfWaiting) {
    test::TempDir dir("tunerd-access");
    // A writer that only wakes every 10 s: the queue of 8 fills, the rest is dropped at once.
    AccessLog log({true, dir.file("a.log"), AccessLogFormat::json},
                  {8, 1 << 20, std::chrono::seconds(10)});
    const auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < 100; ++i) log.submit(sample());
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));
    EXPECT_GE(log.stats().dropped, 100u - 8u);
    ASSERT_TRUE(log.flush(std::chrono::seconds(5)));
    const auto stats = log.stats();
    EXPECT_EQ(stats.written + stats.dropped, 100u);
    EXPECT_EQ(read_lines(dir.file("a.log")).size(), stats.written);
}

TEST(AccessLogWriter, QueueIsBoundedInBytesToo) {
    test::TempDir dir("tunerd-access");
    AccessLog log({true, dir.file("a.log"), AccessLogFormat::common},
                  {100000, 3 * sizeof(AccessEntry) + 1000, std::chrono::seconds(10)});
    auto e = sample();
    e.user_agent = std::string(kMaxLoggedHeader, 'u');
    for (int i = 0; i < 10; ++i) log.submit(e);
    EXPECT_GE(log.stats().dropped, 7u);
}

TEST(AccessLogWriter, UnwritablePathCountsErrorsAndNeverThrows) {
    AccessLog log({true, "/nonexistent-dir/for/sure/access.log", AccessLogFormat::combined},
                  {100, 1 << 20, std::chrono::milliseconds(50)});
    log.submit(sample());
    ASSERT_TRUE(log.flush(std::chrono::seconds(5)));
    EXPECT_GE(log.stats().errors, 1u);
    EXPECT_EQ(log.stats().written, 0u);
}

TEST(AccessLogWriter, DisabledTakesNothingAndAReloadTurnsItOn) {
    test::TempDir dir("tunerd-access");
    AccessLog log({false, dir.file("a.log"), AccessLogFormat::combined});
    EXPECT_FALSE(log.enabled());
    log.submit(sample());
    EXPECT_TRUE(log.flush(std::chrono::milliseconds(100)));
    EXPECT_FALSE(std::filesystem::exists(dir.file("a.log")));
    log.configure({true, dir.file("a.log"), AccessLogFormat::json});
    log.submit(sample());
    ASSERT_TRUE(log.flush(std::chrono::seconds(5)));
    EXPECT_EQ(read_lines(dir.file("a.log")).size(), 1u);
}

}  // namespace
}  // namespace tuner::server
