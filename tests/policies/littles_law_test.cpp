// Little's-law sizing and the three states of a queue.
#include "policies/littles_law.hpp"

#include <gtest/gtest.h>

namespace tuner::policies {
namespace {

WorkerSignals steady(double rps, double service_ms) {
    WorkerSignals s;
    s.has_traffic = true;
    s.arrival_rps = rps;
    s.service_mean_ms = service_ms;
    s.service_uncontended_ms = service_ms;
    s.inflight_mean = rps * service_ms / 1000;
    s.demand_concurrency = s.inflight_mean;
    s.throughput_rps = rps;
    s.throughput_measured = true;
    s.arrival_recent_rps = rps;
    return s;
}

TEST(LittlesLaw, NeedsLambdaTimesServiceOverThreadsAndUtilisation) {
    // 310 rps × 55 ms = 17.05 in service; / 0.8 = 21.3 → 22 single-threaded workers.
    const auto n = worker_need(steady(310, 55), 1, 22, 0.8);
    EXPECT_EQ(n.littles_law, 22u);
    EXPECT_EQ(n.workers, 22u);
    EXPECT_EQ(n.queue, QueueState::none);
    EXPECT_FALSE(n.queue_driven);
    EXPECT_EQ(worker_need(steady(310, 55), 4, 22, 0.8).workers, 6u);  // 17.05 / (4 × 0.8)
}

TEST(LittlesLaw, AnExactQuotientIsNotRoundedUpByNoise) {
    EXPECT_EQ(processes_for(16.0, 1, 0.8), 20u);
    EXPECT_EQ(processes_for(0, 1, 0.8), 0u);
}

TEST(LittlesLaw, AStandingQueueCountsEveryWaitingRequest) {
    // A closed loop of 64 clients on 5 workers: λ is capped at what 5 workers serve.
    WorkerSignals s = steady(90, 55);
    s.inflight_now = 5;
    s.queue_now = 59;
    s.queue_length_mean = 59;
    const auto n = worker_need(s, 1, 5, 0.8);
    EXPECT_EQ(n.queue, QueueState::standing);
    EXPECT_DOUBLE_EQ(n.queue_concurrency, 64);
    EXPECT_EQ(n.workers, 80u);
    EXPECT_TRUE(n.queue_driven);
    EXPECT_NE(queue_text(s, n).find("59 waiting + 5 in flight"), std::string::npos);
}

TEST(LittlesLaw, AGrowingQueueSizesForArrivalsPlusTheBacklog) {
    WorkerSignals s = steady(50, 55);  // the window still says 50 rps
    s.arrival_recent_rps = 400;        // the last second says 400
    s.throughput_rps = 73;
    s.queue_now = 330;
    const auto n = worker_need(s, 1, 4, 0.8);
    EXPECT_EQ(n.queue, QueueState::growing);
    // (400 + 330 / 10 s) × 55 ms = 23.8 concurrent / 0.8 → 30 workers.
    EXPECT_NEAR(n.queue_concurrency, 23.815, 1e-9);
    EXPECT_EQ(n.workers, 30u);
}

TEST(LittlesLaw, ADrainingQueueIsNotABalancedOne) {
    WorkerSignals s = steady(400, 55);
    s.throughput_rps = 520;
    s.queue_now = 200;
    s.queue_length_mean = 300;
    const auto n = worker_need(s, 1, 30, 0.8);
    EXPECT_EQ(n.queue, QueueState::draining);
    EXPECT_EQ(n.workers, 29u);  // (400 + 20) × 55 ms / 0.8 = 28.9, not (30 + 200) / 0.8
}

TEST(LittlesLaw, AFewRequestsWaitingAMomentAreNoQueue) {
    WorkerSignals s = steady(300, 55);
    s.queue_now = 3;  // under a quarter of 22 slots
    s.queue_length_mean = 0.4;
    EXPECT_EQ(worker_need(s, 1, 22, 0.8).queue, QueueState::none);
}

TEST(LittlesLaw, WithoutInstantCountersTheWindowsDemandStands) {
    WorkerSignals s = steady(90, 55);
    s.arrival_recent_rps.reset();
    s.queue_length_mean = 59;
    s.demand_concurrency = 64;
    const auto n = worker_need(s, 1, 5, 0.8);
    EXPECT_EQ(n.queue, QueueState::standing);
    EXPECT_EQ(n.workers, 80u);
}

}  // namespace
}  // namespace tuner::policies
