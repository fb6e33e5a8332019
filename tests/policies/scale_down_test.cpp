// The scale-down stabilization window, its dead band and its steps.
#include "policies/scale_down.hpp"

#include <gtest/gtest.h>

namespace tuner::policies {
namespace {

using std::chrono::seconds;

Clock::time_point at(int s) {
    return Clock::time_point{} + seconds(1000 + s);
}

TEST(ScaleDown, WaitsAFullCooldownOfLowUtilisation) {
    ScaleDownGovernor g(seconds(30), seconds(5));
    for (int t = 0; t < 30; ++t) EXPECT_FALSE(g.propose(at(t), 28, 4, 5.0, 1)) << t;
    const auto step = g.propose(at(30), 28, 4, 5.0, 1);
    ASSERT_TRUE(step);
    EXPECT_EQ(step->to, 16u);  // half the gap to 4
    EXPECT_EQ(step->recommendation, 4u);
}

TEST(ScaleDown, StepsHalfTheGapEachDwellUntilTheRecommendation) {
    ScaleDownGovernor g(seconds(30), seconds(5));
    unsigned current = 28;
    std::vector<unsigned> sizes;
    for (int t = 0; t <= 120; ++t) {
        if (const auto step = g.propose(at(t), current, 4, 5.0, 1)) {
            g.on_resize(at(t), current, step->to);
            current = step->to;
            sizes.push_back(current);
        }
    }
    EXPECT_EQ(sizes, (std::vector<unsigned>{16, 10, 7, 5, 4}));
}

TEST(ScaleDown, OneBusyCycleRestartsTheCooldown) {
    ScaleDownGovernor g(seconds(30), seconds(5));
    for (int t = 0; t < 20; ++t) (void)g.propose(at(t), 28, 4, 5.0, 1);
    (void)g.propose(at(20), 28, 28, 35.0, 1);  // the load came back for a moment
    for (int t = 21; t < 51; ++t) EXPECT_FALSE(g.propose(at(t), 28, 4, 5.0, 1)) << t;
    EXPECT_TRUE(g.propose(at(51), 28, 4, 5.0, 1));
}

TEST(ScaleDown, ShrinksOnlyToTheLargestRecommendationOfTheCooldown) {
    ScaleDownGovernor g(seconds(30), seconds(5));
    std::optional<ScaleDownGovernor::Step> step;
    for (int t = 0; t <= 30; ++t) step = g.propose(at(t), 28, t == 3 ? 20 : 4, 5.0, 1);
    ASSERT_TRUE(step);
    EXPECT_EQ(step->recommendation, 20u);
    EXPECT_EQ(step->to, 24u);
}

TEST(ScaleDown, InsideTheDeadBandNothingShrinks) {
    // 22 workers for a need of 21: utilisation still above the band.
    ScaleDownGovernor g(seconds(30), seconds(5));
    for (int t = 0; t < 120; ++t) EXPECT_FALSE(g.propose(at(t), 22, 21, 24.0, 1));
}

TEST(ScaleDown, NoShrinkWithinACooldownOfGrowth) {
    ScaleDownGovernor g(seconds(30), seconds(5));
    g.on_resize(at(0), 10, 28);
    for (int t = 0; t < 30; ++t) EXPECT_FALSE(g.propose(at(t), 28, 4, 5.0, 1));
}

TEST(ScaleDown, NeverBelowTheFloor) {
    ScaleDownGovernor g(seconds(30), seconds(5));
    std::optional<ScaleDownGovernor::Step> step;
    for (int t = 0; t <= 30; ++t) step = g.propose(at(t), 8, 1, 2.0, 6);
    ASSERT_TRUE(step);
    EXPECT_EQ(step->to, 7u);
    EXPECT_EQ(step->recommendation, 6u);
}

}  // namespace
}  // namespace tuner::policies
