// Query-string decoding of the admin listener.
#include <gtest/gtest.h>

#include "server/admin.hpp"

namespace tuner::server {
namespace {

TEST(AdminQuery, UrlDecodeTurnsEscapesAndPlusIntoCharacters) {
    EXPECT_EQ(url_decode("a%20b+c"), "a b c");
    EXPECT_EQ(url_decode("%41%42%43"), "ABC");
    EXPECT_EQ(url_decode("%2b%2B"), "++");  // an encoded plus stays a plus
    EXPECT_EQ(url_decode("%e2%9c%93"), "\xe2\x9c\x93");
    EXPECT_EQ(url_decode(""), "");
}

TEST(AdminQuery, UrlDecodeKeepsMalformedEscapesAsTheyAre) {
    EXPECT_EQ(url_decode("100%"), "100%");
    EXPECT_EQ(url_decode("%4"), "%4");
    EXPECT_EQ(url_decode("%zz1"), "%zz1");
    EXPECT_EQ(url_decode("a%4g"), "a%4g");
}

TEST(AdminQuery, ParseQuerySplitsPairsAndDecodesBothSides) {
    const auto q = parse_query("limit=10&since=2024-01-01T00%3A00&policy%20name=seed+formula");
    const std::map<std::string, std::string> expected = {
        {"limit", "10"}, {"since", "2024-01-01T00:00"}, {"policy name", "seed formula"}};
    EXPECT_EQ(q, expected);
}

TEST(AdminQuery, ParseQueryAcceptsFlagsEmptyPairsAndRepeats) {
    const auto q = parse_query("verbose&&a=1&a=2&empty=&=x");
    EXPECT_EQ(q.at("verbose"), "");
    EXPECT_EQ(q.at("a"), "2");  // the last one wins
    EXPECT_EQ(q.at("empty"), "");
    EXPECT_EQ(q.at(""), "x");
    EXPECT_EQ(q.size(), 4u);
    EXPECT_TRUE(parse_query("").empty());
}

}  // namespace
}  // namespace tuner::server
