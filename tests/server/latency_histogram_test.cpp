// The log-linear latency histogram: exact below 32 µs, every value within half a sub-bucket
// (1/64 ≈ 1.6 %) of its bucket's middle, indices monotonic, merge equal to adding everything.
#include "server/latency_histogram.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

#include <gtest/gtest.h>

namespace tuner::server {
namespace {

using H = LatencyHistogram;

TEST(LatencyHistogram, IsExactBelow32Microseconds) {
    for (std::uint64_t usec = 0; usec < 32; ++usec) {
        EXPECT_EQ(H::index(usec), usec);
        EXPECT_EQ(H::value_of(H::index(usec)), static_cast<double>(usec));
    }
}

TEST(LatencyHistogram, EveryValueIsNearItsBucketsMiddleAcrossTheWholeRange) {
    // Walk the range in steps of ~0.4 % (plus the edges of every power of two).
    const std::uint64_t top = std::uint64_t{1} << 40;
    auto check = [](std::uint64_t usec) {
        const double middle = H::value_of(H::index(usec));
        EXPECT_LE(std::abs(middle - static_cast<double>(usec)), static_cast<double>(usec) / 64)
            << usec << " µs lands in a bucket whose middle is " << middle;
    };
    for (std::uint64_t usec = 32; usec < top; usec += usec / 256 + 1) check(usec);
    for (unsigned octave = 5; octave < 40; ++octave) {
        check(std::uint64_t{1} << octave);
        check((std::uint64_t{2} << octave) - 1);
    }
}

TEST(LatencyHistogram, IndexAndValueRoundTripForEveryBucket) {
    for (unsigned i = 0; i < H::kBuckets; ++i) {
        EXPECT_EQ(H::index(static_cast<std::uint64_t>(H::value_of(i))), i) << "bucket " << i;
        if (i > 0) {
            EXPECT_LT(H::value_of(i - 1), H::value_of(i)) << "bucket " << i;
        }
    }
}

TEST(LatencyHistogram, IndexNeverDecreasesAndClampsAtTheTop) {
    unsigned previous = 0;
    for (std::uint64_t usec = 0; usec < (std::uint64_t{1} << 41); usec += usec / 100 + 1) {
        const unsigned i = H::index(usec);
        ASSERT_GE(i, previous) << usec;
        ASSERT_LT(i, H::kBuckets) << usec;
        previous = i;
    }
    EXPECT_EQ(H::index(std::numeric_limits<std::uint64_t>::max()), H::kBuckets - 1);
}

TEST(LatencyHistogram, PercentilesOfAUniformSpreadAreWithinTwoPercent) {
    H h;
    for (std::uint64_t usec = 1; usec <= 100'000; ++usec) h.add(usec);
    EXPECT_NEAR(h.percentile_usec(0.50), 50'000, 50'000 * 0.02);
    EXPECT_NEAR(h.percentile_usec(0.95), 95'000, 95'000 * 0.02);
    EXPECT_NEAR(h.percentile_usec(0.99), 99'000, 99'000 * 0.02);
    EXPECT_DOUBLE_EQ(h.mean_usec(), 50'000.5);
    EXPECT_EQ(h.count(), 100'000u);
}

TEST(LatencyHistogram, AnEmptyHistogramReportsZero) {
    H h;
    EXPECT_EQ(h.percentile_usec(0.5), 0);
    EXPECT_EQ(h.mean_usec(), 0);
    h.add(7);
    h.clear();
    EXPECT_EQ(h.count(), 0u);
}

TEST(LatencyHistogram, MergeEqualsAddingEverythingToOne) {
    H fast, slow, all;
    for (std::uint64_t usec = 10; usec < 2'000; usec += 7) {
        fast.add(usec);
        all.add(usec);
    }
    for (std::uint64_t usec = 50'000; usec < 400'000; usec += 997) {
        slow.add(usec);
        all.add(usec);
    }
    H merged = fast;
    merged.merge(slow);
    EXPECT_EQ(merged.count(), all.count());
    EXPECT_DOUBLE_EQ(merged.mean_usec(), all.mean_usec());
    for (double q : {0.01, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0})
        EXPECT_EQ(merged.percentile_usec(q), all.percentile_usec(q)) << q;
}

}  // namespace
}  // namespace tuner::server
