// The shared parsers of kernel text formats: numbers, "key value", "Key: N kB", CPU lists.
#include "probes/text_parse.hpp"

#include <gtest/gtest.h>

namespace tuner::probes {
namespace {

TEST(TextParse, ParsesNumberWithTrailingNewline) {
    auto n = parse_single_u64("536870912\n", "f");
    ASSERT_TRUE(n.ok()) << n.error().to_string();
    EXPECT_EQ(*n, 536870912u);
}

TEST(TextParse, RejectsEmptyNumberFileNamingIt) {
    auto n = parse_single_u64("\n", "/x/memory.current");
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error().where, "/x/memory.current");
    EXPECT_NE(n.error().what.find("empty"), std::string::npos);
}

TEST(TextParse, QuotesMalformedNumber) {
    auto n = parse_single_u64("12abc\n", "f");
    ASSERT_FALSE(n.ok());
    EXPECT_NE(n.error().what.find("\"12abc\""), std::string::npos) << n.error().what;
}

TEST(TextParse, ReportsNumberBeyondSixtyFourBits) {
    auto n = parse_single_u64("18446744073709551616", "f");
    ASSERT_FALSE(n.ok());
    EXPECT_NE(n.error().what.find("out of range"), std::string::npos) << n.error().what;
}

TEST(TextParse, AcceptsLargestSixtyFourBitValue) {
    auto n = parse_single_u64("18446744073709551615", "f");
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, UINT64_MAX);
}

TEST(TextParse, FindsKeyedValueOnlyOnWholeKey) {
    const std::string content = "total_inactive_file 7\ninactive_file 5\n";
    auto v = find_keyed_u64(content, "inactive_file", "f");
    ASSERT_TRUE(v.ok());
    ASSERT_TRUE(v->has_value());
    EXPECT_EQ(**v, 5u);
}

TEST(TextParse, MissingKeyIsEmptyNotError) {
    auto v = find_keyed_u64("a 1\nb 2\n", "c", "f");
    ASSERT_TRUE(v.ok());
    EXPECT_FALSE(v->has_value());
}

TEST(TextParse, BadKeyedValueQuotesTheLine) {
    auto v = find_keyed_u64("oom_kill lots\n", "oom_kill", "f");
    ASSERT_FALSE(v.ok());
    EXPECT_NE(v.error().what.find("oom_kill lots"), std::string::npos) << v.error().what;
}

TEST(TextParse, ConvertsKilobyteFieldToBytes) {
    auto v = find_kb_field_bytes("VmHWM:\t 300 kB\nVmRSS:\t    1234 kB\n", "VmRSS", "f");
    ASSERT_TRUE(v.ok());
    ASSERT_TRUE(v->has_value());
    EXPECT_EQ(**v, 1234u * 1024);
}

TEST(TextParse, CountsCpuListRangesAndSingles) {
    auto n = count_cpu_list("0-3,5,8-9\n", "f");
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, 7u);
}

TEST(TextParse, RejectsEmptyAndReversedCpuLists) {
    EXPECT_FALSE(count_cpu_list("\n", "f").ok());
    auto reversed = count_cpu_list("3-1", "f");
    ASSERT_FALSE(reversed.ok());
    EXPECT_NE(reversed.error().what.find("\"3-1\""), std::string::npos);
}

TEST(TextParse, QuoteShowsNewlinesAndCutsLongContent) {
    EXPECT_EQ(quote("a\nb"), "\"a\\nb\"");
    EXPECT_LT(quote(std::string(500, 'x')).size(), 200u);
}

}  // namespace
}  // namespace tuner::probes
