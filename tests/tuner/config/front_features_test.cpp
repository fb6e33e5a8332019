// The config of the front's own answers: [[static]] mounts (prefix, root, max_age, index; checked
// against the file system at load) and [access_log] (enabled, path, format).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/temp_dir.hpp"
#include "tests/tuner/config/test_support.hpp"
#include "tuner/config/load.hpp"

namespace tuner::config {
namespace {

using ::testing::HasSubstr;
using testing::issues_text;
using testing::single_issue;
using testing::valid_config;

class StaticConfig : public ::testing::Test {
protected:
    StaticConfig() {
        dir.write("static/app.css", "x");
        dir.write("media/a.png", "x");
        dir.write("file.txt", "x");
    }
    std::string mount(const std::string& prefix, const std::string& root,
                      const std::string& extra = "") const {
        return "[[static]]\nprefix = \"" + prefix + "\"\nroot = \"" + root + "\"\n" + extra;
    }
    test::TempDir dir{"tunerd-static-config"};
};

TEST_F(StaticConfig, NoMountsByDefault) {
    EXPECT_TRUE(Config{}.server.static_mounts.empty());
}

TEST_F(StaticConfig, ReadsMountsInFileOrderWithDefaults) {
    const auto c = valid_config(mount("/static/", dir.file("static"), "max_age = \"30d\"\n") +
                                mount("/media/", dir.file("media"), "index = \"index.html\"\n"));
    ASSERT_EQ(c.server.static_mounts.size(), 2u);
    const auto& a = c.server.static_mounts[0];
    EXPECT_EQ(a.prefix, "/static/");
    EXPECT_EQ(a.root, dir.file("static"));
    EXPECT_EQ(a.max_age, std::chrono::hours(24 * 30));
    EXPECT_EQ(a.index, "");
    EXPECT_EQ(c.server.static_mounts[1].index, "index.html");
    EXPECT_EQ(c.server.static_mounts[1].max_age, Duration{0});
}

TEST_F(StaticConfig, FormattedConfigRoundTripsWithMounts) {
    const auto c = valid_config(mount("/static/", dir.file("static"), "max_age = \"1h\"\n"));
    const auto text = format_config(c);
    EXPECT_THAT(text, HasSubstr("[[static]]\nprefix = \"/static/\"\n"));
    const auto again = parse_config(text, "formatted");
    ASSERT_TRUE(again.ok()) << issues_text(again) << text;
    EXPECT_EQ(again.config, c);
    EXPECT_NE(config_hash(c), config_hash(Config{}));
}

TEST_F(StaticConfig, PrefixMustStartAndEndWithASlash) {
    for (const char* bad :
         {"static/", "/static", "", "/st atic/", "/a%2f/", "/a?/", "/a/../", "//", "/a\\\\b/"}) {
        const auto issue = single_issue(mount(bad, dir.file("static")));
        EXPECT_EQ(issue.key, "static.prefix") << bad;
        EXPECT_EQ(issue.line, 2u) << bad;
    }
}

TEST_F(StaticConfig, RootMustBeAnExistingDirectory) {
    auto issue = single_issue(mount("/s/", dir.file("missing")));
    EXPECT_EQ(issue.key, "static.root");
    EXPECT_EQ(issue.line, 3u);
    EXPECT_THAT(issue.message, HasSubstr("No such file or directory"));
    issue = single_issue(mount("/s/", dir.file("file.txt")));
    EXPECT_THAT(issue.message, HasSubstr("is not a directory"));
    issue = single_issue(mount("/s/", "relative/dir"));
    EXPECT_THAT(issue.message, HasSubstr("absolute path"));
}

TEST_F(StaticConfig, DuplicatePrefixesMissingKeysAndUnknownKeysAreRefused) {
    auto issue = single_issue(mount("/s/", dir.file("static")) + mount("/s/", dir.file("media")));
    EXPECT_EQ(issue.key, "static.prefix");
    EXPECT_EQ(issue.line, 5u);
    EXPECT_THAT(issue.message, HasSubstr("duplicate prefix \"/s/\" ([[static]] number 2)"));
    EXPECT_EQ(single_issue("[[static]]\nprefix = \"/s/\"\n").key, "static.root");
    EXPECT_EQ(single_issue("[[static]]\nroot = \"" + dir.file("static") + "\"\n").key,
              "static.prefix");
    issue = single_issue(mount("/s/", dir.file("static"), "expires = \"30d\"\n"));
    EXPECT_EQ(issue.key, "static.expires");
    EXPECT_EQ(issue.line, 4u);
    EXPECT_EQ(single_issue(mount("/s/", dir.file("static"), "max_age = 30\n")).key,
              "static.max_age");
    EXPECT_EQ(single_issue(mount("/s/", dir.file("static"), "max_age = \"3651d\"\n")).key,
              "static.max_age");
    EXPECT_EQ(single_issue(mount("/s/", dir.file("static"), "index = \"../x.html\"\n")).key,
              "static.index");
}

TEST_F(StaticConfig, APlainStaticTableIsRefused) {
    const auto issue = single_issue("[static]\nprefix = \"/s/\"\n");
    EXPECT_EQ(issue.key, "static");
    EXPECT_THAT(issue.message, HasSubstr("expected [[static]] tables"));
}

TEST(AccessLogConfig, DefaultsOffToStderrCombined) {
    const auto c = Config{};
    EXPECT_FALSE(c.server.access_log.enabled);
    EXPECT_EQ(c.server.access_log.path, "-");
    EXPECT_EQ(c.server.access_log.format, AccessLogFormat::combined);
}

TEST(AccessLogConfig, ReadsEveryKeyAndRefusesBadOnes) {
    const auto c = valid_config(
        "[access_log]\nenabled = true\npath = \"/var/log/tunerd/access.log\"\nformat = \"json\"\n");
    EXPECT_TRUE(c.server.access_log.enabled);
    EXPECT_EQ(c.server.access_log.path, "/var/log/tunerd/access.log");
    EXPECT_EQ(c.server.access_log.format, AccessLogFormat::json);
    auto issue = single_issue("[access_log]\nformat = \"apache\"\n");
    EXPECT_EQ(issue.key, "access_log.format");
    EXPECT_EQ(issue.line, 2u);
    issue = single_issue("[access_log]\n\npath = \"logs/access.log\"\n");
    EXPECT_EQ(issue.key, "access_log.path");
    EXPECT_EQ(issue.line, 3u);
    EXPECT_EQ(single_issue("[access_log]\nenabled = \"yes\"\n").key, "access_log.enabled");
}

}  // namespace
}  // namespace tuner::config
