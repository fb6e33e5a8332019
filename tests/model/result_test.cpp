// Result<T>: a value or an Error naming what failed and where.
#include "model/result.hpp"

#include <string>

#include <gtest/gtest.h>

namespace tuner {
namespace {

Result<int> parse_positive(int x) {
    if (x <= 0) return make_error("input", "not positive: " + std::to_string(x));
    return x;
}

TEST(Result, CarriesValueOrError) {
    auto good = parse_positive(3);
    ASSERT_TRUE(good.ok());
    EXPECT_EQ(*good, 3);
    auto bad = parse_positive(-1);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().to_string(), "input: not positive: -1");
    EXPECT_EQ(bad.value_or(7), 7);
}

TEST(Result, VoidStatusReportsFailure) {
    Status fine;
    EXPECT_TRUE(fine.ok());
    Status broken = make_error("/tmp/x", "read-only");
    EXPECT_FALSE(broken.ok());
    EXPECT_EQ(broken.error().where, "/tmp/x");
}

}  // namespace
}  // namespace tuner
