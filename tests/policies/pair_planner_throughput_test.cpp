// The pair planner against measured throughput (on the real daemon): threads the CPU
// contention rule would take back are kept while they serve more, and a raise back to a shape
// that served no more is not planned, so the two threads rules cannot flap the pool.
#include <map>

#include <gtest/gtest.h>

#include "policies/cpu_knee.hpp"
#include "policies/pair_planner.hpp"
#include "snapshot_builder.hpp"

namespace tuner::policies {
namespace {

// 2 memory-capped processes of an I/O app on a saturated CPU that can use ~24 concurrent
// requests, at `threads` per process, with throughput measured at some shapes.
PairInputs saturated_at(unsigned threads, std::map<unsigned, double> rps_by_threads) {
    PairInputs in;
    in.current = {2, threads};
    in.threads_min = 1;
    in.threads_max = 16;
    in.slots_needed = 40;
    in.slot_limit = 1.25 * 2 * threads;
    in.process_cap = [](unsigned) { return 2u; };
    in.process_cap_text = "memory ceiling 2 processes at 161MB p95";
    in.cpu_useful_concurrency = 24;
    in.wait_share = 0.94;
    in.cpu_utilisation = 0.99;
    in.service_ratio = 1.5;
    in.measured_rps = [rps_by_threads](const PoolShape& shape) -> std::optional<double> {
        const auto it = rps_by_threads.find(shape.threads);
        if (shape.processes != 2 || it == rps_by_threads.end()) return std::nullopt;
        return it->second;
    };
    return in;
}

TEST(PairPlannerThroughput, KeepsThreadsThatServeMoreDespiteContention) {
    // Measured on the 2-core VM: 2 × 16 served 375 rps, 2 × 12 338 rps.
    std::string kept;
    EXPECT_FALSE(plan_pair(saturated_at(16, {{12, 338}, {16, 375}}), &kept));
    EXPECT_EQ(kept,
              "threads kept at 16 despite contention: 2 workers × 16 threads served 375 rps, "
              "2 workers × 12 threads 338 rps");
}

TEST(PairPlannerThroughput, LowersWhenTheLowerShapeServedAsMuch) {
    const auto plan = plan_pair(saturated_at(16, {{12, 370}, {16, 375}}));
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->rule, "threads_cpu_contention");
    EXPECT_EQ(plan->shape.threads, 12u);  // ceil(24 / 2)
}

TEST(PairPlannerThroughput, LowersAShapeNeverMeasuredLowerOnceTheCurrentOneIsMeasured) {
    EXPECT_FALSE(plan_pair(saturated_at(16, {})));  // 2 × 16 not measured yet: wait for it
    const auto plan = plan_pair(saturated_at(16, {{16, 375}}));
    ASSERT_TRUE(plan);  // nothing says fewer threads serve less: contention decides
    EXPECT_EQ(plan->shape.threads, 12u);
}

TEST(PairPlannerThroughput, DoesNotRaiseBackToAShapeThatServedNoMore) {
    PairInputs in = saturated_at(11, {{11, 370}, {13, 372}});
    in.slot_limit = 26;         // 2 × 13
    in.cpu_utilisation = 0.85;  // a dip while the last change settled: no contention this cycle
    std::string kept;
    EXPECT_FALSE(plan_pair(in, &kept));
    EXPECT_EQ(kept,
              "threads kept at 11: 2 workers × 13 threads served 372 rps, 2 workers × 11 threads "
              "370 rps (less than +5 %)");
}

TEST(PairPlannerThroughput, RaisesToAShapeThatServedMore) {
    PairInputs in = saturated_at(11, {{11, 338}, {13, 372}});
    in.slot_limit = 26;
    in.cpu_utilisation = 0.85;
    const auto plan = plan_pair(in);
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->rule, "threads_wait_share");
    EXPECT_EQ(plan->shape.threads, 13u);
}

TEST(PairPlannerThroughput, WithoutMeasurementsThePlannerDecidesFromTheSignals) {
    PairInputs in = saturated_at(16, {});
    in.measured_rps = nullptr;
    const auto plan = plan_pair(in);
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->rule, "threads_cpu_contention");
}

// ---- KneeDetector::measured_rps ----------------------------------------------------------------

TEST(KneeMeasuredRps, NeedsThreeCyclesInPlace) {
    KneeDetector d;
    const PoolShape shape{2, 12};
    // The first cycle in place is skipped (its counters cover the transition).
    for (int t = 0; t < 3; ++t)
        d.observe(testing::pool_in_place(shape, t), testing::measured_signals(300 + t, 0.95, 5));
    EXPECT_FALSE(d.measured_rps(shape, testing::snapshot_at(2).taken_at, 5));
    d.observe(testing::pool_in_place(shape, 3), testing::measured_signals(303, 0.95, 5));
    const auto rps = d.measured_rps(shape, testing::snapshot_at(3).taken_at, 5);
    ASSERT_TRUE(rps);
    EXPECT_DOUBLE_EQ(*rps, (301.0 + 302 + 303) / 3);
    EXPECT_FALSE(d.measured_rps(PoolShape{2, 16}, testing::snapshot_at(3).taken_at, 5));
}

TEST(KneeMeasuredRps, CyclesWithLessWorkThanSlotsMeasureTheLoadNotTheShape) {
    // 2 × 16 with the clients gone for part of each window (121 rps where it serves 376): no
    // sample, so no rule judges the shape by it.
    KneeDetector d;
    const PoolShape shape{2, 16};
    for (int t = 0; t < 5; ++t) {
        auto signals = testing::measured_signals(121, 0.95, 5);
        signals.inflight_mean = 11;  // of 32 slots
        signals.queue_length_mean = 0;
        d.observe(testing::pool_in_place(shape, t), signals);
    }
    EXPECT_FALSE(d.measured_rps(shape, testing::snapshot_at(4).taken_at, 5));
    // Busy again (29 of 32 in flight is busy enough): measured.
    for (int t = 5; t < 9; ++t) {
        auto signals = testing::measured_signals(376, 0.95, 5);
        signals.inflight_mean = 29;
        signals.queue_length_mean = 0;
        d.observe(testing::pool_in_place(shape, t), signals);
    }
    EXPECT_EQ(d.measured_rps(shape, testing::snapshot_at(8).taken_at, 5).value_or(0), 376);
}

TEST(KneeMeasuredRps, ForgetsOldMeasurementsAndOnesAtAnotherCpuCost) {
    KneeDetector d;
    const PoolShape shape{2, 12};
    for (int t = 0; t < 5; ++t)
        d.observe(testing::pool_in_place(shape, t), testing::measured_signals(300, 0.95, 5));
    EXPECT_TRUE(d.measured_rps(shape, testing::snapshot_at(10).taken_at, 5.5));
    EXPECT_FALSE(d.measured_rps(shape, testing::snapshot_at(10).taken_at, 25));  // a new release
    EXPECT_TRUE(d.measured_rps(shape, testing::snapshot_at(10).taken_at, std::nullopt));
    EXPECT_FALSE(d.measured_rps(shape, testing::snapshot_at(100).taken_at, 5));  // a minute old
}

}  // namespace
}  // namespace tuner::policies
