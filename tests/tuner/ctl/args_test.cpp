// tunerctl's command line: common and per-command options, both spellings of values, positional
// arguments, counts and --since, each with the error a person would need.
#include "tuner/ctl/args.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tuner/decision_log/timestamps.hpp"

namespace tuner::ctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Result<CtlOptions> parse(std::vector<std::string_view> args, const ArgSpec& spec) {
    return parse_args(Args(args), spec);
}

const ArgSpec kDecisions{.value_options = {"--since", "--limit", "--db"}, .admin = true};
const ArgSpec kTarget{.flag_options = {"--release"}, .max_positional = 1, .admin = true};

TEST(CtlArgs, NoArgumentsGiveTheDefaults) {
    auto parsed = parse({}, kDecisions);
    ASSERT_TRUE(parsed.ok());
    EXPECT_FALSE(parsed->json);
    EXPECT_FALSE(parsed->config_path);
    EXPECT_FALSE(parsed->admin_url);
    EXPECT_EQ(parsed->timeout, std::chrono::seconds(10));
    EXPECT_TRUE(parsed->values.empty());
}

TEST(CtlArgs, ReadsCommonOptionsInBothSpellings) {
    auto parsed = parse(
        {"--config", "/etc/x.toml", "--admin=http://127.0.0.1:1", "--json", "--timeout", "250ms"},
        kDecisions);
    ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
    EXPECT_EQ(parsed->config_path, "/etc/x.toml");
    EXPECT_EQ(parsed->admin_url, "http://127.0.0.1:1");
    EXPECT_TRUE(parsed->json);
    EXPECT_EQ(parsed->timeout, std::chrono::milliseconds(250));
}

TEST(CtlArgs, ReadsCommandValuesInBothSpellings) {
    auto parsed =
        parse({"--since", "2026-01-01T00:00:00Z", "--limit=5", "--db", "x.db"}, kDecisions);
    ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
    EXPECT_EQ(parsed->value("--since"), "2026-01-01T00:00:00Z");
    EXPECT_EQ(parsed->value("--limit"), "5");
    EXPECT_EQ(parsed->value("--db"), "x.db");
    EXPECT_FALSE(parsed->value("--pid"));
}

TEST(CtlArgs, UnknownOptionIsNamed) {
    auto parsed = parse({"--limit", "3", "--verbose"}, kDecisions);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.error().where, "--verbose");
    EXPECT_THAT(parsed.error().what, HasSubstr("unknown option"));
}

TEST(CtlArgs, AnotherCommandsOptionIsUnknown) {
    EXPECT_FALSE(parse({"--release"}, kDecisions).ok());
    EXPECT_FALSE(parse({"--since", "1"}, kTarget).ok());
}

TEST(CtlArgs, AdminOptionsOnlyForCommandsThatAskTheDaemon) {
    const ArgSpec local{.value_options = {"--pid"}};
    EXPECT_EQ(parse({"--admin", "127.0.0.1:1"}, local).error().where, "--admin");
    EXPECT_EQ(parse({"--timeout", "1s"}, local).error().where, "--timeout");
    EXPECT_TRUE(parse({"--config", "x.toml"}, local).ok());
}

TEST(CtlArgs, JsonRefusedWhereTheCommandHasNoJson) {
    const ArgSpec rollback{.flag_options = {"--postgres"}, .json = false};
    EXPECT_EQ(parse({"--postgres", "--json"}, rollback).error().where, "--json");
}

TEST(CtlArgs, MissingValueAtTheEndIsAnError) {
    auto parsed = parse({"--limit"}, kDecisions);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.error().where, "--limit");
    EXPECT_THAT(parsed.error().what, HasSubstr("needs a value"));
}

TEST(CtlArgs, EmptyValueIsAnError) {
    EXPECT_FALSE(parse({"--db="}, kDecisions).ok());
    EXPECT_FALSE(parse({"--config", ""}, kDecisions).ok());
}

TEST(CtlArgs, FlagWithAValueIsAnError) {
    EXPECT_THAT(parse({"--json=yes"}, kDecisions).error().what, HasSubstr("takes no value"));
}

TEST(CtlArgs, BadTimeoutQuotesTheText) {
    EXPECT_THAT(parse({"--timeout", "soon"}, kDecisions).error().what, HasSubstr("\"soon\""));
    EXPECT_FALSE(parse({"--timeout", "0"}, kDecisions).ok());
}

TEST(CtlArgs, PositionalArgumentsUpToTheCommandsCount) {
    auto parsed = parse({"4", "--json"}, kTarget);
    ASSERT_TRUE(parsed.ok());
    EXPECT_THAT(parsed->positional, ElementsAre("4"));
    EXPECT_THAT(parse({"4", "5"}, kTarget).error().what, HasSubstr("too many"));
    EXPECT_THAT(parse({"extra"}, kDecisions).error().where, "extra");
}

TEST(CtlArgs, FlagsAreRecorded) {
    auto parsed = parse({"--release"}, kTarget);
    ASSERT_TRUE(parsed.ok());
    EXPECT_TRUE(parsed->has("--release"));
    EXPECT_FALSE(parsed->has("--postgres"));
}

TEST(CtlArgs, ParseCountAcceptsWholeNumbersInBounds) {
    EXPECT_EQ(parse_count("12", "--limit").value(), 12u);
    EXPECT_EQ(parse_count("0", "N", 0, 10).value(), 0u);
    EXPECT_EQ(parse_count("10", "N", 0, 10).value(), 10u);
}

TEST(CtlArgs, ParseCountRejectsWithTheBoundsAndTheText) {
    for (const char* bad : {"", "-1", "1.5", "12x", "0", "10001", "ten"}) {
        auto parsed = parse_count(bad, "--limit", 1, 10000);
        ASSERT_FALSE(parsed.ok()) << bad;
        EXPECT_EQ(parsed.error().where, "--limit");
        EXPECT_THAT(parsed.error().what, HasSubstr("from 1 to 10000"));
        EXPECT_THAT(parsed.error().what, HasSubstr("\"" + std::string(bad) + "\""));
    }
}

TEST(CtlArgs, SinceTakesUnixSeconds) {
    auto t = parse_since_time("1795000000", "--since");
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count(),
              1795000000);
    auto half = parse_since_time("1795000000.5", "--since");
    ASSERT_TRUE(half.ok());
    EXPECT_EQ(
        std::chrono::duration_cast<std::chrono::milliseconds>(half->time_since_epoch()).count(),
        1795000000500);
}

TEST(CtlArgs, SinceTakesRfc3339WithOffset) {
    auto utc = parse_since_time("2026-11-23T15:04:05Z", "--since");
    auto offset = parse_since_time("2026-11-23T17:04:05+02:00", "--since");
    ASSERT_TRUE(utc.ok());
    ASSERT_TRUE(offset.ok());
    EXPECT_EQ(*utc, *offset);
    EXPECT_EQ(format_rfc3339_ms(*utc), "2026-11-23T15:04:05.000Z");
}

TEST(CtlArgs, SinceRejectsOtherTextWithExamples) {
    for (const char* bad : {"yesterday", "-5", "2026-13-01T00:00:00Z", ""}) {
        auto t = parse_since_time(bad, "--since");
        ASSERT_FALSE(t.ok()) << bad;
        EXPECT_EQ(t.error().where, "--since");
        EXPECT_THAT(t.error().what, HasSubstr("RFC 3339"));
    }
}

TEST(CtlArgs, SinceBeyondTheClocksEndIsRefusedNotWrapped) {
    EXPECT_THAT(parse_since_time("2999-01-01T00:00:00Z", "--since").error().what,
                HasSubstr("clock ends"));
    for (const char* far : {"99999999999", "1e300", "inf"}) {
        auto t = parse_since_time(far, "since");
        ASSERT_FALSE(t.ok()) << far;
        EXPECT_EQ(t.error().where, "since");
        EXPECT_THAT(t.error().what, HasSubstr("clock ends")) << far;
    }
    EXPECT_TRUE(parse_since_time("2261-12-31T23:59:59Z", "--since").ok());
}

}  // namespace
}  // namespace tuner::ctl
