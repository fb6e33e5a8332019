// PostgreSQL values compared in base units (the 5 % rule), and redaction of credentials.
#include "tuner/postgres/values.hpp"

#include <gtest/gtest.h>

namespace tuner::postgres {
namespace {

TEST(PgValue, BareNumbersAreInTheSettingsUnit) {
    EXPECT_EQ(parse_pg_value("16384", "8kB"), 16384.0 * 8192);  // shared_buffers 128MB
    EXPECT_EQ(parse_pg_value("4096", "kB"), 4096.0 * 1024);     // work_mem 4MB
    EXPECT_EQ(parse_pg_value("1024", "MB"), 1024.0 * 1024 * 1024);
    EXPECT_EQ(parse_pg_value("60", "s"), 60'000.0);
    EXPECT_EQ(parse_pg_value("0.9", ""), 0.9);
    EXPECT_EQ(parse_pg_value("200", ""), 200.0);
}

TEST(PgValue, UnitSuffixesOverrideTheSettingsUnit) {
    EXPECT_EQ(parse_pg_value("256MB", "8kB"), 256.0 * 1024 * 1024);
    EXPECT_EQ(parse_pg_value("7864kB", "8kB"), 7864.0 * 1024);
    EXPECT_EQ(parse_pg_value("1GB", "MB"), 1024.0 * 1024 * 1024);
    EXPECT_EQ(parse_pg_value("'256MB'", "8kB"), 256.0 * 1024 * 1024);
    EXPECT_EQ(parse_pg_value("1min", "ms"), 60'000.0);
    EXPECT_EQ(parse_pg_value(" 10 s ", "ms"), 10'000.0);
}

TEST(PgValue, RejectsWhatIsNotANumberOfTheRightKind) {
    EXPECT_FALSE(parse_pg_value("on", ""));
    EXPECT_FALSE(parse_pg_value("", "kB"));
    EXPECT_FALSE(parse_pg_value("10s", "kB"));   // a time for a memory setting
    EXPECT_FALSE(parse_pg_value("10MB", ""));    // a size for a unitless setting
    EXPECT_FALSE(parse_pg_value("10mb", "kB"));  // PostgreSQL's units are case-sensitive
    EXPECT_FALSE(parse_pg_value("10", "furlong"));
}

TEST(PgValue, ChangesOnlyWhenMoreThanFivePercentOff) {
    EXPECT_FALSE(differs_enough_to_change("768MB", "768MB", "8kB"));
    EXPECT_FALSE(differs_enough_to_change("760MB", "768MB", "8kB"));  // 1 % off
    EXPECT_FALSE(differs_enough_to_change("98304", "768MB", "8kB"));  // same, in pages
    EXPECT_TRUE(differs_enough_to_change("700MB", "768MB", "8kB"));   // 8.9 % off
    EXPECT_TRUE(differs_enough_to_change("128MB", "256MB", "8kB"));
    EXPECT_FALSE(differs_enough_to_change("1.1", "1.1", ""));
    EXPECT_TRUE(differs_enough_to_change("4", "1.1", ""));
    EXPECT_TRUE(differs_enough_to_change("0", "10", ""));
    EXPECT_FALSE(differs_enough_to_change("0", "0", ""));
}

TEST(PgValue, TextSettingsCompareCaseInsensitively) {
    EXPECT_FALSE(differs_enough_to_change("On", "on", ""));
    EXPECT_TRUE(differs_enough_to_change("try", "off", ""));
}

TEST(PgValue, SameValueAllowsPostgresRounding) {
    EXPECT_TRUE(same_pg_value("983", "7864kB", "8kB"));  // wal_buffers in pages
    EXPECT_TRUE(same_pg_value("256MB", "262144kB", "kB"));
    EXPECT_FALSE(same_pg_value("250MB", "256MB", "kB"));
}

TEST(Redaction, MasksKeyValuePasswords) {
    EXPECT_EQ(redact_secrets("host=db password=hunter2 user=app"), "host=db password=*** user=app");
    EXPECT_EQ(redact_secrets("password = 'a b\\'c' dbname=x"), "password = *** dbname=x");
    EXPECT_EQ(redact_secrets("PASSWORD=Secret"), "PASSWORD=***");
}

TEST(Redaction, MasksUriUserinfo) {
    EXPECT_EQ(redact_secrets("postgresql://app:hunter2@db.example:5432/app"),
              "postgresql://***@db.example:5432/app");
    EXPECT_EQ(redact_secrets("see postgres://u:p@h/d and postgres://h2/d"),
              "see postgres://***@h/d and postgres://h2/d");
    EXPECT_EQ(redact_secrets("postgresql://db/app?password=x&sslmode=require"),
              "postgresql://db/app?password=***&sslmode=require");
}

TEST(Redaction, LeavesLibpqMessagesThatHoldNoSecret) {
    const std::string m =
        "connection to server at \"127.0.0.1\", port 5433 failed: password authentication failed "
        "for user \"postgres\"";
    EXPECT_EQ(redact_secrets(m), m);
}

TEST(SettingName, AcceptsPostgresSettingNamesOnly) {
    for (const char* name :
         {"work_mem", "shared_buffers", "_x1", "auto_explain.log_min_duration", "MaxConnections"}) {
        EXPECT_TRUE(is_setting_name(name)) << name;
    }
    for (const char* name :
         {"", "work mem", "work_mem;", "work_mem = '1MB'; DROP TABLE t", "\"work_mem\"", "work'mem",
          "1work_mem", "a..b", ".a", "a.", "a-b", "work_mem--", "w\xc3\xa9rk_mem", "a\nb"}) {
        EXPECT_FALSE(is_setting_name(name)) << name;
    }
    EXPECT_TRUE(is_setting_name(std::string(63, 'a')));
    EXPECT_FALSE(is_setting_name(std::string(64, 'a')));
}

}  // namespace
}  // namespace tuner::postgres
