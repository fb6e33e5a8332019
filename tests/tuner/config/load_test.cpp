// Config parsing: defaults, sizes, durations, types, unknown keys, syntax errors, files, and the
// [workers] values with their own syntax (command, env, ports).
#include "tuner/config/load.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/tuner/config/test_support.hpp"

namespace tuner::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::issues_text;
using ::testing::Not;
using testing::single_issue;
using testing::valid_config;

const std::string kFixtures = std::string(TUNER_FIXTURES_DIR) + "/config/";

// ---- defaults -------------------------------------------------------------------------------

TEST(ConfigParse, EmptyTextGivesExactlyTheDefaults) {
    const auto loaded = parse_config("", "empty.toml");
    EXPECT_TRUE(loaded.ok()) << issues_text(loaded);
    EXPECT_EQ(loaded.config, Config{});
    EXPECT_EQ(loaded.config.source, "empty.toml");
}

TEST(ConfigParse, EmptySectionsAndCommentsGiveTheDefaults) {
    EXPECT_EQ(valid_config("# nothing set\n[server]\n[workers]\n\n[log] # still nothing\n"),
              Config{});
}

TEST(ConfigParse, SourceNameDefaultsToString) {
    EXPECT_EQ(parse_config("[log]\nlevel = 3\n").errors.at(0).file, "<string>");
}

TEST(ConfigParse, ReadsEveryKeyOfTheFullFixture) {
    const auto loaded = load_config_file(kFixtures + "full.toml");
    ASSERT_TRUE(loaded.ok()) << issues_text(loaded);
    const Config& c = loaded.config;
    EXPECT_EQ(c.source, kFixtures + "full.toml");
    EXPECT_EQ(c.server.listen, "0.0.0.0:8000");
    EXPECT_EQ(c.server.max_queue, 200u);
    EXPECT_EQ(c.server.queue_timeout, 2s);
    EXPECT_EQ(c.server.request_timeout, 45s);
    EXPECT_EQ(c.server.header_timeout, 5s);
    EXPECT_EQ(c.server.keepalive_timeout, 60s);
    EXPECT_EQ(c.server.max_header_size_bytes, 32 * KiB);
    EXPECT_EQ(c.server.max_body_size_bytes, MiB);
    EXPECT_EQ(c.server.shutdown_timeout, 20s);
    EXPECT_EQ(c.server.io_threads, 2u);
    EXPECT_EQ(c.admin.listen, "[::1]:9500");
    EXPECT_EQ(c.admin.token_file, "/etc/tunerd/admin.token");
    EXPECT_THAT(c.workers.command,
                ElementsAre("/usr/bin/python3", "-m", "gunicorn", "-w", "1", "--threads",
                            "{threads}", "-b", "unix:{socket}", "app:app"));
    EXPECT_EQ(c.workers.dir, "/srv/app");
    EXPECT_EQ(c.workers.env.at("GREETING"), "hello world");
    EXPECT_EQ(c.workers.env.at("FLASK_ENV"), "production");
    EXPECT_EQ(c.workers.ports, (PortRange{30000, 30099}));
    EXPECT_EQ(c.workers.mode, PoolMode::fixed);
    EXPECT_EQ(c.workers.count, 3u);
    EXPECT_EQ(c.workers.min, 2u);
    EXPECT_EQ(c.workers.max, 8u);
    EXPECT_EQ(c.workers.threads, 2u);
    EXPECT_EQ(c.workers.threads_max, 4u);
    EXPECT_EQ(c.workers.memory_per_worker_bytes, 150 * MiB);
    EXPECT_EQ(c.workers.max_requests, 1000u);
    EXPECT_EQ(c.workers.max_requests_jitter, 50u);
    EXPECT_EQ(c.workers.max_worker_rss_bytes, 300 * MiB);
    EXPECT_EQ(c.workers.health_path, "/healthz");
    EXPECT_EQ(c.workers.startup_timeout, 60s);
    EXPECT_EQ(c.workers.drain_timeout, 15s);
    EXPECT_EQ(c.workers.kill_timeout, 5s);
    EXPECT_EQ(c.demo.cpu_ms, 10u);
    EXPECT_EQ(c.demo.io_ms, 20u);
    EXPECT_EQ(c.demo.rss_mb, 40u);
    EXPECT_EQ(c.policy.interval, 500ms);
    EXPECT_EQ(c.policy.window, 5s);
    EXPECT_EQ(c.policy.os_reserve_bytes, 256 * MiB);
    EXPECT_DOUBLE_EQ(c.policy.target_utilisation, 0.7);
    EXPECT_EQ(c.policy.scale_down_cooldown, 60s);
    EXPECT_EQ(c.policy.pss_every, 5u);
    EXPECT_TRUE(c.policy.dry_run);
    EXPECT_EQ(c.database.url_file, "/etc/tunerd/app-db.url");
    EXPECT_EQ(c.database.admin_url_file, "/etc/tunerd/admin-db.url");
    EXPECT_EQ(c.database.postgres, PostgresMode::apply);
    EXPECT_EQ(c.database.location, DatabaseLocation::remote);
    EXPECT_EQ(c.database.memory_bytes, 4 * GiB);
    EXPECT_DOUBLE_EQ(c.database.memory_share, 0.4);
    EXPECT_EQ(c.database.storage, Storage::hdd);
    EXPECT_EQ(c.database.connect_timeout, 3s);
    EXPECT_EQ(c.state.dir, "/var/lib/tunerd-test");
    EXPECT_EQ(c.state.retention, std::chrono::hours(24 * 7));
    EXPECT_EQ(c.log.level, "debug");
}

// ---- sizes ----------------------------------------------------------------------------------

TEST(ConfigSizes, AcceptsEveryUnitSpelling) {
    const std::pair<const char*, std::uint64_t> cases[] = {
        {"\"512MB\"", 512 * MiB},
        {"\"512MiB\"", 512 * MiB},
        {"\"512mb\"", 512 * MiB},
        {"\"512M\"", 512 * MiB},
        {"\"64KB\"", 64 * KiB},
        {"\"64KiB\"", 64 * KiB},
        {"\"1GB\"", GiB},
        {"\"1GiB\"", GiB},
        {"\"1.5GB\"", GiB + GiB / 2},
        {"\"2TB\"", 2 * TiB},
        {"\"4096B\"", 4096},
        {"\"4096\"", 4096},
        {"\"0\"", 0},
        {"\" 16 KB \"", 16 * KiB},
    };
    for (const auto& [text, bytes] : cases) {
        const auto config = valid_config(std::string("[workers]\nmax_worker_rss = ") + text);
        EXPECT_EQ(config.workers.max_worker_rss_bytes, bytes) << text;
    }
}

TEST(ConfigSizes, BareIntegerIsAByteCount) {
    EXPECT_EQ(valid_config("[server]\nmax_body_size = 65536\n").server.max_body_size_bytes,
              64 * KiB);
    EXPECT_EQ(valid_config("[policy]\nos_reserve = 0\n").policy.os_reserve_bytes, 0u);
}

TEST(ConfigSizes, UnknownUnitNamesKeyLineAndValue) {
    const auto issue =
        single_issue("[server]\nlisten = \"127.0.0.1:0\"\nmax_body_size = \"12XB\"\n");
    EXPECT_EQ(issue.key, "server.max_body_size");
    EXPECT_EQ(issue.line, 3u);
    EXPECT_THAT(issue.message, HasSubstr("\"12XB\""));
    EXPECT_THAT(issue.message, HasSubstr("MB"));  // says which units exist
}

TEST(ConfigSizes, RejectsWhatIsNotASize) {
    for (const char* bad : {"\"abc\"", "\"MB\"", "\"-5MB\"", "\"1.5\"", "\"\""}) {
        const auto issue = single_issue(std::string("[policy]\nos_reserve = ") + bad);
        EXPECT_EQ(issue.key, "policy.os_reserve") << bad;
        EXPECT_EQ(issue.line, 2u) << bad;
    }
}

TEST(ConfigSizes, RejectsNegativeByteCount) {
    const auto issue = single_issue("[server]\nmax_body_size = -1\n");
    EXPECT_EQ(issue.key, "server.max_body_size");
    EXPECT_THAT(issue.message, HasSubstr("negative"));
}

TEST(ConfigSizes, RejectsOtherTypesSayingWhatIsExpected) {
    const auto issue = single_issue("[workers]\nmemory_per_worker = true\n");
    EXPECT_EQ(issue.key, "workers.memory_per_worker");
    EXPECT_THAT(issue.message, HasSubstr("expected a size like \"512MB\""));
    EXPECT_THAT(issue.message, HasSubstr("got boolean true"));
}

// ---- durations ------------------------------------------------------------------------------

TEST(ConfigDurations, AcceptsEveryUnit) {
    const std::pair<const char*, Duration> cases[] = {
        {"\"500ms\"", 500ms},
        {"\"30s\"", 30s},
        {"\"30sec\"", 30s},
        {"\"5m\"", std::chrono::minutes(5)},
        {"\"5min\"", std::chrono::minutes(5)},
        {"\"2h\"", std::chrono::hours(2)},
        {"\"1h30m\"", std::chrono::minutes(90)},
        {"\"30d\"", std::chrono::hours(24 * 30)},
        {"\"1.5s\"", 1500ms},
    };
    for (const auto& [text, expected] : cases) {
        const auto config = valid_config(std::string("[state]\nretention = ") + text);
        EXPECT_EQ(config.state.retention, expected) << text;
    }
}

TEST(ConfigDurations, ZeroIsAcceptedWhereTheKeyAllowsIt) {
    EXPECT_EQ(valid_config("[policy]\nscale_down_cooldown = \"0\"\n").policy.scale_down_cooldown,
              Duration{0});
}

TEST(ConfigDurations, BareIntegerAsksForAUnit) {
    const auto issue = single_issue("[server]\nqueue_timeout = 30\n");
    EXPECT_EQ(issue.key, "server.queue_timeout");
    EXPECT_EQ(issue.line, 2u);
    EXPECT_THAT(issue.message,
                HasSubstr("expected a duration string like \"30s\", got integer 30"));
    EXPECT_THAT(issue.message, HasSubstr("add a unit"));
    EXPECT_THAT(issue.message, HasSubstr("\"30s\""));
}

TEST(ConfigDurations, RejectsUnknownUnitAndMissingUnit) {
    EXPECT_THAT(single_issue("[server]\nrequest_timeout = \"30x\"\n").message,
                HasSubstr("unknown duration unit"));
    EXPECT_THAT(single_issue("[server]\nrequest_timeout = \"30\"\n").message,
                HasSubstr("needs a unit"));
    EXPECT_THAT(single_issue("[server]\nrequest_timeout = 1.5\n").message,
                HasSubstr("got float 1.5"));
}

// ---- other types ----------------------------------------------------------------------------

TEST(ConfigTypes, WrongTypeSaysWhatWasExpectedAndWhatCame) {
    const auto issue = single_issue("[server]\nlisten = 8080\n");
    EXPECT_EQ(issue.key, "server.listen");
    EXPECT_EQ(issue.line, 2u);
    EXPECT_EQ(issue.message, "expected a string, got integer 8080");
}

TEST(ConfigTypes, WholeNumbersRefuseFloatsNegativesAndOverflow) {
    EXPECT_THAT(single_issue("[workers]\nmax = 2.5\n").message,
                HasSubstr("expected a whole number, got float 2.5"));
    EXPECT_THAT(single_issue("[demo]\ncpu_ms = -3\n").message, HasSubstr("must not be negative"));
    EXPECT_THAT(single_issue("[demo]\nrss_mb = 5000000000\n").message, HasSubstr("too large"));
    EXPECT_THAT(single_issue("[server]\nmax_queue = \"10\"\n").message,
                HasSubstr("got string \"10\""));
}

TEST(ConfigServer, NetworkSetTakeAddressesAndNetworks) {
    const auto c =
        valid_config("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\", \"192.0.2.7\"]\n");
    EXPECT_THAT(c.server.trusted_proxies, ElementsAre("10.0.0.0/8", "::1", "192.0.2.7"));
    EXPECT_TRUE(valid_config("[server]\ntrusted_proxies = []\n").server.trusted_proxies.empty());
}

TEST(ConfigServer, BadTrustedProxyNamesTheKeyTheLineAndTheEntry) {
    const auto issue =
        single_issue("[server]\ntrusted_proxies = [\n  \"10.0.0.0/8\",\n  \"proxy.local\",\n]\n");
    EXPECT_EQ(issue.key, "server.trusted_proxies");
    EXPECT_EQ(issue.line, 4u);
    EXPECT_THAT(issue.message,
                HasSubstr("element 2: not an IP address or network: \"proxy.local\""));
    EXPECT_THAT(single_issue("[server]\ntrusted_proxies = [\"10.0.0.0/40\"]\n").message,
                HasSubstr("bad prefix length"));
    EXPECT_THAT(single_issue("[server]\ntrusted_proxies = \"10.0.0.1\"\n").message,
                HasSubstr("expected an array"));
}

TEST(ConfigCompression, DefaultsAndValidValues) {
    const CompressionConfig defaults;
    EXPECT_TRUE(defaults.enabled);
    EXPECT_EQ(defaults.min_size_bytes, 1024u);
    EXPECT_EQ(defaults.level, 6u);
    EXPECT_EQ(defaults.brotli_level, 4u);
    const auto c = valid_config(
        "[compression]\nenabled = false\nmin_size = \"4KB\"\nlevel = 1\nbrotli_level = 0\n"
        "types = [\"text/*\", \"application/*+json\", \"image/svg+xml\"]\n");
    EXPECT_FALSE(c.server.compression.enabled);
    EXPECT_EQ(c.server.compression.min_size_bytes, 4096u);
    EXPECT_EQ(c.server.compression.level, 1u);
    EXPECT_EQ(c.server.compression.brotli_level, 0u);
    EXPECT_THAT(c.server.compression.types,
                ElementsAre("text/*", "application/*+json", "image/svg+xml"));
    EXPECT_TRUE(valid_config("[compression]\ntypes = []\n").server.compression.types.empty());
}

TEST(ConfigCompression, OutOfRangeLevelsAndBadTypesNameTheKeyAndLine) {
    auto issue = single_issue("[compression]\nlevel = 10\n");
    EXPECT_EQ(issue.key, "compression.level");
    EXPECT_EQ(issue.line, 2u);
    EXPECT_THAT(issue.message, HasSubstr("between 1 and 9"));
    EXPECT_THAT(single_issue("[compression]\nlevel = 0\n").message, HasSubstr("between 1 and 9"));
    EXPECT_THAT(single_issue("[compression]\nbrotli_level = 12\n").message,
                HasSubstr("between 0 and 11"));
    issue = single_issue("[compression]\ntypes = [\n  \"text/*\",\n  \"json\",\n]\n");
    EXPECT_EQ(issue.key, "compression.types");
    EXPECT_EQ(issue.line, 4u);
    EXPECT_THAT(issue.message, HasSubstr("element 2: expected a media type"));
    EXPECT_THAT(single_issue("[compression]\ntypes = [\"*/*\"]\n").message,
                HasSubstr("the type before"));
    EXPECT_THAT(single_issue("[compression]\ntypes = \"text/*\"\n").message,
                HasSubstr("expected an array of media types"));
    EXPECT_THAT(single_issue("[compression]\nenabled = \"yes\"\n").key, "compression.enabled");
}

TEST(ConfigServer, ConnectionAndBufferLimitsHaveRanges) {
    EXPECT_THAT(single_issue("[server]\nmax_connections = 0\n").message, HasSubstr("between"));
    EXPECT_THAT(single_issue("[server]\nbody_buffer_size = \"64MB\"\n").key,
                "server.body_buffer_size");
    const auto c = valid_config(
        "[server]\nrequest_buffering = false\nbody_buffer_size = \"1MB\"\nmin_body_rate = 0\n"
        "max_connections = 5000\nmax_connections_per_address = 20\n");
    EXPECT_FALSE(c.server.request_buffering);
    EXPECT_EQ(c.server.body_buffer_size_bytes, 1u << 20);
    EXPECT_EQ(c.server.min_body_rate_bytes, 0u);
    EXPECT_EQ(c.server.max_connections, 5000u);
    EXPECT_EQ(c.server.max_connections_per_address, 20u);
}

TEST(ConfigCache, OffByDefaultAndEveryKeyReads) {
    EXPECT_EQ(Config{}.server.cache.size_bytes, 0u);
    const auto c = valid_config(
        "[cache]\nsize = \"64MB\"\nmax_entry_size = \"256KB\"\nmax_entries = 500\n"
        "default_ttl = \"5s\"\npaths = [\"/news/\", \"/api\"]\nstale_if_error = \"0\"\n");
    EXPECT_EQ(c.server.cache.size_bytes, 64u << 20);
    EXPECT_EQ(c.server.cache.max_entry_size_bytes, 256u << 10);
    EXPECT_EQ(c.server.cache.max_entries, 500u);
    EXPECT_EQ(c.server.cache.default_ttl, 5s);
    EXPECT_THAT(c.server.cache.paths, ElementsAre("/news/", "/api"));
    EXPECT_EQ(c.server.cache.stale_if_error, Duration{0});
}

TEST(ConfigCache, BadValuesNameTheKeyAndTheLine) {
    auto issue = single_issue("[cache]\nsize = \"1KB\"\n");
    EXPECT_EQ(issue.key, "cache.size");
    EXPECT_EQ(issue.line, 2u);
    EXPECT_THAT(issue.message, HasSubstr("must be 0 (off) or between"));
    EXPECT_EQ(single_issue("[cache]\nsize = \"lots\"\n").key, "cache.size");
    EXPECT_EQ(single_issue("[cache]\nmax_entry_size = \"10B\"\n").key, "cache.max_entry_size");
    EXPECT_EQ(single_issue("[cache]\nmax_entries = 0\n").key, "cache.max_entries");
    EXPECT_EQ(single_issue("[cache]\ndefault_ttl = 5\n").key, "cache.default_ttl");
    issue = single_issue("[cache]\npaths = [\n  \"/ok\",\n  \"news\",\n]\n");
    EXPECT_EQ(issue.key, "cache.paths");
    EXPECT_EQ(issue.line, 4u);
    EXPECT_THAT(issue.message, HasSubstr("element 2: expected a path prefix starting with \"/\""));
    EXPECT_THAT(single_issue("[cache]\npaths = \"/news\"\n").message,
                HasSubstr("expected an array"));
    EXPECT_EQ(single_issue("[cache]\nstale_if_error = \"-1s\"\n").key, "cache.stale_if_error");
    EXPECT_EQ(single_issue("[cache]\nttl = \"1s\"\n").key, "cache.ttl");
}

TEST(ConfigTypes, FractionAcceptsAnInteger) {
    EXPECT_DOUBLE_EQ(valid_config("[policy]\ntarget_utilisation = 1\n").policy.target_utilisation,
                     1.0);
}

TEST(ConfigTypes, BooleanMustBeTrueOrFalse) {
    const auto issue = single_issue("[policy]\ndry_run = \"yes\"\n");
    EXPECT_EQ(issue.key, "policy.dry_run");
    EXPECT_THAT(issue.message, HasSubstr("expected true or false"));
}

TEST(ConfigTypes, SectionThatIsNotATableIsAnError) {
    const auto issue = single_issue("server = \"127.0.0.1:8080\"\n");
    EXPECT_EQ(issue.key, "server");
    EXPECT_THAT(issue.message, HasSubstr("expected a table [server]"));
}

// ---- unknown keys and tables ----------------------------------------------------------------

TEST(ConfigUnknown, KeyIsNamedWithLineAndClosestKnownKey) {
    const auto issue = single_issue("[workers]\nmin = 1\nmax_request = 500\n");
    EXPECT_EQ(issue.key, "workers.max_request");
    EXPECT_EQ(issue.line, 3u);
    EXPECT_EQ(issue.column, 1u);
    EXPECT_EQ(issue.message,
              "unknown key \"max_request\" in [workers]; did you mean workers.max_requests?");
}

TEST(ConfigUnknown, TranspositionCountsAsOneEdit) {
    EXPECT_THAT(single_issue("[workers]\nmax_reqeusts = 5\n").message,
                HasSubstr("did you mean workers.max_requests?"));
}

TEST(ConfigUnknown, NoSuggestionWhenNothingIsClose) {
    const auto issue = single_issue("[workers]\nfrobnicate = 1\n");
    EXPECT_EQ(issue.key, "workers.frobnicate");
    EXPECT_THAT(issue.message, Not(HasSubstr("did you mean")));
}

TEST(ConfigUnknown, KeyInTheWrongSectionPointsToItsSection) {
    EXPECT_THAT(single_issue("[server]\nlevel = \"info\"\n").message,
                HasSubstr("did you mean compression.level or log.level?"));
    EXPECT_THAT(single_issue("[server]\nretention = \"30d\"\n").message,
                HasSubstr("did you mean state.retention?"));
}

TEST(ConfigUnknown, KeyOutsideAnySectionIsNamed) {
    const auto issue = single_issue("dry_run = true\n");
    EXPECT_EQ(issue.key, "dry_run");
    EXPECT_EQ(issue.line, 1u);
    EXPECT_THAT(issue.message, HasSubstr("outside any [section]"));
    EXPECT_THAT(issue.message, HasSubstr("did you mean policy.dry_run?"));
}

TEST(ConfigUnknown, TableIsNamedWithItsLineAndClosestTable) {
    const auto issue = single_issue("[log]\nlevel = \"info\"\n\n[worker]\nmin = 1\n");
    EXPECT_EQ(issue.key, "worker");
    EXPECT_EQ(issue.line, 4u);
    EXPECT_EQ(issue.message, "unknown table [worker]; did you mean [workers]?");
}

TEST(ConfigUnknown, NestedTableInASectionIsAnUnknownKey) {
    const auto issue = single_issue("[server.tls]\ncert = \"x\"\n");
    EXPECT_EQ(issue.key, "server.tls");
    EXPECT_EQ(issue.line, 1u);
}

// ---- enums ----------------------------------------------------------------------------------

TEST(ConfigEnums, BadValueNamesTheAllowedValues) {
    EXPECT_EQ(single_issue("[workers]\nmode = \"auto\"\n").message,
              "unknown value \"auto\" (allowed: fixed, formula, adaptive)");
    EXPECT_THAT(single_issue("[database]\npostgres = \"on\"\n").message,
                HasSubstr("(allowed: off, recommend, apply)"));
    EXPECT_THAT(single_issue("[database]\nlocation = \"cloud\"\n").message,
                HasSubstr("(allowed: local, remote)"));
    EXPECT_THAT(single_issue("[database]\nstorage = \"nvme\"\n").message,
                HasSubstr("(allowed: ssd, hdd)"));
    EXPECT_THAT(single_issue("[log]\nlevel = \"verbose\"\n").message,
                HasSubstr("(allowed: trace, debug, info, warn, error, critical, off)"));
}

TEST(ConfigEnums, AcceptsEveryAllowedValue) {
    EXPECT_EQ(valid_config("[workers]\nmode = \"formula\"\n").workers.mode, PoolMode::formula);
    EXPECT_EQ(valid_config("[database]\npostgres = \"recommend\"\n").database.postgres,
              PostgresMode::recommend);
    EXPECT_EQ(valid_config("[database]\nstorage = \"hdd\"\n").database.storage, Storage::hdd);
    for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
        EXPECT_EQ(valid_config(std::string("[log]\nlevel = \"") + level + "\"").log.level, level);
    }
}

TEST(ConfigEnums, AreCaseSensitive) {
    EXPECT_EQ(single_issue("[workers]\nmode = \"Fixed\"\n").key, "workers.mode");
}

// ---- syntax errors and collecting every error -----------------------------------------------

TEST(ConfigSyntax, ErrorCarriesLineAndColumnAndNoKey) {
    const auto issue = single_issue("[server]\nlisten = \"127.0.0.1:8080\"\nmax_queue = = 5\n");
    EXPECT_EQ(issue.key, "");
    EXPECT_EQ(issue.line, 3u);
    EXPECT_GT(issue.column, 0u);
    EXPECT_THAT(issue.message, HasSubstr("TOML syntax error"));
}

TEST(ConfigSyntax, DuplicateKeyIsReportedAtItsLine) {
    const auto issue = single_issue("[workers]\nmin = 1\nmin = 2\n");
    EXPECT_EQ(issue.line, 3u);
    EXPECT_THAT(issue.message, HasSubstr("TOML syntax error"));
}

TEST(ConfigSyntax, UnterminatedStringIsReported) {
    EXPECT_EQ(single_issue("[log]\nlevel = \"info\n").line, 2u);
}

TEST(ConfigErrors, CollectsEveryErrorInOnePassInFileOrder) {
    // Sections out of alphabetical order, two errors in one section: all reported, by line.
    const auto loaded = parse_config(
        "[workers]\n"
        "mode = \"auto\"\n"  // 2: bad enum
        "min = 0\n"          // 3: below 1
        "[server]\n"
        "listen = \"127.0.0.1\"\n"  // 5: missing port
        "queue_timeout = 30\n"      // 6: duration without unit
        "[logging]\n"               // 7: unknown table
        "level = \"info\"\n"
        "[admin]\n"
        "tokenfile = \"x\"\n",  // 10: unknown key
        "many.toml");
    ASSERT_EQ(loaded.errors.size(), 6u) << issues_text(loaded);
    std::vector<std::size_t> lines;
    std::vector<std::string> keys;
    for (const auto& issue : loaded.errors) {
        lines.push_back(issue.line);
        keys.push_back(issue.key);
        EXPECT_EQ(issue.file, "many.toml");
    }
    EXPECT_THAT(lines, ElementsAre(2, 3, 5, 6, 7, 10));
    EXPECT_THAT(keys, ElementsAre("workers.mode", "workers.min", "server.listen",
                                  "server.queue_timeout", "logging", "admin.tokenfile"));
}

TEST(ConfigErrors, ValuesThatParsedStillArriveBesideErrors) {
    const auto loaded = parse_config("[workers]\nmax = 8\nmin = \"two\"\n");
    EXPECT_EQ(loaded.errors.size(), 1u) << issues_text(loaded);
    EXPECT_EQ(loaded.config.workers.max, 8u);
    EXPECT_EQ(loaded.config.workers.min, 1u);  // the default stays
}

// ---- ConfigIssue ----------------------------------------------------------------------------

TEST(ConfigIssueText, ReadsFileLineColumnKeyMessage) {
    EXPECT_EQ((ConfigIssue{"etc/tunerd.toml", "workers.max_requests", 12, 3, "bad"}).to_string(),
              "etc/tunerd.toml:12:3: workers.max_requests: bad");
    EXPECT_EQ((ConfigIssue{"a.toml", "", 4, 7, "TOML syntax error: x"}).to_string(),
              "a.toml:4:7: TOML syntax error: x");
    EXPECT_EQ((ConfigIssue{"/nope.toml", "", 0, 0, "cannot open config file"}).to_string(),
              "/nope.toml: cannot open config file");
}

// ---- files ----------------------------------------------------------------------------------

TEST(ConfigFile, UnknownKeyFixtureNamesFileKeyAndLine) {
    const auto path = kFixtures + "unknown-key.toml";
    const auto loaded = load_config_file(path);
    ASSERT_EQ(loaded.errors.size(), 1u) << issues_text(loaded);
    EXPECT_EQ(loaded.errors[0].to_string(),
              path +
                  ":5:1: workers.max_request: unknown key \"max_request\" in [workers]; did "
                  "you mean workers.max_requests?");
}

TEST(ConfigFile, BadSizeFixtureNamesKeyAndLine) {
    const auto loaded = load_config_file(kFixtures + "bad-size.toml");
    ASSERT_EQ(loaded.errors.size(), 1u) << issues_text(loaded);
    EXPECT_EQ(loaded.errors[0].key, "server.max_body_size");
    EXPECT_EQ(loaded.errors[0].line, 4u);
}

TEST(ConfigFile, ManyErrorsFixtureReportsAllFive) {
    const auto loaded = load_config_file(kFixtures + "many-errors.toml");
    ASSERT_EQ(loaded.errors.size(), 5u) << issues_text(loaded);
    std::vector<std::size_t> lines;
    for (const auto& issue : loaded.errors) lines.push_back(issue.line);
    EXPECT_THAT(lines, ElementsAre(3, 4, 7, 8, 10));
}

TEST(ConfigFile, SyntaxErrorFixtureGivesOneIssueWithLine) {
    const auto loaded = load_config_file(kFixtures + "syntax-error.toml");
    ASSERT_EQ(loaded.errors.size(), 1u) << issues_text(loaded);
    EXPECT_EQ(loaded.errors[0].line, 3u);
    EXPECT_EQ(loaded.errors[0].key, "");
}

TEST(ConfigFile, MissingFileIsOneErrorNamingThePath) {
    const std::string path = kFixtures + "does-not-exist.toml";
    const auto loaded = load_config_file(path);
    ASSERT_EQ(loaded.errors.size(), 1u);
    EXPECT_EQ(loaded.errors[0].file, path);
    EXPECT_EQ(loaded.errors[0].line, 0u);
    EXPECT_THAT(loaded.errors[0].to_string(), HasSubstr(path + ": cannot open config file"));
    EXPECT_THAT(loaded.errors[0].message, HasSubstr("No such file"));
}

TEST(ConfigFile, DirectoryIsNotAConfigFile) {
    const auto loaded = load_config_file(kFixtures);
    ASSERT_EQ(loaded.errors.size(), 1u);
    EXPECT_THAT(loaded.errors[0].message, HasSubstr("directory"));
}

// ---- workers.command ------------------------------------------------------------------------

TEST(ConfigCommand, BuiltinDemoIsOneElement) {
    const auto config = valid_config("[workers]\ncommand = \"builtin:demo\"\n");
    EXPECT_THAT(config.workers.command, ElementsAre("builtin:demo"));
    EXPECT_TRUE(config.workers.is_builtin_demo());
}

TEST(ConfigCommand, StringIsSplitOnWhitespace) {
    const auto config =
        valid_config("[workers]\ncommand = \"  /usr/bin/app --listen  unix:{socket}\\t-v \"\n");
    EXPECT_THAT(config.workers.command,
                ElementsAre("/usr/bin/app", "--listen", "unix:{socket}", "-v"));
}

TEST(ConfigCommand, ArrayKeepsArgumentsWithSpaces) {
    const auto config = valid_config(
        "[workers]\ncommand = [\"/usr/bin/app\", \"--title\", \"my app\", \"--port={port}\"]\n");
    EXPECT_THAT(config.workers.command,
                ElementsAre("/usr/bin/app", "--title", "my app", "--port={port}"));
}

TEST(ConfigCommand, AcceptsEveryKnownPlaceholderAndLeavesOtherBracesAlone) {
    valid_config(
        "[workers]\ncommand = [\"app\", \"{socket}\", \"{port}\", \"{threads}\", "
        "\"w{worker_id}\", '{\"json\": 1}', \"{}\"]\n");
}

TEST(ConfigCommand, UnknownPlaceholderIsNamedWithTheKnownOnes) {
    const auto issue = single_issue("[workers]\ncommand = [\"app\", \"unix:{sockt}\"]\n");
    EXPECT_EQ(issue.key, "workers.command");
    EXPECT_EQ(issue.line, 2u);
    EXPECT_THAT(issue.message, HasSubstr("unknown placeholder {sockt} in \"unix:{sockt}\""));
    EXPECT_THAT(issue.message, HasSubstr("{socket}, {port}, {threads}, {worker_id}"));
}

TEST(ConfigCommand, EmptyCommandsAreRefused) {
    EXPECT_THAT(single_issue("[workers]\ncommand = \"  \"\n").message, HasSubstr("empty command"));
    EXPECT_THAT(single_issue("[workers]\ncommand = []\n").message, HasSubstr("empty command"));
    EXPECT_THAT(single_issue("[workers]\ncommand = [\"\", \"x\"]\n").message,
                HasSubstr("the program (the first element) is empty"));
}

TEST(ConfigCommand, NonStringElementIsNamedAtItsPosition) {
    const auto issue = single_issue("[workers]\ncommand = [\"app\",\n  8080]\n");
    EXPECT_EQ(issue.key, "workers.command");
    EXPECT_EQ(issue.line, 3u);
    EXPECT_THAT(issue.message, HasSubstr("element 2: expected a string, got integer 8080"));
}

TEST(ConfigCommand, OtherTypesAreRefused) {
    EXPECT_THAT(single_issue("[workers]\ncommand = 5\n").message,
                HasSubstr("an array of strings, got integer 5"));
}

// ---- workers.env ----------------------------------------------------------------------------

TEST(ConfigEnv, InlineTableAndSubTableBothWork) {
    EXPECT_EQ(valid_config("[workers]\nenv = { A = \"1\", B = \"two words\" }\n").workers.env,
              (std::map<std::string, std::string>{{"A", "1"}, {"B", "two words"}}));
    EXPECT_EQ(
        valid_config("[workers]\nmin = 1\n[workers.env]\nDJANGO_SETTINGS = \"prod\"\n").workers.env,
        (std::map<std::string, std::string>{{"DJANGO_SETTINGS", "prod"}}));
}

TEST(ConfigEnv, NonStringValueIsNamedByItsVariable) {
    const auto issue = single_issue("[workers.env]\nA = \"ok\"\nWORKERS = 4\n");
    EXPECT_EQ(issue.key, "workers.env.WORKERS");
    EXPECT_EQ(issue.line, 3u);
    EXPECT_THAT(issue.message, HasSubstr("expected a string, got integer 4"));
}

TEST(ConfigEnv, NameWithEqualsSignIsRefused) {
    EXPECT_THAT(single_issue("[workers]\nenv = { \"A=B\" = \"x\" }\n").message,
                HasSubstr("not an environment variable name: \"A=B\""));
}

TEST(ConfigEnv, MustBeATable) {
    EXPECT_THAT(single_issue("[workers]\nenv = [\"A=1\"]\n").message,
                HasSubstr("expected a table of strings"));
}

// ---- workers.ports --------------------------------------------------------------------------

TEST(ConfigPorts, RangeAndSinglePort) {
    EXPECT_EQ(valid_config("[workers]\nports = \"1024-2047\"\n").workers.ports,
              (PortRange{1024, 2047}));
    EXPECT_EQ(valid_config("[workers]\nports = \"9000\"\n").workers.ports, (PortRange{9000, 9000}));
}

TEST(ConfigPorts, RejectsReversedGarbledAndOutOfRange) {
    EXPECT_THAT(single_issue("[workers]\nports = \"3000-2000\"\n").message,
                HasSubstr("the first port 3000 is above the last 2000"));
    for (const char* bad : {"\"abc\"", "\"0-10\"", "\"1000-70000\"", "\"1000-\"", "\"-5\""}) {
        EXPECT_THAT(single_issue(std::string("[workers]\nports = ") + bad).message,
                    HasSubstr("not a port range"))
            << bad;
    }
    EXPECT_THAT(single_issue("[workers]\nports = 20000\n").message,
                HasSubstr("expected a port range like \"20000-20999\", got integer 20000"));
}

}  // namespace
}  // namespace tuner::config
