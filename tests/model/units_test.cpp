// Sizes and durations as the config language spells them.
#include "model/units.hpp"

#include <gtest/gtest.h>

namespace tuner {
namespace {

TEST(ParseSize, AcceptsBinaryUnitsCaseInsensitively) {
    EXPECT_EQ(parse_size("512MB").value(), 512 * MiB);
    EXPECT_EQ(parse_size("512MiB").value(), 512 * MiB);
    EXPECT_EQ(parse_size("512mb").value(), 512 * MiB);
    EXPECT_EQ(parse_size("64KB").value(), 64 * KiB);
    EXPECT_EQ(parse_size("1GB").value(), GiB);
    EXPECT_EQ(parse_size("2TB").value(), 2 * TiB);
    EXPECT_EQ(parse_size("1.5GB").value(), GiB + GiB / 2);
    EXPECT_EQ(parse_size(" 16 KB ").value(), 16 * KiB);
    EXPECT_EQ(parse_size("4096").value(), 4096u);
    EXPECT_EQ(parse_size("4096B").value(), 4096u);
    EXPECT_EQ(parse_size("0").value(), 0u);
}

TEST(ParseSize, RejectsWhatIsNotASize) {
    for (const char* bad :
         {"", "MB", "12XB", "-5MB", "1.GB", "abc", "1.5", "99999999999999999999999"}) {
        auto r = parse_size(bad);
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_NE(r.error().what.find(bad), std::string::npos) << r.error().what;
    }
}

TEST(FormatSize, PrintsTheShortestExactSpelling) {
    EXPECT_EQ(format_size(0), "0");
    EXPECT_EQ(format_size(512 * MiB), "512MB");
    EXPECT_EQ(format_size(16 * KiB), "16KB");
    EXPECT_EQ(format_size(GiB + GiB / 2), "1536MB");
    EXPECT_EQ(format_size(1000), "1000B");
    for (const char* s : {"512MB", "16KB", "10MB", "150MB", "1GB"}) {
        EXPECT_EQ(format_size(parse_size(s).value()), s);
    }
}

TEST(ParseDuration, AcceptsUnitsAndSequences) {
    using namespace std::chrono_literals;
    EXPECT_EQ(parse_duration("500ms").value(), 500ms);
    EXPECT_EQ(parse_duration("30s").value(), 30s);
    EXPECT_EQ(parse_duration("5m").value(), 5min);
    EXPECT_EQ(parse_duration("5min").value(), 5min);
    EXPECT_EQ(parse_duration("2h").value(), 2h);
    EXPECT_EQ(parse_duration("30d").value(), std::chrono::hours(720));
    EXPECT_EQ(parse_duration("1h30m").value(), 90min);
    EXPECT_EQ(parse_duration("1.5s").value(), 1500ms);
    EXPECT_EQ(parse_duration("0").value(), 0ms);
}

TEST(ParseDuration, RejectsMissingOrUnknownUnits) {
    for (const char* bad : {"", "30", "30x", "s", "-1s", "1.s", "30 parsecs"}) {
        auto r = parse_duration(bad);
        EXPECT_FALSE(r.ok()) << bad;
    }
    EXPECT_NE(parse_duration("30").error().what.find("needs a unit"), std::string::npos);
}

TEST(FormatDuration, RoundTripsCanonicalForms) {
    for (const char* s : {"500ms", "30s", "75s", "5m", "2h", "30d", "1500ms"}) {
        EXPECT_EQ(format_duration(parse_duration(s).value()), s);
    }
    EXPECT_EQ(format_duration(std::chrono::milliseconds(90'000)), "90s");
}

}  // namespace
}  // namespace tuner
