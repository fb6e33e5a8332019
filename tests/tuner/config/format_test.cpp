// The effective config written back as TOML: round trips, the example file etc/tunerd.toml equals
// the built-in defaults, every key is documented, and the config hash.
#include <regex>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/tuner/config/test_support.hpp"
#include "tuner/config/load.hpp"

namespace tuner::config {
namespace {

using ::testing::HasSubstr;
using testing::issues_text;
using ::testing::Not;
using testing::read_source_file;

// A config where every setting differs from its default, with values that need care in TOML:
// quotes, spaces, backslashes, non-ASCII, doubles that are not short in binary.
Config every_setting_changed() {
    Config c;
    c.server.listen = "[::]:8000";
    c.server.max_queue = 7;
    c.server.queue_timeout = 1500ms;
    c.server.request_timeout = std::chrono::minutes(2);
    c.server.header_timeout = 3s;
    c.server.keepalive_timeout = 90s;
    c.server.max_header_size_bytes = 8 * KiB;
    c.server.max_body_size_bytes = 1536;
    c.server.shutdown_timeout = 1h;
    c.server.io_threads = 4;
    c.server.cache.size_bytes = 64 * MiB;
    c.server.cache.max_entry_size_bytes = 256 * KiB;
    c.server.cache.max_entries = 500;
    c.server.cache.default_ttl = 5s;
    c.server.cache.paths = {"/news/", "/a \"quoted\" path"};
    c.server.cache.stale_if_error = Duration{0};
    c.server.access_log = {true, "/var/log/tunerd/access.log", AccessLogFormat::json};
    c.server.static_mounts = {{"/static/", "/", std::chrono::hours(24 * 30), "index.html"},
                              {"/media/", "/", Duration{0}, ""}};
    c.admin.listen = "192.0.2.10:9464";
    c.admin.token_file = "/etc/tunerd/token";
    c.workers.command = {"/usr/bin/python3", "-c", "print(\"hi \\\\ there\")", "{socket}"};
    c.workers.dir = "/srv/my app";
    c.workers.env = {{"GREETING", "grüß \"dich\""}, {"WITH SPACE", "x"}, {"EMPTY", ""}};
    c.workers.ports = {30000, 30010};
    c.workers.mode = PoolMode::fixed;
    c.workers.count = 3;
    c.workers.min = 2;
    c.workers.max = 5;
    c.workers.threads = 2;
    c.workers.threads_max = 8;
    c.workers.memory_per_worker_bytes = 3 * GiB / 2;
    c.workers.max_requests = 5000;
    c.workers.max_requests_jitter = 500;
    c.workers.max_worker_rss_bytes = 300 * MiB;
    c.workers.health_path = "/health?full=1";
    c.workers.startup_timeout = 45s;
    c.workers.drain_timeout = 10s;
    c.workers.kill_timeout = 2s;
    c.demo = {1, 2, 3};
    c.policy.interval = 250ms;
    c.policy.window = 30s;
    c.policy.os_reserve_bytes = 0;
    c.policy.target_utilisation = 0.1 + 0.2;  // 0.30000000000000004
    c.policy.scale_down_cooldown = Duration{0};
    c.policy.pss_every = 3;
    c.policy.dry_run = true;
    c.database.url_file = "/etc/app/db";
    c.database.admin_url_file = "/etc/app/db-admin";
    c.database.postgres = PostgresMode::apply;
    c.database.location = DatabaseLocation::remote;
    c.database.memory_bytes = 16 * GiB;
    c.database.memory_share = 1.0 / 3.0;
    c.database.storage = Storage::hdd;
    c.database.connect_timeout = 10s;
    c.state.dir = "/var/lib/somewhere";
    c.state.retention = 90min;
    c.log.level = "trace";
    return c;
}

TEST(FormatConfig, DefaultsRoundTrip) {
    const auto loaded = parse_config(format_config(Config{}), "formatted");
    EXPECT_TRUE(loaded.ok()) << issues_text(loaded);
    EXPECT_EQ(loaded.config, Config{});
}

TEST(FormatConfig, ConfigWithEverySettingChangedRoundTrips) {
    const Config original = every_setting_changed();
    ASSERT_NE(original, Config{});
    const std::string text = format_config(original);
    const auto loaded = parse_config(text, "formatted");
    ASSERT_TRUE(loaded.ok()) << issues_text(loaded) << text;
    EXPECT_EQ(loaded.config, original) << text;
    EXPECT_EQ(format_config(loaded.config), text);
}

TEST(FormatConfig, EverySectionDiffersFromDefaultsInTheRoundTripConfig) {
    // Guards the round-trip test: a section left at its defaults would prove nothing about it.
    const Config c = every_setting_changed();
    const Config d;
    EXPECT_NE(c.server, d.server);
    EXPECT_NE(c.admin, d.admin);
    EXPECT_NE(c.workers, d.workers);
    EXPECT_NE(c.demo, d.demo);
    EXPECT_NE(c.policy, d.policy);
    EXPECT_NE(c.database, d.database);
    EXPECT_NE(c.state, d.state);
    EXPECT_NE(c.log, d.log);
}

TEST(FormatConfig, WritesEveryKnownKeyOnceUnderItsSection) {
    const std::string text = format_config(Config{});
    std::string section;
    std::vector<std::string> written;
    std::istringstream lines(text);
    const std::regex header(R"(^\[(\w+)\]$)");
    const std::regex assignment(R"(^(?:# )?(\w+) = .*# .+$)");  // every key has its comment
    for (std::string line; std::getline(lines, line);) {
        std::smatch match;
        if (std::regex_match(line, match, header)) section = match[1];
        if (std::regex_match(line, match, assignment))
            written.push_back(section + "." + match[1].str());
    }
    EXPECT_EQ(written, known_config_keys());
}

TEST(FormatConfig, UnsetThreadsMaxIsWrittenCommentedOutWithItsFallback) {
    Config c;
    c.workers.threads = 3;
    EXPECT_THAT(format_config(c), HasSubstr("\n# threads_max = 3 "));
    c.workers.threads_max = 6;
    EXPECT_THAT(format_config(c), HasSubstr("\nthreads_max = 6 "));
    EXPECT_THAT(format_config(c), Not(HasSubstr("# threads_max")));
}

TEST(FormatConfig, UsesTheSpellingsOfTheDocumentation) {
    const std::string text = format_config(Config{});
    EXPECT_THAT(text, HasSubstr("\ncommand = \"builtin:demo\" "));
    EXPECT_THAT(text, HasSubstr("\nmax_header_size = \"16KB\" "));
    EXPECT_THAT(text, HasSubstr("\ntarget_utilisation = 0.8 "));
    EXPECT_THAT(text, HasSubstr("\nenv = {} "));
    EXPECT_THAT(text, HasSubstr("\nmemory = \"\" "));
    EXPECT_THAT(text, HasSubstr("\nretention = \"30d\" "));
}

TEST(ConfigEquality, IgnoresTheSourceButNotASetting) {
    Config a;
    Config b;
    b.source = "/etc/tunerd/tunerd.toml";
    EXPECT_EQ(a, b);
    b.workers.env["X"] = "1";
    EXPECT_NE(a, b);
}

// ---- the example file and the reference -----------------------------------------------------

TEST(ExampleFile, EqualsTheBuiltInDefaults) {
    const auto loaded = parse_config(read_source_file("etc/tunerd.toml"), "etc/tunerd.toml");
    EXPECT_TRUE(loaded.ok()) << issues_text(loaded);
    EXPECT_EQ(loaded.config, Config{});
}

TEST(ExampleFile, SpellsOutEveryKeyWithAComment) {
    const std::string text = read_source_file("etc/tunerd.toml");
    for (const auto& dotted : known_config_keys()) {
        const auto dot = dotted.find('.');
        const std::string section = "[" + dotted.substr(0, dot) + "]";
        const std::string name = dotted.substr(dot + 1);
        const auto section_at = text.find("\n" + section + "\n");
        ASSERT_NE(section_at, std::string::npos) << section;
        const auto next_section = text.find("\n[", section_at + 1);
        const std::string body = text.substr(section_at, next_section - section_at);
        const std::regex line("\n(# )?" + name + " = [^\n]*# [^\n]+");
        EXPECT_TRUE(std::regex_search(body, line)) << dotted << " missing from etc/tunerd.toml";
    }
}

TEST(Documentation, DescribesEveryKey) {
    const std::string text = read_source_file("docs/configuration.md");
    for (const auto& dotted : known_config_keys()) {
        EXPECT_THAT(text, HasSubstr("`" + dotted + "`")) << dotted << " undocumented";
    }
}

TEST(Documentation, TomlExamplesAreValid) {
    const std::string text = read_source_file("docs/configuration.md");
    const std::regex block("```toml\n([^`]*)```");
    int examples = 0;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), block);
         it != std::sregex_iterator(); ++it) {
        const auto loaded = parse_config((*it)[1].str(), "docs example");
        EXPECT_TRUE(loaded.ok()) << (*it)[1].str() << issues_text(loaded);
        ++examples;
    }
    EXPECT_GE(examples, 2);
}

TEST(KnownKeys, ListsTheSketchAndTheModelExtras) {
    const auto keys = known_config_keys();
    EXPECT_EQ(keys.front(), "server.listen");
    EXPECT_EQ(keys.back(), "log.level");
    for (const char* key :
         {"policy.window", "policy.pss_every", "database.connect_timeout", "workers.threads_max",
          "demo.rss_mb", "state.retention", "server.trusted_proxies", "server.request_buffering",
          "server.spool_max_size", "compression.level", "compression.types"}) {
        EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key;
    }
    EXPECT_EQ(keys.size(), 82u);
}

// ---- hash -----------------------------------------------------------------------------------

TEST(ConfigHash, IsSixteenHexDigitsAndStable) {
    const auto hash = config_hash(Config{});
    EXPECT_TRUE(std::regex_match(hash, std::regex("[0-9a-f]{16}"))) << hash;
    EXPECT_EQ(config_hash(Config{}), hash);
    EXPECT_EQ(config_hash(parse_config(format_config(Config{})).config), hash);
}

TEST(ConfigHash, ChangesWithAnySettingButNotWithTheSource) {
    Config c;
    c.source = "somewhere.toml";
    EXPECT_EQ(config_hash(c), config_hash(Config{}));
    c.demo.cpu_ms = 6;
    EXPECT_NE(config_hash(c), config_hash(Config{}));
}

}  // namespace
}  // namespace tuner::config
