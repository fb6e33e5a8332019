// The CPU knee: throughput per shape once in place, and the judgement of an increase.
#include "policies/cpu_knee.hpp"

#include <gtest/gtest.h>

#include "snapshot_builder.hpp"

namespace tuner::policies {
namespace {

Snapshot pool_of(unsigned workers, int second) {
    return testing::pool_in_place({workers, 1}, second);
}

WorkerSignals measured(double rps, double cpu_utilisation) {
    return testing::measured_signals(rps, cpu_utilisation, 5);
}

// Runs `cycles` cycles of a shape at a throughput; returns the last event.
KneeDetector::Event hold(KneeDetector& d, int& t, unsigned workers, double rps, double cpu,
                         int cycles) {
    KneeDetector::Event e;
    for (int i = 0; i < cycles; ++i) e = d.observe(pool_of(workers, t++), measured(rps, cpu));
    return e;
}

TEST(CpuKnee, SaturatedIncreaseWithoutGainSettlesAtTheSmallestBestShape) {
    KneeDetector d;
    int t = 0;
    EXPECT_FALSE(hold(d, t, 20, 380, 0.95, 4).found);
    // The first cycle in place is skipped; the third sample judges: +2.6 % is no gain.
    EXPECT_FALSE(hold(d, t, 25, 390, 0.98, 3).found);
    EXPECT_TRUE(d.judging());
    EXPECT_TRUE(hold(d, t, 25, 390, 0.98, 1).found);
    const auto knee = d.knee();
    ASSERT_TRUE(knee);
    EXPECT_EQ(knee->previous.processes, 20u);
    EXPECT_EQ(knee->probed.processes, 25u);
    EXPECT_EQ(knee->settle.processes, 20u);  // 380 is within 5 % of the best, 390
    EXPECT_DOUBLE_EQ(knee->previous_rps, 380);
    EXPECT_DOUBLE_EQ(knee->probed_rps, 390);
}

TEST(CpuKnee, AnIncreaseThatRaisedThroughputIsNoKnee) {
    KneeDetector d;
    int t = 0;
    hold(d, t, 20, 300, 0.95, 4);
    hold(d, t, 25, 360, 0.97, 4);
    EXPECT_FALSE(d.knee());
    EXPECT_FALSE(d.judging());
}

TEST(CpuKnee, WithCpuToSpareThereIsNoKnee) {
    KneeDetector d;
    int t = 0;
    hold(d, t, 20, 300, 0.5, 4);
    hold(d, t, 25, 300, 0.5, 4);  // demand-limited: no gain, but not the CPU's fault
    EXPECT_FALSE(d.knee());
}

TEST(CpuKnee, ThroughputCountsOnlyOnceTheShapeIsInPlace) {
    KneeDetector d;
    int t = 0;
    hold(d, t, 20, 380, 0.95, 4);
    // Five workers still starting: their cycles do not count for 25.
    for (int i = 0; i < 5; ++i) {
        Snapshot s = pool_of(25, t++);
        s.pool.ready = 20;
        s.pool.starting = 5;
        EXPECT_FALSE(d.observe(s, measured(300, 0.95)).found);
    }
    EXPECT_TRUE(d.judging());
    EXPECT_FALSE(hold(d, t, 25, 420, 0.97, 4).found);  // in place: +10 %, a gain
    EXPECT_FALSE(d.knee());
}

TEST(CpuKnee, ATooSmallIncreaseIsNotJudged) {
    KneeDetector d;
    int t = 0;
    hold(d, t, 20, 380, 0.95, 4);
    hold(d, t, 21, 381, 0.97, 4);  // +5 % concurrency cannot show a 5 % gain clearly
    EXPECT_FALSE(d.knee());
}

// Under CPU contention the service time grows with the pool, so Little's law asks ~10 % more at
// each step: steps too small to judge alone are judged together against where the climb began.
TEST(CpuKnee, SmallStepsAddUpAndAreJudgedFromWhereTheClimbStarted) {
    KneeDetector d;
    int t = 0;
    hold(d, t, 27, 370, 0.97, 4);
    hold(d, t, 30, 372, 0.98, 4);  // +11 %: not judged alone
    EXPECT_FALSE(d.judging());
    EXPECT_FALSE(hold(d, t, 33, 374, 0.99, 3).found);  // +22 % since 27: judged after 3 samples
    EXPECT_TRUE(d.judging());
    EXPECT_TRUE(hold(d, t, 33, 374, 0.99, 1).found);
    const auto knee = d.knee();
    ASSERT_TRUE(knee);
    EXPECT_EQ(knee->previous.processes, 27u);
    EXPECT_EQ(knee->probed.processes, 33u);
    EXPECT_EQ(knee->settle.processes, 27u);
}

TEST(CpuKnee, AClimbStartsAgainAfterADecrease) {
    KneeDetector d;
    int t = 0;
    hold(d, t, 27, 370, 0.97, 4);
    hold(d, t, 30, 372, 0.98, 4);
    hold(d, t, 29, 372, 0.98, 4);  // down: the climb from 27 is over
    hold(d, t, 32, 374, 0.99, 4);  // +10 % from 29: not judged
    EXPECT_FALSE(d.judging());
    EXPECT_FALSE(d.knee());
}

TEST(CpuKnee, ReleasedWhenTheCpuCostPerRequestChanges) {
    KneeDetector d;
    int t = 0;
    hold(d, t, 20, 380, 0.95, 4);
    hold(d, t, 25, 385, 0.98, 4);
    ASSERT_TRUE(d.knee());
    WorkerSignals cheaper = measured(380, 0.95);
    cheaper.cpu_ms_per_request = 2;
    const auto e = d.observe(pool_of(25, t++), cheaper);
    ASSERT_TRUE(e.released);
    EXPECT_NE(e.released->find("CPU per request"), std::string::npos);
    EXPECT_FALSE(d.knee());
}

}  // namespace
}  // namespace tuner::policies
